"""The SLURM job-array recipe (docs/examples/slurm) on a real SLURM

A single-node cluster of its own (tests/integration/slurm.py) runs the
recipe on a copy of the project hierarchy: array tasks that each make a worktree, run
``datalad run`` in derived/L5b (where outputs are annexed) and exit, and a
merge job that brings everything home and removes the worktrees.

Where SLURM cannot be started (not root, not installed, a daemon that does
not come up), the tests are skipped with the reason; with
WORKTREE_TESTS_REQUIRE_SLURM=1 (as in CI) they fail instead.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.helpers import (
    DERIVED,
    clean,
    datalad_cli,
    datasets_of,
    env_with_datalad,
    git,
    snapshot,
)

from . import slurm

# slurmd, which starts the jobs, runs as root (tests/integration/slurm.py)
# one test process runs them all, with one cluster (CI: --dist loadgroup)
pytestmark = [pytest.mark.slurm, pytest.mark.root, pytest.mark.slow,
              pytest.mark.xdist_group('slurm')]

RECIPE = Path(__file__).parents[2] / 'docs' / 'examples' / 'slurm'
REQUIRE = 'WORKTREE_TESTS_REQUIRE_SLURM'
TASKS = 8
RUN_RECORD = '=== Do not change lines below ==='
RUN_RECORD_END = '^^^ Do not change lines above ^^^'


def unavailable(why: str):
    """Skip, or fail where SLURM is required"""
    if os.environ.get(REQUIRE):
        pytest.fail(f'SLURM is required here ({REQUIRE} is set), but it '
                    f'cannot be started: {why}')
    pytest.skip(why)


@pytest.fixture(scope='module')
def cluster():
    """A running single-node SLURM (in each test process that runs tests
    of this module), stopped with everything it runs after them"""
    reason = slurm.missing()
    if reason:
        unavailable(reason)
    # munged wants its socket reachable by all, all the way up: not below
    # pytest's private temporary directories
    root = Path(tempfile.mkdtemp(prefix='worktree-slurm-'))
    root.chmod(0o755)
    try:
        started = slurm.start(root)
    except slurm.Unavailable as e:
        shutil.rmtree(root)
        unavailable(str(e))
    yield started
    started.stop()
    shutil.rmtree(root)


def job_env(cluster, **extra) -> dict:
    """The environment a user submits from: ``datalad`` on PATH, the
    tests' git configuration, and the cluster"""
    return dict(env_with_datalad(), SLURM_CONF=str(cluster.conf), **extra)


def wait_for(cluster, *jobs: str, timeout: float = 300) -> None:
    """Wait until none of ``jobs`` (array jobs with all their tasks) is
    pending or running"""
    deadline = time.monotonic() + timeout
    while cluster.run('squeue', '-h', '-o', '%i',
                      f'--jobs={",".join(jobs)}').stdout.strip():
        if time.monotonic() > deadline:
            pytest.fail(f'jobs {jobs} still queued after {timeout} s:\n'
                        + cluster.run('squeue').stdout + cluster.logs())
        time.sleep(0.5)


def jobs_of(cluster, job: str) -> list[dict]:
    """The controller's record of ``job`` (scontrol's fields), one per task
    of an array job. Ended jobs are kept in memory for MinJobAge (300 s):
    no accounting database needed"""
    out = cluster.run('scontrol', '-o', 'show', 'job', job)
    assert out.returncode == 0, out.stderr
    return [dict(f.split('=', 1) for f in line.split() if '=' in f)
            for line in out.stdout.splitlines()]


def states(cluster, job: str) -> dict:
    """JobState of each job of ``job``, by JobId"""
    return {j['JobId']: j['JobState'] for j in jobs_of(cluster, job)}


def check_completed(cluster, *jobs: str) -> None:
    """Every job of ``jobs`` completed; if not, fail with the output of
    each one that did not"""
    records = [j for job in jobs for j in jobs_of(cluster, job)]
    failed = [j for j in records if j['JobState'] != 'COMPLETED']
    report = '\n'.join(
        f"--- job {j['JobId']} ({j['JobState']}), output {j['StdOut']}:\n"
        + (Path(j['StdOut']).read_text(errors='replace')
           if Path(j['StdOut']).exists() else '(none)\n')
        for j in failed)
    assert not failed, report


def submit(cluster, origin: Path, scratch: Path, tasks: int,
           analysis: str, explicit: bool = False, recipe: Path = RECIPE,
           **env: str) -> tuple[str, str]:
    """Run the recipe's submit.sh (its tasks with a plain ``datalad run``,
    or with ``explicit`` ``datalad run --explicit``; ``env``: more of the
    submitter's environment); returns the array and merge job ids"""
    out = subprocess.run(
        ['bash', str(recipe / 'submit.sh'), str(origin), str(scratch),
         str(tasks)], env=job_env(cluster, ANALYSIS=analysis,
                                  INPUTS=f'{DERIVED}/inputs/bpod/sub-01',
                                  EXPLICIT='1' if explicit else '', **env),
        capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    array, merge = out.stdout.split()
    return array, merge


def run_records(repo: Path) -> list[tuple[str, dict]]:
    """(commit, run record) of each ``datalad run`` commit in HEAD's
    history"""
    log = git(repo, 'log', '--format=%H%x00%B%x01', 'HEAD')
    records = []
    for entry in log.split('\x01'):
        commit, _, message = entry.strip().partition('\x00')
        if RUN_RECORD in message:
            body = message.split(RUN_RECORD, 1)[1].split(RUN_RECORD_END)[0]
            records.append((commit, json.loads(body)))
    return records


def assert_no_job_left_and_annex_sound(origin: Path) -> None:
    """Every dataset of ``origin`` has only its main worktree and no job-*
    branch, and ``git annex fsck --fast`` passes where it uses git-annex"""
    for ds in datasets_of(origin):
        assert git(ds, 'worktree', 'list', '--porcelain').count(
            'worktree ') == 1, ds
        assert git(ds, 'for-each-ref', 'refs/heads/job-*') == '', ds
        if git(ds, 'config', '--default', '', 'annex.uuid'):
            fsck = subprocess.run(['git', 'annex', 'fsck', '--fast',
                                   '--quiet'], cwd=ds, capture_output=True,
                                  text=True, check=False)
            assert fsck.returncode == 0, (ds, fsck.stdout + fsck.stderr)


def test_jobs_get_the_submitters_environment(cluster, tmp_path):
    """sbatch passes the tests' isolated git configuration and PATH on"""
    env = job_env(cluster)
    out = subprocess.run(
        ['sbatch', '--parsable', f'--output={tmp_path}/env.out', '--wrap',
         ('echo "$HOME"; echo "$GIT_CONFIG_GLOBAL"; '
          'git config --global user.email; command -v datalad')],
        env=env, capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    job = out.stdout.strip()
    wait_for(cluster, job, timeout=60)
    check_completed(cluster, job)
    assert (tmp_path / 'env.out').read_text().splitlines() == [
        env['HOME'], env['GIT_CONFIG_GLOBAL'], 'test@example.com',
        shutil.which('datalad', path=env['PATH'])]


def tracked_files(repo: Path) -> list[str]:
    return git(repo, 'ls-tree', '-r', '--name-only', 'HEAD').splitlines()


@pytest.mark.parametrize('explicit', [False, True],
                         ids=['datalad-run', 'datalad-run-explicit'])
def test_job_array_results_merged_home(cluster, origin, tmp_path,
                                       explicit):
    """TASKS array tasks each run in a sparse worktree of their own, with
    a plain ``datalad run`` (which records the files the sparse checkout
    left out as deleted, datalad/datalad#7815) or ``datalad run
    --explicit``; the merge job brings every result and run record home,
    keeps every file the tasks never had, and removes the worktrees and
    their branches"""
    scratch = tmp_path / 'scratch'
    derived = origin / DERIVED
    before = len(run_records(derived))
    files = {ds: tracked_files(ds) for ds in datasets_of(origin)}
    array, merge = submit(cluster, origin, scratch, TASKS, DERIVED,
                          explicit)
    wait_for(cluster, array, merge)
    check_completed(cluster, array, merge)
    assert len(states(cluster, array)) == TASKS
    # every file is still there, the tasks' results besides
    for ds, tracked in files.items():
        assert set(tracked) <= set(tracked_files(ds)), ds
    assert 'inputs/bpod/sub-01/trials.tsv: 2 lines' in \
        (derived / 'results' / 'summary.txt').read_text()
    # (annexed, its content not in this clone of raw/bpod)
    assert (derived / 'inputs/bpod/sub-02/notes.txt').is_symlink()
    # a plain datalad run recorded as deleted what the tasks' sparse
    # worktrees of inputs/bpod left out (sub-02); in derived, its cone
    # (code, results/task-I, inputs/bpod/sub-01) left out no file
    restored = {ds for ds in datasets_of(origin) if
                "Restore files outside the sparse job's checkout" in
                git(ds, 'log', '--format=%s')}
    assert restored == (set() if explicit else {derived / 'inputs' / 'bpod'})

    for task in range(1, TASKS + 1):
        result = derived / 'results' / f'task-{task}' / 'result.txt'
        assert result.is_symlink(), f'{result} is not annexed'
        assert result.read_text() == f'result of task {task}\n'

    records = run_records(derived)[:-before or None]
    assert sorted((r['cmd'], r['outputs']) for _, r in records) == sorted(
        ((f"mkdir -p results/task-{task} && echo 'result of task {task}' "
          f'> results/task-{task}/result.txt'),
         [f'results/task-{task}/result.txt'])
        for task in range(1, TASKS + 1))

    assert not list(scratch.glob('job-*'))
    assert_no_job_left_and_annex_sound(origin)

    # the newest record, rerun in the main worktree: same output
    rerun = datalad_cli('rerun', records[0][0], cwd=derived)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    rerun_out = records[0][1]['outputs'][0]
    task = rerun_out.split('-')[1].split('/')[0]
    assert (derived / rerun_out).read_text() == f'result of task {task}\n'
    assert clean(origin)


def test_a_failed_task_cancels_the_merge(cluster, origin, tmp_path):
    """A task that fails leaves its output for a look; the merge job never
    runs and nothing reaches the main worktree"""
    scratch = tmp_path / 'scratch'
    before = snapshot(origin)
    array, merge = submit(cluster, origin, scratch, 1, 'no/such/dataset')
    wait_for(cluster, array, merge)
    assert states(cluster, array) == {array: 'FAILED'}
    assert states(cluster, merge) == {merge: 'CANCELLED'}
    log = (scratch / 'logs' / f'job-{array}_1.out').read_text()
    assert 'no/such/dataset' in log
    assert not (scratch / 'logs' / f'merge-{merge}.out').exists()
    assert (scratch / 'job-1' / '.git').exists()
    after = snapshot(origin)
    for ds, state in before.items():
        for key in ('head', 'symbolic', 'status'):
            assert after[ds][key] == state[key], (ds, key)


COMMAND = ("\"mkdir -p $out && echo 'result of task $task' > "
           '$out/result.txt"')
FIRST_ATTEMPT = """\
# task 2, on its first attempt only: part of its output, then past its
# time limit
if [ "$1" = 2 ] && [ ! -e "$0.tried" ]; then
    touch "$0.tried"
    mkdir -p "$2"
    echo partial > "$2/result.txt"
    echo scratch > "$2/part.tmp"
    sleep 600
fi
"""


def test_a_task_killed_at_its_time_limit_is_resubmitted(cluster, origin,
                                                        tmp_path):
    """Task 2 of 2 outlives its 1-minute time limit on its first attempt,
    after writing part of its output; SLURM ends it (TIMEOUT) and cancels
    the merge job. submit.sh again, as the docs say: task 2's worktree-add
    goes on in its worktree, its run succeeds in spite of the leftovers,
    task 1 finds its run committed and does nothing, and the merge job
    brings both results home once"""
    recipe = tmp_path / 'recipe'
    shutil.copytree(RECIPE, recipe)
    hook = tmp_path / 'first-attempt.sh'
    hook.write_text(FIRST_ATTEMPT)
    job = (recipe / 'job.sh').read_text()
    assert job.count(COMMAND) == 1
    (recipe / 'job.sh').write_text(job.replace(
        COMMAND, f'"bash {hook} $task $out && ' + COMMAND[1:]))
    scratch = tmp_path / 'scratch'
    derived = origin / DERIVED
    before = len(run_records(derived))

    array, merge = submit(cluster, origin, scratch, 2, DERIVED,
                          recipe=recipe, SBATCH_TIMELIMIT='1')
    # only task 2 is to meet the limit: on a busy machine task 1's
    # worktree-add and run can take a minute as well (CI: 3 test processes
    # on 2 cores), so its limit is raised (the controller's operator may)
    raised = cluster.run('scontrol', 'update', f'JobId={array}_1',
                         'TimeLimit=10')
    assert raised.returncode == 0, raised.stdout + raised.stderr
    wait_for(cluster, array, merge, timeout=240)
    assert {j['ArrayTaskId']: (j['JobState'], j['TimeLimit'])
            for j in jobs_of(cluster, array)} == {
                '1': ('COMPLETED', '00:10:00'), '2': ('TIMEOUT', '00:01:00')}
    assert states(cluster, merge) == {merge: 'CANCELLED'}
    left = scratch / 'job-2' / DERIVED / 'results' / 'task-2'
    assert (left / 'result.txt').read_text() == 'partial\n'
    assert (left / 'part.tmp').exists()
    assert run_records(scratch / 'job-2' / DERIVED)[:-before or None] == []

    array, merge = submit(cluster, origin, scratch, 2, DERIVED,
                          recipe=recipe)
    wait_for(cluster, array, merge)
    check_completed(cluster, array, merge)
    log = (scratch / 'logs' / f'job-{array}_1.out').read_text()
    assert 'task 1: its run is already committed' in log

    for task in (1, 2):
        result = derived / 'results' / f'task-{task}' / 'result.txt'
        assert result.is_symlink(), f'{result} is not annexed'
        assert result.read_text() == f'result of task {task}\n'
    assert not (derived / 'results' / 'task-2' / 'part.tmp').exists()
    records = run_records(derived)[:-before or None]
    assert sorted(r['outputs'] for _, r in records) == [
        ['results/task-1/result.txt'], ['results/task-2/result.txt']]
    assert not list(scratch.glob('job-*'))
    assert_no_job_left_and_annex_sound(origin)
    assert clean(origin)
