"""Scale-out: many jobs of a cluster start at the same second, each making
its worktree of the same hierarchy and running in it

32 ``datalad worktree-add -r`` processes on different branches (every
other one with ``--sparse``) start at one moment (a start barrier releases
them once DataLad is imported), then 32 ``datalad run`` processes, one in
each new worktree. Every one must succeed, and nothing may be left half
made or locked.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from datalad_next.runners import CommandError

from datalad_worktree.runners import git as gitlayer
from datalad_worktree.runners.locks import retry_on_lock

from tests.helpers import (
    CODE,
    DATALAD,
    DERIVED,
    INSTALLED,
    add,
    datasets_of,
    env_with_datalad,
    git,
    snapshot,
)

pytestmark = pytest.mark.reliability

JOBS = 32
SPARSE = ['--sparse', CODE, '--sparse', f'{DERIVED}/inputs/bpod/sub-01',
          '--sparse', f'{DERIVED}/results']
"""What every other job checks out: a sparse worktree"""
IN_CONE = ['.', DERIVED, CODE, f'{DERIVED}/inputs/bpod']
"""The datasets that a sparse job has worktrees of"""
INPUT = 'inputs/bpod/sub-01/trials.tsv'
"""Every job's input, in derived/L5b: a small file"""

LAUNCHER = """\
import os, sys, time
go = sys.argv[1]
sys.argv = sys.argv[2:]
from datalad.cli.main import main
import datalad_worktree.commands.worktree_add
while not os.path.exists(go):
    time.sleep(0.005)
main()
"""
"""Runs ``datalad ARGS`` (``python -c LAUNCHER GO DATALAD ARGS...``) once
the file GO exists, with DataLad and this extension imported before: all
processes then start their work at the same moment"""


def all_at_once(commands: list[tuple[Path, list[str]]], logs: Path
                ) -> list[tuple[int, str]]:
    """Run ``datalad ARGS`` in each directory of ``commands`` at the same
    moment; each one's exit code and output"""
    logs.mkdir()
    go = logs / 'go'
    procs = []
    for i, (cwd, args) in enumerate(commands):
        out = open(logs / f'{i}.log', 'w+')
        procs.append((out, subprocess.Popen(
            [sys.executable, '-c', LAUNCHER, str(go), DATALAD, *args],
            cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
            env=env_with_datalad())))
    time.sleep(0.5)
    go.touch()
    done = []
    for out, proc in procs:
        proc.wait(timeout=600)
        out.seek(0)
        done.append((proc.returncode, out.read()))
        out.close()
    return done


def run_record(message: str) -> dict:
    """The run record that ``datalad run`` put into a commit message"""
    body = message.split('=== Do not change lines below ===\n', 1)[1]
    return json.loads(body.split('^^^ Do not change lines above ^^^', 1)[0])


def lock_files(ds: Path) -> list[Path]:
    """Lock files git leaves in the git directory of the repository of
    ``ds`` (and of its linked worktrees): ``*.lock`` anywhere but in the
    annex (git-annex's own are ``*.lck``, and stay), and the 'locked'
    marker of a registered worktree"""
    common = Path(git(ds, 'rev-parse', '--path-format=absolute',
                      '--git-common-dir'))
    found = []
    for top, dirs, names in os.walk(common):
        dirs[:] = [d for d in dirs if d not in ('objects', 'annex')]
        here = Path(top)
        found += [here / n for n in names if n.endswith('.lock')]
        if here.parent.name == 'worktrees' and 'locked' in names:
            found.append(here / 'locked')
    return found


def with_a_container(origin: Path) -> None:
    """Register a container in derived/L5b, committed up to the
    superdataset: every new worktree then gets container bind paths in its
    own configuration, which enables ``extensions.worktreeConfig`` in the
    shared configuration of L5b and of the superdataset"""
    derived = origin / DERIVED
    for key, value in (('image', '.datalad/environments/box/image'),
                       ('cmdexec', 'sh {img} {cmd}')):
        git(derived, 'config', '-f', '.datalad/config',
            f'datalad.containers.box.{key}', value)
    git(derived, 'commit', '-q', '-m', 'a container', '--',
        '.datalad/config')
    git(origin, 'commit', '-q', '-m', 'a container', '--', DERIVED)


def output_of(i: int) -> str:
    return f'inputs/bpod/sub-01/trials.tsv: 2 lines\njob {i}\n'


def test_many_jobs_add_worktrees_and_run_at_the_same_moment(origin,
                                                             tmp_path):
    """32 ``worktree-add -r`` of different branches at one moment (every
    other one sparse) all succeed, then 32 ``datalad run`` with annexed
    outputs, one in each, at one moment: every run record is where it
    belongs, as it was given, with its output readable and known to the
    annex, ``git annex fsck --all`` passes, no lock is left, every
    repository has exactly the jobs' registrations, each on its branch at
    its worktree's commit, and the main worktrees are as they were"""
    with_a_container(origin)
    before = snapshot(origin)
    jobs = [tmp_path / 'jobs' / f'job-{i}' for i in range(JOBS)]
    jobs[0].parent.mkdir()
    started = time.monotonic()
    added = all_at_once(
        [(origin, ['worktree-add', '-r', '--branch', wt.name,
                   *(SPARSE if i % 2 else []), str(wt)])
         for i, wt in enumerate(jobs)], tmp_path / 'add-logs')
    add_time = time.monotonic() - started
    assert [code for code, _ in added] == [0] * JOBS, \
        [out for code, out in added if code]

    started = time.monotonic()
    runs = all_at_once(
        [(wt / DERIVED, [
            'run', *(['--explicit'] if i % 2 else []), '-m', f'job {i}',
            '-i', INPUT, '-o', f'results/job-{i}.txt',
            f'{sys.executable} code/process.py {INPUT}'
            f' results/job-{i}.txt && echo job {i} >> results/job-{i}.txt'])
         for i, wt in enumerate(jobs)], tmp_path / 'run-logs')
    run_time = time.monotonic() - started
    assert [code for code, _ in runs] == [0] * JOBS, \
        [out for code, out in runs if code]
    print(f'{JOBS} worktree-add -r: {add_time:.1f} s; '
          f'{JOBS} datalad run: {run_time:.1f} s')

    derived = origin / DERIVED
    recorded_before = git(derived, 'rev-parse', 'HEAD')
    keys = {}
    for i, wt in enumerate(jobs):
        here = wt / DERIVED
        output = f'results/job-{i}.txt'
        # one commit on what the job started from, of its output alone
        assert git(here, 'rev-parse', 'HEAD~1') == recorded_before
        assert git(here, 'diff-tree', '--no-commit-id', '--name-only', '-r',
                   'HEAD') == output
        record = run_record(git(here, 'log', '-1', '--format=%B'))
        assert record['outputs'] == [output]
        assert record['inputs'] == [INPUT]
        assert record['exit'] == 0 and record['pwd'] == '.'
        assert record['cmd'].endswith(f'echo job {i} >> {output}')
        assert (here / output).read_text() == output_of(i)
        keys[os.path.basename(os.readlink(here / output))] = i
        assert git(here, 'status', '--porcelain') == ''
    # every output is in the annex that all worktrees share, by its log
    present = {r['key'] for r in map(json.loads, git(
        derived, 'annex', 'whereis', '--all', '--json').splitlines())
        if any(w['here'] for w in r['whereis'])}
    assert set(keys) <= present, sorted(set(keys) - present)
    for rel in INSTALLED:
        ds = origin / rel
        mine = [wt for i, wt in enumerate(jobs) if i % 2 == 0 or
                rel in IN_CONE]
        listed = git(ds, 'worktree', 'list', '--porcelain').split('\n\n')
        assert not [w for w in listed if '\nlocked' in w or
                    '\nprunable' in w], listed
        # the main worktree, then each job's, on its branch at its commit;
        # the sparse jobs have none of datasets outside their cone
        assert sorted(listed[1:]) == sorted(
            f'worktree {wt / rel if rel != "." else wt}\n'
            f'HEAD {git(wt / rel, "rev-parse", "HEAD")}\n'
            f'branch refs/heads/{wt.name}' for wt in mine), listed
        assert lock_files(ds) == []
    for ds in datasets_of(origin):
        if (ds / '.git' / 'annex').exists() or \
                (ds / '.git').is_file():
            fsck = subprocess.run(
                ['git', 'annex', 'fsck', '--all', '--quiet'], cwd=ds,
                capture_output=True, text=True)
            assert fsck.returncode == 0, (ds, fsck.stdout + fsck.stderr)
    after = snapshot(origin)
    for ds, state in before.items():
        assert after[ds]['head'] == state['head']
        assert after[ds]['symbolic'] == state['symbolic']
        assert after[ds]['status'] == state['status'] == ''
        assert branches_but_jobs(after[ds]) == branches_but_jobs(state)


def branches_but_jobs(state: dict) -> list[str]:
    """The branches of a snapshot, but the jobs' and git-annex's"""
    return [ref for ref in state['refs'].splitlines()
            if ref.startswith('refs/heads/') and not ref.startswith((
                'refs/heads/job-', 'refs/heads/git-annex '))]


# --------------------------------------------------------------------------
# The pieces: waiting for a lock that another git holds for a moment


def released_after(lock: Path, seconds: float) -> threading.Timer:
    """Make ``lock`` now, as a git process that holds it does, and delete
    it after ``seconds``, as that process does when it ends"""
    lock.write_text('')
    timer = threading.Timer(seconds, lock.unlink)
    timer.start()
    return timer


@pytest.fixture
def repo(tmp_path) -> Path:
    subprocess.run(['git', 'init', '-q', str(tmp_path / 'repo')], check=True)
    return tmp_path / 'repo'


def test_retry_on_lock_waits_until_the_lock_is_gone(repo):
    released_after(repo / '.git' / 'config.lock', 0.5).join(0)
    started = time.monotonic()
    retry_on_lock(lambda: gitlayer.run(
        repo, ['config', '--local', 'extensions.worktreeConfig', 'true']))
    assert time.monotonic() - started >= 0.4
    assert git(repo, 'config', '--local', 'extensions.worktreeConfig') == \
        'true'


def test_retry_on_lock_gives_up_after_its_bound(repo):
    (repo / '.git' / 'config.lock').write_text('')
    started = time.monotonic()
    with pytest.raises(CommandError) as failed:
        retry_on_lock(lambda: gitlayer.run(
            repo, ['config', '--local', 'x.y', 'true']), timeout=1)
    assert 1 <= time.monotonic() - started < 10
    assert 'could not lock config file' in failed.value.stderr
    assert subprocess.run(['git', 'config', 'x.y'], cwd=repo).returncode == 1


def test_retry_on_lock_tries_other_failures_once(repo):
    calls = []

    def wrong_old_value():
        calls.append(1)
        gitlayer.run(repo, ['update-ref', 'refs/heads/b', '1' * 40,
                            '2' * 40])
    with pytest.raises(CommandError):
        retry_on_lock(wrong_old_value)
    assert calls == [1]


def test_add_waits_for_a_branch_lock_held_for_a_moment(origin, tmp_path):
    """The preflight finds the lock of the branch to make in raw/bpod,
    which another git holds for a second: it waits, and all is made"""
    lock = origin / 'raw/bpod/.git/refs/heads/job.lock'
    released_after(lock, 3)
    res = add(origin, tmp_path / 'wt', branch='job', recursive=True)
    assert {r['status'] for r in res} == {'ok', 'notneeded'}, res
    assert git(tmp_path / 'wt' / 'raw/bpod', 'branch', '--show-current') == \
        'job'


@pytest.mark.parametrize('age', ['new', 'old'])
def test_a_lock_that_stays_is_reported(origin, tmp_path, monkeypatch, age):
    """A new lock file that stays is reported once the wait
    (``datalad.worktree.lock-wait``, 1 s here) is over, one that was there
    long before at once; nothing is made"""
    lock = origin / 'raw/bpod/.git/refs/heads/job.lock'
    # the wait is counted from the lock's time (lingering): from here
    started = time.monotonic()
    lock.write_text('')
    if age == 'old':
        an_hour_ago = time.time() - 3600
        os.utime(lock, (an_hour_ago, an_hour_ago))
    else:
        monkeypatch.setenv('DATALAD_WORKTREE_LOCK__WAIT', '1')
    before = snapshot(origin)
    res = add(origin, tmp_path / 'wt', branch='job', recursive=True)
    waited = time.monotonic() - started
    assert waited < 30
    if age == 'new':
        assert waited >= 0.8
    refused = [r for r in res if 'git left' in (r.get('message') or '')]
    assert [r['path'] for r in refused] == [str(tmp_path / 'wt/raw/bpod')]
    assert str(lock) in refused[0]['message']
    assert {r['status'] for r in res} == {'impossible'}
    assert snapshot(origin) == before
    assert not (tmp_path / 'wt').exists()


@pytest.mark.parametrize('where', [CODE, '.'])
def test_a_failed_checkout_leaves_no_half_made_worktree(origin, tmp_path,
                                                        where):
    """A hook that fails after git checked out a worktree (of the plain
    git subdataset code, or of the top): what git made (the worktree, its
    registration, its new branch) is removed again; a subdataset's mount
    point is left empty, as it was"""
    hook = origin / where / '.git' / 'hooks' / 'post-checkout'
    hook.write_text('#!/bin/sh\necho no >&2\nexit 1\n')
    hook.chmod(0o755)
    wt = tmp_path / 'wt'
    res = {os.path.relpath(r['path'], wt): r for r in add(
        origin, wt, branch='job', recursive=True)}
    assert res[where]['status'] == 'error'
    assert res[where]['message'].startswith('git worktree add failed')
    assert git(origin / where, 'worktree', 'list', '--porcelain').count(
        'worktree ') == 1
    assert git(origin / where, 'branch', '--list', 'job') == ''
    if where == '.':
        assert not wt.exists()
        return
    assert {r['status'] for rel, r in res.items() if rel != CODE} == \
        {'ok', 'notneeded'}
    assert (wt / CODE).is_dir() and not any((wt / CODE).iterdir())
