"""Reliability suite: interrupted commands, parallel batches, hostile
hierarchies, bad input, and a seeded random walk over all commands

Everything runs real git, git-annex and DataLad; the interrupted and the
bad-input commands run on the command line, as a user runs them. Select
this suite alone with ``pytest -m reliability``.
"""

from __future__ import annotations

import json
import os
import random
import shlex
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest
from datalad import api as dl

from tests.fixtures import built_once, restore
from tests.helpers import (
    CODE,
    DATALAD,
    DERIVED,
    INSTALLED,
    add,
    by_path,
    datasets_of,
    git,
    quiet,
    recorded,
    snapshot,
    wait_group_ended,
)

pytestmark = pytest.mark.reliability

FAILED = ('impossible', 'error')


def statuses(results) -> set:
    return {r['status'] for r in results}


def head(repo: Path) -> str:
    return git(repo, 'rev-parse', 'HEAD')


# --------------------------------------------------------------------------
# A wide hierarchy of 20 small datasets, made with plain git and git-annex:
# super/ with d0, d1, d2 and g0..g3, and s0, s1, s2 below each g; d2 is
# plain git, every other dataset uses git-annex and has an annexed data.dat

GROUPS = [f'g{i}' for i in range(4)]
WIDE_PARENT = {**{d: ('.', d) for d in ('d0', 'd1', 'd2')},
               **{g: ('.', g) for g in GROUPS},
               **{f'{g}/s{j}': (g, f's{j}') for g in GROUPS for j in range(3)}}
WIDE = ['.', *WIDE_PARENT]
PLAIN = 'd2'
BOTTOM_UP = [r for r in WIDE if '/' in r] + \
    [r for r in WIDE if r != '.' and '/' not in r] + ['.']


def children_of(rel: str) -> list[str]:
    return [name for r, (parent, name) in WIDE_PARENT.items() if parent == rel]


def annex_add(repo: Path, name: str) -> None:
    subprocess.run(['git', 'annex', 'add', '-q', '--', name], cwd=repo,
                   check=True, capture_output=True)


def init_dataset(repo: Path, annex: bool) -> None:
    repo.mkdir(parents=True, exist_ok=True)
    git(repo, 'init', '-q', '-b', 'main')
    (repo / 'README').write_text(f'{repo.name}\n')
    git(repo, 'add', 'README')
    if annex:
        git(repo, 'annex', 'init', '-q')
        (repo / 'data.dat').write_text(f'data of {repo.name}\n')
        annex_add(repo, 'data.dat')


def build_wide(root: Path) -> Path:
    top = root / 'super'
    init_dataset(top, annex=True)
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda rel: init_dataset(top / rel, rel != PLAIN),
                      WIDE_PARENT))
    for rel in BOTTOM_UP:
        subs = children_of(rel)
        for name in subs:
            for key, value in (('path', name), ('url', f'./{name}')):
                git(top / rel, 'config', '-f', '.gitmodules',
                    f'submodule.{name}.{key}', value)
        if subs:
            git(top / rel, '-c', 'advice.addEmbeddedRepo=false', 'add',
                '.gitmodules', *subs)
        git(top / rel, 'commit', '-q', '-m', f'make {rel}')
    return top


@pytest.fixture(scope='session')
def wide_template(tmp_path_factory) -> Path:
    """The 20-dataset hierarchy, built once, at ROOT/project/super;
    returns ROOT"""
    return built_once(tmp_path_factory, 'wide',
                      lambda root: build_wide(root / 'project'))


PREPARED = {'add': 'plain', 'sync': 'runs+dev', 'merge': 'runs+results',
            'remove': 'runs'}
"""What each command's scenario starts from: the hierarchy alone ('plain'),
with a 'runs' worktree of all its datasets at ROOT/runs ('runs'), and new
commits in every main dataset ('+dev', for worktree-sync) or in every
worktree dataset ('+results', for worktree-merge); 'runs+dev+results' has
both, so that every dataset of either side has diverged from the other"""
BASE = {'runs': 'plain', 'runs+dev': 'runs', 'runs+results': 'runs',
        'runs+dev+results': 'runs+dev'}
"""The template each one is made from"""


@pytest.fixture(scope='session')
def wide_templates(wide_template, tmp_path_factory):
    """The templates in PREPARED, each made once (per test run), when first
    asked for: ``wide_templates(kind)`` returns its ROOT"""
    made = {'plain': wide_template}

    def template(kind: str) -> Path:
        if kind not in made:
            base = template(BASE[kind])

            def build(root):
                restore(base, root)
                top, wt = root / 'project' / 'super', root / 'runs'
                if kind == 'runs':
                    res = add(top, wt, branch='runs', recursive=True)
                    assert statuses(res) == {'ok'}, res
                elif kind == 'runs+dev':
                    commit_everywhere(top, 'dev.dat')
                else:
                    assert kind.endswith('+results'), kind
                    commit_everywhere(wt, 'result.dat')

            made[kind] = built_once(tmp_path_factory, f'wide-{kind}', build)
        return made[kind]

    return template


@pytest.fixture
def wide(wide_template, tmp_path) -> Path:
    """A private copy of the 20-dataset hierarchy; returns its top"""
    restore(wide_template, tmp_path)
    return tmp_path / 'project' / 'super'


@pytest.fixture
def wide_for(wide_templates, tmp_path):
    """``wide_for(kind)``: a private copy of the 20-dataset hierarchy as
    PREPARED describes ``kind``, its worktree (if any) at tmp_path/runs;
    returns the top of the hierarchy"""
    def restored(kind: str) -> Path:
        restore(wide_templates(kind), tmp_path)
        return tmp_path / 'project' / 'super'

    return restored


def commit_everywhere(top: Path, name: str) -> None:
    """A new file in every dataset below ``top`` (annexed where git-annex is
    used), committed bottom-up, so that each parent records its subdatasets'
    new commits"""
    def commit(rel):
        repo = top / rel
        (repo / name).write_text(f'{name} of {rel}\n')
        if rel == PLAIN:
            git(repo, 'add', '--', name)
        else:
            annex_add(repo, name)
        git(repo, 'commit', '-q', '-m', f'{name} in {rel}', '--', name,
            *children_of(rel))

    with ThreadPoolExecutor(4) as pool:
        for depth in (2, 1, 0):
            list(pool.map(commit, [r for r in BOTTOM_UP
                                   if (r != '.') + r.count('/') == depth]))


def leave_local_work(top: Path) -> dict:
    """What a user has lying around in the main worktree: untracked notes,
    an unsaved edit, a staged new file. Returns path: content"""
    work = {top / 'notes.txt': 'my notes\n',
            top / 'g1/s1/scratch.txt': 'scratch\n',
            top / 'd0/README': 'edited, not saved\n',
            top / 'g2/staged.txt': 'staged, not committed\n'}
    for path, text in work.items():
        path.write_text(text)
    git(top / 'g2', 'add', 'staged.txt')
    return work


# --------------------------------------------------------------------------
# What must never be lost


def reachable(repo: Path) -> set:
    """Commits reachable from any ref, or from the HEAD of any worktree"""
    heads = [line.split()[1] for line in
             git(repo, 'worktree', 'list', '--porcelain').splitlines()
             if line.startswith('HEAD ') and set(line.split()[1]) != {'0'}]
    return set(git(repo, 'rev-list', '--all', *heads, '--').split())


def annex_keys(repo: Path) -> set:
    """Keys whose content is present in the repository's annex"""
    objects = Path(git(repo, 'rev-parse', '--path-format=absolute',
                       '--git-common-dir')) / 'annex' / 'objects'
    return {p.name for p in objects.glob('*/*/*/*') if p.is_file()}


def local_state(repo: Path) -> str:
    """Uncommitted changes, staged or not, and untracked files"""
    return git(repo, 'status', '--porcelain', '--untracked-files=all',
               '--ignore-submodules=all')


def baseline(top: Path, rels: list[str]) -> dict:
    def state(rel):
        return dict(commits=reachable(top / rel), keys=annex_keys(top / rel),
                    local=local_state(top / rel))

    with ThreadPoolExecutor(4) as pool:
        return dict(zip(rels, pool.map(state, rels)))


def assert_nothing_lost(top: Path, before: dict, work: dict | None = None,
                        given_up: set = frozenset()) -> dict:
    """No commit that was reachable is unreachable now (except those given
    up on request), no annexed content is gone, and the uncommitted and
    untracked work in the main worktree is exactly as it was. Returns the
    state now, a baseline for what comes next"""
    after = baseline(top, list(before))
    for rel, was in before.items():
        now = after[rel]
        lost = was['commits'] - now['commits'] - set(given_up)
        assert not lost, f'{rel}: commits no longer reachable: {lost}'
        assert was['keys'] <= now['keys'], \
            f'{rel}: annexed content gone: {was["keys"] - now["keys"]}'
        assert now['local'] == was['local'], rel
    for path, text in (work or {}).items():
        assert path.read_text() == text
    return after


# --------------------------------------------------------------------------
# Interruption: a real `datalad` process, killed with its children


@contextmanager
def sigint_as_in_a_terminal():
    """Processes started in this context take SIGINT as from a terminal
    (Ctrl-C), also when the test run ignores it, as a shell makes a
    background job do: an ignored signal stays ignored in a child, across
    exec, while a handled one is reset to its default action there"""
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        yield
        return
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def start_datalad(args: list[str], cwd: Path) -> subprocess.Popen:
    """``datalad ARGS`` in a session of its own (a signal to its process
    group reaches its git children too), with Ctrl-C as in a terminal"""
    with sigint_as_in_a_terminal():
        return subprocess.Popen([DATALAD, *args], cwd=cwd,
                                stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL,
                                start_new_session=True)


def interrupt(args: list[str], cwd: Path, sig: int, progress,
              point: int) -> bool:
    """Run ``datalad ARGS`` in a session of its own, and send ``sig`` to its
    whole process group once ``progress()`` reaches ``point``. Waits until
    every process of the group is gone; returns whether the command was
    still running when the signal was sent"""
    proc = start_datalad(args, cwd)
    deadline = time.monotonic() + 60
    while proc.poll() is None and progress() < point and \
            time.monotonic() < deadline:
        time.sleep(0.005)
    running = proc.poll() is None
    os.killpg(proc.pid, sig)
    proc.wait(timeout=60)
    if wait_group_ended(proc.pid):
        return running
    raise AssertionError(f'processes of {args} survived {sig!r}')


def rerun_to_convergence(run) -> list:
    """Call ``run`` (the Python API call of the interrupted command) until
    it neither refuses nor fails, twice at most, with no repair by hand:
    what a killed run left (a worktree locked while it was being made,
    git's lock files, a branch made for it) is for the command itself to
    clean up (see ``engine.recover``). Lock files are waited for only a
    second (see ``settings.lock_wait``), so that one the command leaves
    fails the test at once"""
    for _ in range(2):
        with short_lock_wait():
            res = run()
        failed = [r for r in res if r['status'] in FAILED]
        if not failed:
            return res
    pytest.fail(f'no convergence after 2 runs: {failed}')


@contextmanager
def short_lock_wait():
    """DataLad's configuration in this process, and in the processes it
    starts, waits only a second for git's lock files"""
    os.environ['DATALAD_WORKTREE_LOCK__WAIT'] = '1'
    try:
        yield
    finally:
        del os.environ['DATALAD_WORKTREE_LOCK__WAIT']


def count_made(wt: Path) -> int:
    return sum(os.path.lexists(wt / rel / '.git') for rel in WIDE)


def count_deleted(top: Path, branch: str) -> int:
    return sum(not tip for tip in tips(top, branch).values())


def tips(top: Path, branch: str) -> dict:
    """The loose ref files of ``branch``, read without running git"""
    found = {}
    for rel in WIDE:
        ref = top / rel / '.git' / 'refs' / 'heads' / branch
        found[rel] = ref.read_text() if ref.exists() else ''
    return found


def count_moved(top: Path, branch: str, start: dict) -> int:
    now = tips(top, branch)
    return sum(now[rel] != start[rel] for rel in WIDE)


PAUSED = 'g1/s1'
"""The dataset in which the 'ref' kill point stops git"""


class BranchUpdatePause:
    """A kill point inside git itself: a reference-transaction hook that
    makes git wait, once it holds the lock to move (or create, or delete)
    ``branch`` in the repository of ``repo``, until it is killed. The
    hook is removed again before the command is rerun"""

    def __init__(self, repo: Path, branch: str):
        common = Path(git(repo, 'rev-parse', '--path-format=absolute',
                          '--git-common-dir'))
        self.hook = common / 'hooks' / 'reference-transaction'
        self.marker = common / 'paused-here'
        self.hook.write_text(
            '#!/bin/sh\n'
            '[ "$1" = prepared ] || exit 0\n'
            f'grep -q " refs/heads/{branch}$" || exit 0\n'
            f'touch "{self.marker}"\n'
            # no new process after this, and none that holds git's pipes
            'exec sleep 60 </dev/null >/dev/null 2>&1\n')
        self.hook.chmod(0o755)

    def reached(self) -> int:
        return int(self.marker.exists())

    def remove(self) -> None:
        self.hook.unlink()
        self.marker.unlink(missing_ok=True)


def kill_at(point, args, cwd, sig, progress, repo: Path, branch: str):
    """Interrupt ``datalad ARGS`` at ``point``: when that many datasets are
    done (an int), or ('ref') while git moves ``branch`` in ``repo``"""
    if point != 'ref':
        assert interrupt(args, cwd, sig, progress, point), 'too late'
        return
    pause = BranchUpdatePause(repo, branch)
    try:
        assert interrupt(args, cwd, sig, pause.reached, 1), 'too late'
        assert pause.reached(), 'git never got to the branch update'
    finally:
        pause.remove()


def assert_parents_record_children(top: Path) -> None:
    for rel, (parent, name) in WIDE_PARENT.items():
        assert recorded(top / parent, name) == head(top / rel), rel


def assert_complete_worktree(top: Path, wt: Path) -> None:
    """Every dataset has its worktree, on branch runs, at the commit its
    parent records, clean, with its annexed file readable"""
    assert head(wt) == head(top)
    for rel in WIDE:
        assert git(wt / rel, 'symbolic-ref', 'HEAD') == 'refs/heads/runs'
        assert Path(git(wt / rel, 'rev-parse', '--path-format=absolute',
                        '--git-common-dir')) == top / rel / '.git'
        assert git(wt / rel, 'status', '--porcelain') == '', rel
        if rel != PLAIN:
            assert (wt / rel / 'data.dat').read_text() == \
                f'data of {(top / rel).name}\n'
    assert_parents_record_children(wt)


def scenario(command: str, wide: Path, wt: Path):
    """Prepare work for ``command`` between the main hierarchy ``wide`` and
    its worktree ``wt`` (on branch runs), given as ``wide_for`` restores
    ``PREPARED[command]``: no worktree yet for worktree-add; for the others
    it exists, and for worktree-sync there are new commits in every main
    dataset, for worktree-merge in every worktree dataset. Returns the
    command line, where it runs, how to count the datasets it has done, and
    the branch it moves in each dataset (a dataset is done once its branch
    moved; for worktree-remove, once its branch is deleted)"""
    if command == 'add':
        assert not wt.exists()
        return (['worktree-add', '-r', '-b', 'runs', str(wt)], wide,
                lambda: count_made(wt), 'runs')
    assert count_made(wt) == len(WIDE)
    if command == 'sync':
        assert all((wide / rel / 'dev.dat').exists() for rel in WIDE)
        (wt / 'g0/mine.txt').write_text('untracked, in the worktree\n')
        start = tips(wide, 'runs')
        return (['worktree-sync', '-r'], wt,
                lambda: count_moved(wide, 'runs', start), 'runs')
    if command == 'merge':
        assert all((wt / rel / 'result.dat').exists() for rel in WIDE)
        start = tips(wide, 'main')
        return (['worktree-merge', '-r', str(wt)], wide,
                lambda: count_moved(wide, 'main', start), 'main')
    return (['worktree-remove', str(wt)], wide,
            lambda: count_deleted(wide, 'runs'), 'runs')


def interrupted(command, wide, wt, sig, point) -> tuple[dict, dict]:
    """Prepare ``command``, leave local work in the main worktree, and kill
    the command at ``point``; returns the baseline and the local work"""
    args, cwd, progress, branch = scenario(command, wide, wt)
    work = leave_local_work(wide)
    before = baseline(wide, WIDE)
    kill_at(point, args, cwd, sig, progress, wide / PAUSED, branch)
    return before, work


# kill points on the wide hierarchy: Ctrl-C when 15 of the 20 datasets are
# done (the leaves are done, and sync and merge are at the parents), and
# SIGKILL while git moves a branch in the dataset PAUSED (for sync and
# merge: after the checkout of a fast-forward, before the branch moved).
# A SIGKILL before, during and after every git process is enumerated on a
# small hierarchy (test_crash_points), as are SIGINT and SIGTERM while git
# moves a branch (test_sigterm_and_sigint_end_the_run_with_a_record)
SIGNALS = [pytest.param(signal.SIGINT, id='SIGINT'),
           pytest.param(signal.SIGKILL, id='SIGKILL')]
KILLS = [pytest.param(15, signal.SIGINT, id='15done-SIGINT'),
         pytest.param('ref', signal.SIGKILL, id='in-branch-update-SIGKILL')]


@pytest.mark.parametrize('point, sig', KILLS)
def test_interrupted_add_converges(wide, tmp_path, sig, point):
    """A killed `worktree-add -r`, run again, completes the hierarchy, and
    the main hierarchy keeps every commit, annexed key and local change"""
    wt = tmp_path / 'runs'
    before, work = interrupted('add', wide, wt, sig, point)
    rerun_to_convergence(lambda: add(wide, wt, branch='runs', recursive=True))
    assert_complete_worktree(wide, wt)
    assert_nothing_lost(wide, before, work)


@pytest.mark.parametrize('point, sig', KILLS)
def test_interrupted_sync_converges(wide_for, tmp_path, sig, point):
    """A killed `worktree-sync -r`, run again, brings every dataset of the
    worktree to its main worktree's HEAD, with parents recording children;
    an untracked file in the worktree survives, the main one is untouched"""
    wide, wt = wide_for(PREPARED['sync']), tmp_path / 'runs'
    before, work = interrupted('sync', wide, wt, sig, point)
    rerun_to_convergence(lambda: dl.worktree_sync(
        dataset=wt, recursive=True, **quiet()))
    for rel in WIDE:
        assert head(wt / rel) == head(wide / rel), rel
        assert local_state(wt / rel) == \
            ('?? mine.txt' if rel == 'g0' else ''), rel
    assert_parents_record_children(wt)
    assert (wt / 'g3/s2/dev.dat').read_text() == 'dev.dat of g3/s2\n'
    assert_nothing_lost(wide, before, work)


@pytest.mark.parametrize('point, sig', KILLS)
def test_interrupted_merge_converges(wide_for, tmp_path, sig, point):
    """A killed `worktree-merge -r`, run again, brings every result home:
    each dataset of the main hierarchy is at its worktree's commit, the
    annexed results are readable there, and the local work is kept"""
    wide, wt = wide_for(PREPARED['merge']), tmp_path / 'runs'
    before, work = interrupted('merge', wide, wt, sig, point)
    rerun_to_convergence(lambda: dl.worktree_merge(
        str(wt), dataset=wide, recursive=True, **quiet()))
    for rel in WIDE:
        assert head(wide / rel) == head(wt / rel), rel
        assert (wide / rel / 'result.dat').read_text() == \
            f'result.dat of {rel}\n'
    assert_parents_record_children(wide)
    assert_nothing_lost(wide, before, work)


@pytest.mark.parametrize('point, sig', KILLS)
def test_interrupted_remove_converges(wide_for, tmp_path, sig, point):
    """A killed `worktree-remove`, run again, removes every worktree, its
    registration and its branch, and nothing of the main hierarchy"""
    wide, wt = wide_for(PREPARED['remove']), tmp_path / 'runs'
    before, work = interrupted('remove', wide, wt, sig, point)
    rerun_to_convergence(lambda: dl.worktree_remove(
        str(wt), dataset=wide, **quiet()))
    assert not wt.exists()
    for rel in WIDE:
        assert git(wide / rel, 'worktree', 'list', '--porcelain').count(
            'worktree ') == 1, rel
        assert git(wide / rel, 'branch', '--list', 'runs') == '', rel
    assert_nothing_lost(wide, before, work)


@pytest.mark.parametrize('sig', SIGNALS)
def test_interrupted_sync_in_a_record_commit_converges(wide_for, tmp_path,
                                                       sig):
    """New commits in the main worktrees of g1's subdatasets only, so that
    `worktree-sync -r` commits their new state in g1 and the top itself:
    killed while git makes g1's commit (holding g1's index.lock), and run
    again, it converges as well"""
    wide, wt = wide_for('runs'), tmp_path / 'runs'
    for name in children_of('g1'):
        repo = wide / 'g1' / name
        (repo / 'dev.txt').write_text('development\n')
        git(repo, 'add', 'dev.txt')
        git(repo, 'commit', '-q', '-m', 'develop')
    before = baseline(wide, WIDE)
    kill_at('ref', ['worktree-sync', '-r'], wt, sig, None, wide / 'g1',
            'runs')
    rerun_to_convergence(lambda: dl.worktree_sync(
        dataset=wt, recursive=True, **quiet()))
    for rel in WIDE:
        assert git(wt / rel, 'status', '--porcelain') == '', rel
    for name in children_of('g1'):
        assert head(wt / 'g1' / name) == head(wide / 'g1' / name)
    assert_parents_record_children(wt)
    assert_nothing_lost(wide, before)


@pytest.mark.parametrize('command', ['add', 'sync', 'merge', 'remove'])
def test_ctrl_c_stops_after_the_dataset_at_hand(wide_for, tmp_path, command):
    """SIGINT (Ctrl-C) once 3 datasets are done: the command stops with at
    most the dataset it is working on finished, instead of going on with
    the datasets it has queued"""
    wide = wide_for(PREPARED[command])
    args, cwd, progress, _ = scenario(command, wide, tmp_path / 'runs')
    proc = start_datalad(args, cwd)
    while progress() < 3 and proc.poll() is None:
        time.sleep(0.005)
    assert proc.poll() is None, 'the command ended before the signal'
    done = progress()
    os.killpg(proc.pid, signal.SIGINT)
    proc.wait(timeout=60)
    assert proc.returncode != 0
    assert progress() <= done + 1, \
        f'{progress() - done} more datasets were done after Ctrl-C'


# --------------------------------------------------------------------------
# Concurrency: four worktrees of one hierarchy, busy at the same time

BATCH = """set -e
for j in $(seq 0 {last}); do
  out=results/{name}-$j.txt
  {datalad} run -m "{name} run $j" -o $out \\
    "{python} code/process.py inputs/bpod/sub-01/trials.tsv $out \\
     && echo {name} run $j >> $out"
done
{datalad} save -d {top} -m "record {name}" {top}/{derived}
"""
RUNS = 4


def test_parallel_batches_in_four_worktrees_all_merge_home(origin, tmp_path):
    """Four linked worktrees each run a loop of `datalad run` with annexed
    outputs, all at the same time; merged back one after another, every
    output is readable in the main worktree, `git annex fsck` is clean in
    every dataset, and every run record is in the history exactly once"""
    batches = [tmp_path / f'batch{i}' for i in range(4)]
    for wt in batches:
        assert statuses(add(origin, wt, branch=wt.name, recursive=True)) \
            <= {'ok', 'notneeded'}
    procs = [subprocess.Popen(
        ['bash', '-c', BATCH.format(last=RUNS - 1, name=wt.name, top=wt,
                                    datalad=DATALAD, python=sys.executable,
                                    derived=DERIVED)],
        cwd=wt / DERIVED, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True) for wt in batches]
    for proc in procs:
        out = proc.communicate(timeout=300)[0]
        assert proc.returncode == 0 and 'Traceback' not in out, out
    for wt in batches:
        res = dl.worktree_merge(str(wt), dataset=origin, recursive=True,
                                **quiet())
        assert statuses(res) <= {'ok', 'notneeded'}, res
    log = git(origin / DERIVED, 'log', '--format=%B')
    for wt in batches:
        for j in range(RUNS):
            out = origin / DERIVED / f'results/{wt.name}-{j}.txt'
            assert out.read_text() == ('inputs/bpod/sub-01/trials.tsv: 2 '
                                       f'lines\n{wt.name} run {j}\n')
            assert log.count(f'[DATALAD RUNCMD] {wt.name} run {j}\n') == 1
    for ds in datasets_of(origin):
        if ds.name != 'code':
            fsck = subprocess.run(['git', 'annex', 'fsck', '--quiet'],
                                  cwd=ds, capture_output=True, text=True)
            assert fsck.returncode == 0, (ds, fsck.stdout + fsck.stderr)
    status = dl.status(dataset=origin, recursive=True,
                       result_renderer='disabled', return_type='list')
    assert [s for s in status if s['state'] != 'clean'] == []


# --------------------------------------------------------------------------
# Hostile hierarchies: subdataset paths and names that try to lead elsewhere


def register(repo: Path, name: str, path: str) -> None:
    """A .gitmodules entry; name and url look like an option that would
    create a marker file if git ever ran it"""
    for key, value in (('path', path), ('url', name)):
        git(repo, 'config', '-f', '.gitmodules', f'submodule.{name}.{key}',
            value)


def outside_listing(tmp_path: Path) -> dict:
    """What exists next to the project and the worktrees"""
    return {d: sorted(os.listdir(d)) for d in (tmp_path, tmp_path / 'project')}


# kind: what the path in .gitmodules is, or where a symbolic link is put
HOSTILE = {
    'escape': ('../escape', "it is not a normalized path inside the dataset"),
    'absolute': ('{tmp}/abs', 'it is not a relative path'),
    'dotgit': ('raw/.git/x', "it has a '.git' component"),
    'symlink-in-origin': ('raw/2p', 'a symbolic link on its path leads '
                                    'elsewhere'),
    'symlink-in-worktree': ('raw/2p', 'a symbolic link on its path leads '
                                      'elsewhere'),
}
# which commands meet each kind, and so must report it: sync and remove walk
# the worktree, merge and list the main hierarchy; .gitmodules entries that
# are refused can have no worktree, so list and remove need not name them
MUST_REPORT = {
    'escape': {'sync', 'merge'}, 'absolute': {'sync', 'merge'},
    'dotgit': {'sync', 'merge'}, 'symlink-in-origin': {'merge', 'list'},
    'symlink-in-worktree': {'sync', 'remove'},
}


@pytest.mark.parametrize('kind', HOSTILE)
def test_hostile_paths_are_reported_and_never_followed(
        origin, runs, tmp_path, kind):
    """sync, merge, list and remove on a hierarchy with an unsafe
    .gitmodules path (whose name and url are option-like) or a symbolic link
    on the way to a subdataset: each command that meets it reports it,
    nothing fails, nothing is created or removed outside the worktree, and
    what the link points to is left intact (worktree-add's refusals are in
    test_worktree_add.py)"""
    path, says = HOSTILE[kind]
    path = path.format(tmp=tmp_path)
    marker = tmp_path / 'pwned'
    elsewhere = tmp_path / 'elsewhere' / 'raw' / '2p'
    if kind.startswith('symlink'):
        # at the same depth as runs/raw/2p, so that git-annex's relative
        # .git link of that worktree still resolves from there
        where = origin if kind == 'symlink-in-origin' else runs
        elsewhere.parent.mkdir(parents=True)
        (where / path).rename(elsewhere)
        (where / path).symlink_to(elsewhere)
        kept = {p: p.read_bytes() for p in elsewhere.rglob('*')
                if p.is_file() and '.git' not in p.parts}
    else:
        register(origin, f'--upload-pack=touch {marker}', path)
        git(origin, 'commit', '-q', '-m', 'hostile .gitmodules',
            '.gitmodules')
        kept = {}
    around = outside_listing(tmp_path)
    dl.worktree_sync(dataset=runs, recursive=True, **quiet())
    found = dict(
        sync=dl.worktree_sync(dataset=runs, recursive=True, **quiet()),
        merge=dl.worktree_merge(str(runs), dataset=origin, recursive=True,
                                **quiet()),
        list=dl.worktree_list(dataset=origin, recursive=True, **quiet()),
        remove=dl.worktree_remove(str(runs), dataset=origin, **quiet()),
    )
    for command, res in found.items():
        assert 'error' not in statuses(res), (command, res)
        reports = [r for r in res if r['status'] == 'impossible' and
                   says in r['message'] and path in r['message']]
        if command in MUST_REPORT[kind]:
            assert reports, f'{command} does not report it: {res}'
    assert not marker.exists()
    assert outside_listing(tmp_path) == {
        d: [n for n in names if n != 'runs' or runs.exists()]
        for d, names in around.items()}
    for p, content in kept.items():
        assert p.read_bytes() == content


def test_option_like_subdataset_path_and_name_stay_plain(
        origin, runs, tmp_path):
    """A subdataset at the path '-f', named like an option: every command
    treats both as plain names, and the worktrees stay below PATH"""
    marker = tmp_path / 'pwned'
    subprocess.run(['git', 'clone', '-q', '--', str(origin / DERIVED / 'code'),
                    str(origin / '-f')], check=True, capture_output=True)
    register(origin, f'--upload-pack=touch {marker}', '-f')
    git(origin, '-c', 'advice.addEmbeddedRepo=false', 'add', '--',
        '.gitmodules', '-f')
    git(origin, 'commit', '-q', '-m', 'a subdataset at -f')
    res = by_path(dl.worktree_sync(dataset=runs, recursive=True, **quiet()),
                  runs)
    # sync makes the missing worktree, at the plain path '-f'
    assert (res['-f']['action'], res['-f']['status']) == \
        ('worktree-add', 'ok'), res['-f']
    assert head(runs / '-f') == head(origin / '-f')
    res = dl.worktree_sync(dataset=runs, recursive=True, **quiet())
    assert statuses(res) <= {'ok', 'notneeded'}, res
    new = (runs / '-f' / 'result.txt')
    new.write_text('from the worktree\n')
    git(runs / '-f', 'add', 'result.txt')
    git(runs / '-f', 'commit', '-q', '-m', 'a result at -f')
    git(runs, 'commit', '-q', '-m', 'record -f', '--', '-f')
    res = by_path(dl.worktree_merge(str(runs), dataset=origin, recursive=True,
                                    **quiet()), origin)
    assert res['-f']['status'] == 'ok', res['-f']
    assert (origin / '-f' / 'result.txt').read_text() == 'from the worktree\n'
    listed = dl.worktree_list(dataset=origin, recursive=True, **quiet())
    assert str(runs / '-f') in {r['path'] for r in listed}
    res = by_path(add(origin, tmp_path / 'wt2', recursive=True), tmp_path)
    assert res['wt2/-f']['status'] == 'ok'
    for wt in (runs, tmp_path / 'wt2'):
        res = dl.worktree_remove(str(wt), dataset=origin, **quiet())
        assert statuses(res) == {'ok'}, res
    assert git(origin / '-f', 'branch', '--list', 'runs', 'wt2') == ''
    assert not marker.exists()
    assert sorted(os.listdir(tmp_path)) == ['project']


def test_subdataset_path_that_is_a_file(origin, runs, tmp_path):
    """Where a subdataset is recorded, the main worktree has a file: it is
    reported as not installed, a worktree gets an empty mount point, and
    the file is never touched"""
    subprocess.run(['git', 'clone', '-q', '--', str(origin / DERIVED / 'code'),
                    str(origin / 'notes')], check=True, capture_output=True)
    register(origin, 'notes', 'notes')
    git(origin, '-c', 'advice.addEmbeddedRepo=false', 'add', '--',
        '.gitmodules', 'notes')
    git(origin, 'commit', '-q', '-m', 'a subdataset at notes')
    shutil.rmtree(origin / 'notes')
    (origin / 'notes').write_text('my notes, where the subdataset was\n')
    res = by_path(add(origin, tmp_path / 'wt2', recursive=True), tmp_path)
    assert res['wt2/notes']['status'] == 'notneeded'
    assert 'not installed' in res['wt2/notes']['message']
    assert (tmp_path / 'wt2/notes').is_dir()
    for _ in range(2):
        res = by_path(dl.worktree_sync(dataset=runs, recursive=True,
                                       **quiet()), runs)
        assert res['notes']['status'] == 'notneeded', res['notes']
        assert statuses(res.values()) <= {'ok', 'notneeded'}
    res = dl.worktree_merge(str(runs), dataset=origin, recursive=True,
                            **quiet())
    assert statuses(res) <= {'ok', 'notneeded'}, res
    assert statuses(dl.worktree_list(dataset=origin, recursive=True,
                                     **quiet())) == {'ok'}
    for wt in (runs, tmp_path / 'wt2'):
        res = dl.worktree_remove(str(wt), dataset=origin, **quiet())
        assert statuses(res) == {'ok'}, res
    assert (origin / 'notes').read_text() == \
        'my notes, where the subdataset was\n'


def test_add_never_writes_through_a_symlink_in_the_new_worktree(
        origin, tmp_path):
    """A directory of the new worktree is replaced by a symbolic link to a
    place outside before the subdatasets' worktrees are made: those below
    it fail with a message, nothing is written there, the others are made"""
    wt = tmp_path / 'wt'
    add(origin, wt, branch='runs')
    outside = tmp_path / 'outside'
    (wt / 'raw').rename(outside)
    (wt / 'raw').symlink_to(outside)
    res = by_path(add(origin, wt, branch='runs', recursive=True), wt)
    for rel in ('raw/bpod', 'raw/2p'):
        assert res[rel]['status'] == 'error'
        assert 'a symbolic link on its path leads elsewhere' in \
            res[rel]['message']
        assert list((outside / rel.split('/')[1]).iterdir()) == []
    assert res[DERIVED]['status'] == 'ok'
    assert (wt / DERIVED / 'results/summary.txt').read_text()


# --------------------------------------------------------------------------
# Bad input to every command, on the command line: a refusal, no traceback,
# and nothing changed. Cases covered elsewhere (bad branch names, a branch
# checked out in the main worktree, SOURCE = the dataset itself, sync and
# remove of the main worktree, ...) are not repeated here.


@pytest.fixture(scope='module')
def bench(runs_template, tmp_path_factory) -> dict:
    """One hierarchy for all bad-input cases, which must change nothing:
    O (main), R (a linked worktree on 'runs'), G (a worktree on 'gone'
    whose directory was deleted by hand), P (a plain directory), F (a file)
    and T (the directory that holds them, and the current directory)"""
    tmp = tmp_path_factory.mktemp('bench')
    restore(runs_template, tmp)
    origin = tmp / 'project' / 'super'
    add(origin, tmp / 'gone', branch='gone')
    shutil.rmtree(tmp / 'gone')
    (tmp / 'plain').mkdir()
    (tmp / 'afile').write_text('a file\n')
    bench = dict(O=origin, R=tmp / 'runs', G=tmp / 'gone', P=tmp / 'plain',
                 F=tmp / 'afile', T=tmp)
    # the state every case must leave exactly as it found it
    bench['before'] = bench_state(bench)
    return bench


def bench_state(bench: dict) -> tuple:
    """The main hierarchy, the worktree, and the directory around them"""
    return (snapshot(bench['O']), snapshot(bench['R']),
            sorted(os.listdir(bench['T'])))


NOT_INSTALLED = 'No installed dataset found at'
BAD_INPUT = [
    # worktree-add
    ('add: PATH below a file', 'T', 'worktree-add -d {O} {F}/wt',
     'is not a directory'),
    ('add: PATH inside a .git directory', 'T',
     'worktree-add -d {O} {T}/x/.git/wt', 'inside a .git directory'),
    ('add: PATH inside a linked worktree', 'T',
     'worktree-add -d {O} {R}/raw/bpod/wt', 'inside the git working tree'),
    ('add: branch checked out in a linked worktree', 'T',
     'worktree-add -d {O} -b runs {T}/wt', 'already checked out at {R}'),
    ('add: where a worktree was deleted by hand', 'T',
     'worktree-add -d {O} -b gone {G}',
     "{G} was moved or deleted. If it was moved, re-link it with "
     "'datalad worktree-repair --dataset {O} NEWPATH'"),
    ('add: uninstalled subdataset', 'T',
     'worktree-add -d {O}/derived/L5b/containers {T}/wt', NOT_INSTALLED),
    ('add: zero jobs', 'T', 'worktree-add -d {O} -J 0 {T}/wt',
     'does not match any of 2 alternatives'),
    # worktree-sync
    ('sync: a plain directory', 'T', 'worktree-sync -d {P}', NOT_INSTALLED),
    ('sync: from a plain directory', 'P', 'worktree-sync',
     "No dataset found at '{P}' for the purpose 'update it'"),
    ('sync: worktree deleted by hand', 'T', 'worktree-sync -d {G}',
     NOT_INSTALLED),
    ('sync: uninstalled subdataset', 'T',
     'worktree-sync -d {O}/derived/L5b/containers', NOT_INSTALLED),
    ('sync: a subdataset of the main worktree', 'T',
     'worktree-sync -d {O}/raw/bpod', 'give one of its linked worktrees: '
     '{R}/raw/bpod'),
    # worktree-merge
    ('merge: worktree deleted by hand', 'T', 'worktree-merge -d {O} {G}',
     'no worktree exists at {G}'),
    ("merge: a subdataset's worktree for the top", 'T',
     'worktree-merge -d {O} {R}/raw/bpod', 'is not a worktree of {O}'),
    ('merge: its own subdataset', 'T', 'worktree-merge -d {O} {O}/raw/bpod',
     'is not a worktree of {O}'),
    ('merge: a file', 'T', 'worktree-merge -d {O} {F}',
     'is not a worktree of {O}'),
    ('merge: into a plain directory', 'T', 'worktree-merge -d {P} {R}',
     NOT_INSTALLED),
    ('merge: option-like SOURCE after --', 'T', 'worktree-merge -d {O} -- -f',
     'looks like an option'),
    # worktree-remove
    ('remove: a path that does not exist', 'T',
     'worktree-remove -d {O} {T}/nope', 'is not a linked worktree of {O}'),
    ('remove: option-like PATH after --', 'T', 'worktree-remove -d {O} -- -f',
     "refusing '-f': it looks like an option, and no worktree exists at "
     '{T}/-f'),
    ('remove: a subdataset of the main worktree', 'T',
     'worktree-remove -d {O} {O}/raw/bpod', 'is not a linked worktree of {O}'),
    ('remove: the main worktree, from a linked one', 'T',
     'worktree-remove -d {R} {O}', 'is the main worktree'),
    ('remove: from a plain directory', 'T', 'worktree-remove -d {P} {R}',
     NOT_INSTALLED),
    ('remove: a worktree whose directory is gone, without --force', 'T',
     'worktree-remove -d {O} {G}', 'pruning would delete for good'),
    ('remove: uninstalled subdataset', 'T',
     'worktree-remove -d {O}/derived/L5b/containers {R}', NOT_INSTALLED),
    # worktree-list
    ('list: a plain directory', 'T', 'worktree-list -d {P}', NOT_INSTALLED),
    ('list: worktree deleted by hand', 'T', 'worktree-list -d {G}',
     NOT_INSTALLED),
    ('list: negative recursion limit', 'T', 'worktree-list -d {O} -R -1',
     'must be at least 0'),
]


@pytest.mark.parametrize('cwd, command, says',
                         [pytest.param(*case[1:], id=case[0])
                          for case in BAD_INPUT])
def test_bad_input_is_refused_and_changes_nothing(bench, cwd, command, says):
    """Every result is a refusal or failure, one message (or the parameter
    error) says what is wrong, there is no traceback, and the main
    hierarchy, the worktree and the directory around them are unchanged
    (as the bench was made: a change by one case fails the later ones too)"""
    args = [a.format(**bench) for a in shlex.split(command)]
    out = subprocess.run([DATALAD, '-f', 'json', *args], cwd=bench[cwd],
                         capture_output=True, text=True)
    assert out.returncode != 0
    assert 'Traceback' not in out.stdout + out.stderr
    records = [json.loads(line) for line in out.stdout.splitlines()
               if line.startswith('{')]
    assert all(r['status'] in FAILED for r in records), records
    assert says.format(**bench) in out.stderr + ' '.join(
        r.get('message') or '' for r in records), out.stdout + out.stderr
    assert bench_state(bench) == bench['before']


# --------------------------------------------------------------------------
# A seeded random walk over all commands


def commit_in(top: Path, rel: str, name: str) -> None:
    """Commit a new file in dataset ``rel`` of the hierarchy at ``top``
    (annexed where git-annex is used), and record it in every parent"""
    repo = top / rel
    # a new file, never written through an annexed file's link
    (repo / name).unlink(missing_ok=True)
    (repo / name).write_text(f'{name} in {repo}, {time.time()}\n')
    if rel == CODE:
        git(repo, 'add', '--', name)
    else:
        annex_add(repo, name)
    git(repo, 'commit', '-q', '-m', f'add {name}', '--', name)
    while rel != '.':
        parent = next(p for p in sorted(INSTALLED, key=len, reverse=True)
                      if p == '.' or rel.startswith(p + '/'))
        git(top / parent, 'commit', '-q', '-m', f'record {rel}', '--',
            os.path.relpath(rel, parent if parent != '.' else ''))
        rel = parent


def random_step(rng, step, origin, tmp_path, worktrees) -> tuple[list, set]:
    """One random operation; returns its results and the commits it was
    asked to give up (worktree-remove --force, worktree-sync --force)"""
    ops = {'add': 1 if len(worktrees) < 3 else 0, 'commit': 4, 'sync': 2,
           'merge': 2, 'remove': 1.5}
    op = rng.choices(list(ops), list(ops.values()))[0] if worktrees else 'add'
    if op == 'add':
        wt = tmp_path / f'w{step}'
        worktrees.append(wt)
        return add(origin, wt, branch=wt.name, recursive=True), set()
    if op == 'commit':
        # mostly in a worktree; a shared file name makes conflicts possible
        where = rng.choice([origin, *worktrees, *worktrees, *worktrees])
        name = rng.choice([f'step{step}.dat', 'shared.dat'])
        commit_in(where, rng.choice(INSTALLED), name)
        return [], set()
    wt = rng.choice(worktrees)
    force = rng.random() < 0.5
    if op == 'sync':
        how = rng.choice(['merge', 'ff-only', 'reset'])
        # --force means something (and is accepted) only with --how reset
        res = dl.worktree_sync(dataset=wt, recursive=True, how=how,
                               force=force and how == 'reset', **quiet())
        return res, {c for r in res for c in r.get('orphaned', [])}
    if op == 'merge':
        return dl.worktree_merge(str(wt), dataset=origin, recursive=True,
                                 **quiet()), set()
    res = dl.worktree_remove(str(wt), dataset=origin, force=force,
                             keep_branch=rng.random() < 0.3, **quiet())
    if not wt.exists():
        worktrees.remove(wt)
    return res, {c for r in res for c in r.get('given_up', [])}


# seeds whose walks include refusals (diverged --how ff-only, unmerged
# commits), merges that bring commits home, and commits given up with force
@pytest.mark.parametrize('seed', [2, 5, 10])
def test_random_operations_never_lose_commits_or_content(
        origin, tmp_path, seed):
    """14 random steps of add, commit, sync, merge and remove: no step
    fails, and after each, every commit that was reachable in any dataset
    (from a ref or a worktree's HEAD) still is, unless the step was asked
    to give it up with force; annexed content and the untracked notes in
    the main worktree stay"""
    rng = random.Random(seed)
    worktrees: list[Path] = []
    work = {origin / 'notes.txt': 'untracked notes\n'}
    origin.joinpath('notes.txt').write_text('untracked notes\n')
    before = baseline(origin, INSTALLED)
    for step in range(14):
        res, given_up = random_step(rng, step, origin, tmp_path, worktrees)
        assert 'error' not in statuses(res), res
        # what was checked after this step is the baseline of the next
        before = assert_nothing_lost(origin, before, work, given_up)
