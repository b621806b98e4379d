"""The SLURM recipe's job.sh run again after a killed attempt, without SLURM

job.sh needs nothing of SLURM but SLURM_ARRAY_TASK_ID, so these tests run
it directly, as a resubmitted array task would run; test_slurm.py runs it
on a real SLURM.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.helpers import DERIVED, env_with_datalad, git

pytestmark = pytest.mark.slow

JOB = Path(__file__).parents[2] / 'docs' / 'examples' / 'slurm' / 'job.sh'
RUN = '[DATALAD RUNCMD] task 3'


COMMAND = ("\"mkdir -p $out && echo 'result of task $task' > "
           '$out/result.txt"')
# as a task killed in its command leaves it: part of its output (a file
# git would take, and one it ignores), and no commit
KILLED = ('"mkdir -p $out && echo partial > $out/result.txt && '
          'echo scratch > $out/part.tmp && echo .ignored > $out/.gitignore '
          '&& echo x > $out/.ignored && exit 1"')


def job(origin: Path, scratch: Path,
        script: Path = JOB) -> subprocess.CompletedProcess:
    """Task 3 of the array, with a plain ``datalad run`` in DERIVED"""
    env = dict(env_with_datalad(), SLURM_ARRAY_TASK_ID='3', ANALYSIS=DERIVED,
               INPUTS=f'{DERIVED}/inputs/bpod/sub-01', EXPLICIT='')
    return subprocess.run(['bash', str(script), str(origin), str(scratch)],
                          env=env, capture_output=True, text=True,
                          check=False)


def own_runs(analysis: Path, origin: Path) -> list[str]:
    """The run commits of the task's branch that main does not have"""
    base = git(origin / DERIVED, 'rev-parse', 'HEAD').strip()
    return [s for s in git(analysis, 'log', '--format=%s', 'HEAD', '--not',
                           base).splitlines() if s.startswith('[DATALAD')]


def test_job_sh_again_puts_back_only_its_own_output_directory(origin,
                                                              tmp_path):
    """A task that ended before its run's commit left part of its output
    in results/task-3, and a file of someone's elsewhere in its worktree:
    job.sh again deletes the former only, and its ``datalad run`` refuses
    while the latter is there; once it is gone, job.sh runs and commits
    once; job.sh after that finds its run committed and does nothing"""
    scratch = tmp_path / 'scratch'
    killed = tmp_path / 'job.sh'
    script = JOB.read_text()
    assert script.count(COMMAND) == 1
    killed.write_text(script.replace(COMMAND, KILLED))
    first = job(origin, scratch, killed)
    assert first.returncode != 0
    analysis = scratch / 'job-3' / DERIVED
    out = analysis / 'results' / 'task-3'
    assert (out / 'part.tmp').exists()
    assert own_runs(analysis, origin) == []
    notes = analysis / 'notes.txt'
    notes.write_text('mine\n')

    again = job(origin, scratch)
    assert again.returncode != 0
    assert 'clean dataset required' in again.stdout + again.stderr
    assert notes.read_text() == 'mine\n'
    assert not out.exists() or list(out.iterdir()) == []
    assert own_runs(analysis, origin) == []

    notes.unlink()
    third = job(origin, scratch)
    assert third.returncode == 0, third.stdout + third.stderr
    assert (out / 'result.txt').read_text() == 'result of task 3\n'
    assert own_runs(analysis, origin) == [RUN]

    head = git(analysis, 'rev-parse', 'HEAD')
    done = job(origin, scratch)
    assert done.returncode == 0, done.stdout + done.stderr
    assert 'task 3: its run is already committed' in done.stdout
    assert git(analysis, 'rev-parse', 'HEAD') == head
    assert git(analysis, 'status', '--porcelain') == ''
