"""The shared core's pure parts: path safety and ordered parallel work"""

import threading

import pytest

from datalad_worktree.base.paths import unsafe_relpath
from datalad_worktree.engine.scheduler import run_ordered


@pytest.mark.parametrize('path, unsafe', [
    ('code', False), ('inputs/raw', False), ('-f', False),
    ('../x', True), ('a/../../x', True), ('/abs', True), ('a//b', True),
    ('./a', True), ('a/.git', True), ('.GIT/x', True), ('', True),
    ('a\\b', True),
])
def test_unsafe_relpath(path, unsafe):
    assert bool(unsafe_relpath(path)) is unsafe


TREE = {'top': [], 'a': ['top'], 'b': ['top'], 'a1': ['a'], 'a2': ['a'],
        'a1x': ['a1']}


@pytest.mark.parametrize('workers', [1, 3])
def test_run_ordered_respects_prerequisites(workers):
    done = []
    lock = threading.Lock()

    def work(item):
        with lock:
            assert all(p in done for p in TREE[item])
            done.append(item)

    out = list(run_ordered(list(TREE), TREE.get, work, workers))
    assert sorted(i for i, _, _ in out) == sorted(TREE)
    assert all(err is None and blocker is None for _, err, blocker in out)


def test_run_ordered_blocks_dependents_of_a_failure():
    ran = []

    def work(item):
        ran.append(item)
        return 'broken' if item == 'a' else None

    out = {i: (err, blocker) for i, err, blocker in
           run_ordered(list(TREE), TREE.get, work, 2)}
    assert out['a'] == ('broken', None)
    for dep in ('a1', 'a2', 'a1x'):
        assert out[dep] == (None, 'a')
        assert dep not in ran
    assert out['b'] == (None, None)


def test_run_ordered_bottom_up():
    children = {k: [c for c, ps in TREE.items() if k in ps] for k in TREE}
    order = [i for i, _, _ in run_ordered(
        list(TREE), children.get, lambda i: None, 1)]
    for item, parents in TREE.items():
        for parent in parents:
            assert order.index(item) < order.index(parent)


def test_run_ordered_reports_a_blocked_item_once():
    children = {k: [c for c, ps in TREE.items() if k in ps] for k in TREE}
    out = [(i, blocker) for i, _, blocker in run_ordered(
        list(TREE), children.get,
        lambda i: 'broken' if i in ('a1', 'a2') else None, 1)]
    assert sorted(i for i, _ in out) == sorted(TREE)
    assert dict(out)['a'] in ('a1', 'a2')
    assert dict(out)['top'] in ('a1', 'a2')


def test_messages_show_paths_relative_to_the_current_directory(
        tmp_path, monkeypatch):
    from datalad_worktree.commands._common import relative_paths
    monkeypatch.chdir(tmp_path)
    message = (f"{tmp_path}/runs/code has 1 commit(s); run 'datalad "
               f"worktree-merge -d {tmp_path}/project {tmp_path}/runs', or "
               'see /usr/share/doc. https://example.org/x stays.')
    assert relative_paths(message) == (
        "runs/code has 1 commit(s); run 'datalad worktree-merge -d project "
        "runs', or see /usr/share/doc. https://example.org/x stays.")


def test_commands_report_progress_through_datalad(origin, runs, tmp_path):
    """Every command that walks many datasets reports its progress through
    DataLad's progress API (the log records DataLad's progress handler
    turns into bars): a start with the number of datasets, updates that
    count every dataset, and an end"""
    import logging

    from datalad import api as dl

    records = []

    class Catch(logging.Handler):
        def emit(self, record):
            if hasattr(record, 'dlm_progress'):
                records.append(record)

    logger = logging.getLogger('datalad.worktree')
    handler = Catch()
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.DEBUG)
    quiet = dict(result_renderer='disabled', return_type='list')
    try:
        dl.worktree_add(str(tmp_path / 'wt'), dataset=origin, recursive=True,
                        **quiet)
        dl.worktree_sync(dataset=runs, recursive=True, **quiet)
        dl.worktree_merge(str(runs), dataset=origin, recursive=True, **quiet)
        dl.worktree_list(dataset=origin, recursive=True, **quiet)
        dl.worktree_remove(str(tmp_path / 'wt'), dataset=origin, **quiet)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    bars: dict = {}
    for r in records:
        bars.setdefault(r.dlm_progress, []).append(r)
    labels = {rs[0].dlm_progress_label: rs for rs in bars.values()}
    assert set(labels) == {'checking datasets', 'creating worktrees',
                           'worktree-sync', 'worktree-merge',
                           'worktree-list', 'worktree-remove'}
    for label, rs in labels.items():
        updates = [r for r in rs if hasattr(r, 'dlm_progress_update')]
        assert len(updates) == len(rs) - 2, label
        assert not hasattr(rs[-1], 'dlm_progress_update'), label
        total = getattr(rs[0], 'dlm_progress_total', None)
        # redrawn at most every 0.1 s: the updates count every dataset
        assert all(r.dlm_progress_increment for r in updates), label
        counted = sum(r.dlm_progress_update for r in updates)
        assert total in (None, counted), label
        assert counted >= 1, label
    assert labels['worktree-remove'][0].dlm_progress_total == 7


def on_a_terminal(*args: str, cwd) -> str:
    """What ``datalad ARGS`` shows on an interactive terminal"""
    import fcntl
    import os
    import pty
    import struct
    import subprocess
    import termios

    from tests.helpers import DATALAD
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack('HHHH', 40, 120, 0, 0))
    proc = subprocess.Popen(
        [DATALAD, *args], cwd=cwd, stdin=slave, stdout=slave, stderr=slave,
        env=dict(os.environ, TERM='xterm'))
    os.close(slave)
    seen = b''
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    assert proc.wait() == 0, seen
    os.close(master)
    return seen.decode(errors='replace')


@pytest.mark.slow
def test_progress_bars_show_on_a_terminal_only(origin, tmp_path):
    """On an interactive terminal, DataLad draws the bars; with output to a
    pipe, or results rendered for programs (-f json), nothing of them
    appears"""
    import json
    import re

    from tests.helpers import datalad_cli
    seen = on_a_terminal('worktree-add', '-r', str(tmp_path / 'tty'),
                         cwd=origin)
    assert 'checking datasets' in seen and 'creating worktrees' in seen
    piped = datalad_cli('worktree-add', '-r', str(tmp_path / 'piped'),
                        cwd=origin)
    assert piped.returncode == 0, piped.stderr
    assert 'creating worktrees' not in piped.stdout + piped.stderr
    as_json = on_a_terminal('-f', 'json', 'worktree-add', '-r',
                            str(tmp_path / 'json'), cwd=origin)
    assert 'checking datasets' not in as_json, as_json
    assert 'creating worktrees' not in as_json, as_json
    lines = as_json.splitlines()
    records = [json.loads(line) for line in lines if line.startswith('{')]
    others = [re.sub(r'\x1b\[[0-9;]*m', '', line).strip() for line in lines
              if not line.startswith('{')]
    assert not any(others), others
    assert {r['status'] for r in records} == {'ok', 'notneeded'}
    assert {r['action'] for r in records} == {'worktree-add'}
