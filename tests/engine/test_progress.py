"""Progress where DataLad draws no bars: a Python caller whose stdin is no
terminal (a Jupyter kernel) sees one line per phase; the command line's
output to a pipe stays the results' (see test_core's terminal test)"""

from __future__ import annotations

import logging
import re
import subprocess
import sys

import datalad
import pytest

from datalad_worktree.engine import progress as progress_module
from datalad_worktree.engine.progress import progress
from tests.helpers import env_with_datalad

NOTEBOOK = """\
import datalad.api as dl
res = dl.worktree_add({path!r}, dataset={dataset!r}, recursive=True,
                      result_renderer='disabled', return_type='list')
print(sum(r['status'] == 'ok' for r in res))
"""


@pytest.mark.slow
def test_a_python_caller_without_a_terminal_sees_each_phase(origin,
                                                            tmp_path):
    # as a Jupyter kernel runs code: stdin, stdout and stderr no terminal
    out = subprocess.run(
        [sys.executable, '-c', NOTEBOOK.format(path=str(tmp_path / 'nb'),
                                              dataset=str(origin))],
        stdin=subprocess.DEVNULL, capture_output=True, text=True,
        env=env_with_datalad())
    assert out.returncode == 0, out.stderr
    made = int(out.stdout.split()[-1])
    assert made > 1
    lines = [ln for ln in out.stderr.splitlines() if 'datasets' in ln]
    assert any(re.fullmatch(r'\[INFO\] checking datasets: started *', ln)
               for ln in lines), out.stderr
    assert any(re.fullmatch(
        r'\[INFO\] checking datasets: [0-9]+ datasets done in [0-9.]+ s *',
        ln) for ln in lines), out.stderr
    assert any(re.fullmatch(
        rf'\[INFO\] creating worktrees: {made} datasets *', ln)
        for ln in lines), out.stderr
    assert any(re.fullmatch(
        rf'\[INFO\] creating worktrees: {made} of {made} datasets done in '
        r'[0-9.]+ s *', ln) for ln in lines), out.stderr
    # one line as a phase starts and one as it ends, none per dataset
    assert len(lines) == 4, lines


@pytest.fixture
def logged():
    """The records of the package's progress, as DataLad's handler gets
    them: (message, the level at which it is shown without a terminal)"""
    seen = []

    class Keep(logging.Handler):
        def emit(self, record):
            seen.append((record.getMessage(), getattr(
                record, 'dlm_progress_noninteractive_level', None)))

    lgr = logging.getLogger('datalad.worktree')
    handler = Keep()
    lgr.addHandler(handler)
    try:
        yield seen
    finally:
        lgr.removeHandler(handler)


def run_phase(steps: int) -> None:
    with progress('phase', steps) as done:
        for _ in range(steps):
            done()


def test_lines_between_a_phases_ends_come_at_most_every_few_seconds(
        logged, monkeypatch):
    info, debug = logging.INFO, logging.DEBUG
    # every step redrawn (see the test of REDRAW below)
    monkeypatch.setattr(progress_module, 'REDRAW', 0)
    run_phase(3)
    assert [level for _, level in logged] == [info, debug, debug, debug,
                                              info]
    assert logged[0][0] == 'phase: 3 datasets'
    assert logged[2][0] == 'phase: 2 of 3 datasets done'
    assert re.fullmatch(r'phase: 3 of 3 datasets done in [0-9.]+ s',
                        logged[-1][0])
    # where every step takes that long, each is shown
    logged.clear()
    monkeypatch.setattr(progress_module, 'EVERY', 0)
    run_phase(2)
    assert [level for _, level in logged] == [info] * 4
    # from the command line: nothing but the results, where no bars are
    # drawn (DEBUG is shown only where asked for, 'datalad -l debug')
    logged.clear()
    monkeypatch.setattr(datalad, 'get_apimode', lambda: 'cmdline')
    run_phase(2)
    assert [level for _, level in logged] == [debug] * 4


def test_a_bar_is_redrawn_at_most_every_tenth_of_a_second(logged,
                                                          monkeypatch):
    """Steps that come faster are counted at the next redraw, and the
    last ones before the phase ends: the bar reaches its total"""
    clock = [100.0]
    monkeypatch.setattr(progress_module.time, 'monotonic', lambda: clock[0])
    updates = []
    real = progress_module.log_progress

    def counting(*args, **kwargs):
        if kwargs.get('update'):
            updates.append(kwargs['update'])
        return real(*args, **kwargs)

    monkeypatch.setattr(progress_module, 'log_progress', counting)
    with progress('phase', 10) as done:
        for i in range(10):
            clock[0] += 0.03  # a step every 30 ms
            done()
    assert sum(updates) == 10
    # redrawn after 4, 8 steps (0.12 s, 0.24 s), then the 2 left at the end
    assert updates == [4, 4, 2]
    assert logged[-2][0] == 'phase: 10 of 10 datasets done'
