"""benchmarks/bench_jobs.py and bench_job_setup.py work: the start state
of the first, and a small run of each end to end (smoke tests; no timing
is checked)"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import (
    BENCHMARKS,
    load_benchmark,
)

pytestmark = pytest.mark.slow

SCRIPT = BENCHMARKS / 'bench_jobs.py'


def load_script():
    return load_benchmark('bench_jobs')


def git(repo: Path, *args: str) -> str:
    return subprocess.run(['git', *args], cwd=repo, capture_output=True,
                          text=True, check=True).stdout.strip()


def test_the_job_branches_each_add_one_annexed_file(tmp_path):
    bench = load_script()
    top = bench.build(tmp_path, 3)
    results = top / 'results'
    for name in bench.job_names(3):
        added = git(results, 'diff', '--name-status', 'HEAD', name)
        assert added == f'A\tout/{name}.txt'
        assert git(results, 'cat-file', '-p', f'{name}:out/{name}.txt'
                   ).startswith('../.git/annex/objects/')
        assert git(top, 'rev-parse', f'{name}:results') == \
            git(results, 'rev-parse', name)
    assert git(results, 'annex', 'find', '--in=here', '--branch=job-0002'
               ) == 'out/job-0002.txt'
    assert git(top, 'status', '--porcelain') == ''


def test_a_quick_run_end_to_end():
    out = subprocess.run([sys.executable, str(SCRIPT), '--quick'],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    for text in ('50 job branches', 'ours: worktree-merge -r job-*',
                 'BABS: git merge octopus, chunks of 2000',
                 'loop: git merge per branch', 'ratio ours / BABS',
                 'ms/branch', 'peak MiB',
                 'ours: super records the merged results: True'):
        assert text in out.stdout


def test_a_small_job_setup_run_end_to_end():
    out = subprocess.run([sys.executable, str(BENCHMARKS /
                                              'bench_job_setup.py'),
                          '--sizes', '5', '--rounds', '1'],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    rows = [line.split() for line in out.stdout.splitlines()
            if line.startswith('       5  ')]
    assert [' '.join(r[1:-4]) for r in rows] == [
        'sparse worktree', 'full worktree', 'clone + sparse (BABS)']
    # the sparse job checks out fewer files than the full worktree
    assert int(rows[0][-1]) < int(rows[1][-1])
