"""benchmarks/bench_jobs.py works: its start state, and one quick run end
to end (a smoke test; no timing is checked)"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).parent.parent / 'benchmarks' / 'bench_jobs.py'


def load_script():
    spec = importlib.util.spec_from_file_location('bench_jobs', SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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
                 'BABS: git merge octopus, chunks of 1000',
                 'loop: git merge per branch', 'ratio ours / BABS',
                 'super records the merged results: True'):
        assert text in out.stdout
