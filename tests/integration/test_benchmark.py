"""benchmarks/bench_nested.py works: its hierarchy, and one tiny run end to
end (a smoke test; no timing is checked)"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import (
    BENCHMARKS,
    load_benchmark,
)

pytestmark = pytest.mark.slow

SCRIPT = BENCHMARKS / 'bench_nested.py'


def load_script():
    return load_benchmark('bench_nested')


def git(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(['git', *args], cwd=repo, capture_output=True,
                          text=True)


def test_the_copied_subdatasets_are_datasets_of_their_own(tmp_path):
    bench = load_script()
    top = bench.build(tmp_path, 3, levels=2)
    found = bench.datasets(top)
    assert [ds.relative_to(top).as_posix() for ds in found] == \
        ['.', 'sub_0000', 'sub_0001', 'sub_0002']
    assert git(top, 'status', '--porcelain').stdout == ''
    uuids, heads = set(), set()
    for ds in found[1:]:
        # the index written by the script matches the files: git needs
        # to read none of them again
        assert git(ds, 'diff-files', '--quiet').returncode == 0
        assert git(ds, 'status', '--porcelain').stdout == ''
        assert (ds / 'README.md').read_text() == f'README.md of {ds.name}\n'
        heads.add(git(ds, 'rev-parse', 'HEAD').stdout)
        annex_uuid = git(ds, 'config', 'annex.uuid').stdout.strip()
        uuids.add(annex_uuid)
        where = git(ds, 'annex', 'whereis', '--json', 'data_00.bin')
        assert json.loads(where.stdout)['whereis'][0]['uuid'] == annex_uuid
        assert git(ds, 'annex', 'fsck', '--fast', '-q').returncode == 0
        recorded = git(top, 'rev-parse', f'HEAD:{ds.name}').stdout
        assert recorded == git(ds, 'rev-parse', 'HEAD').stdout
    assert len(uuids) == len(heads) == 3


def test_a_tiny_run_end_to_end(tmp_path):
    bench = load_script()
    results = tmp_path / 'results.json'
    out = subprocess.run(
        [sys.executable, str(SCRIPT), '--quick', '--sizes', '2', '--json',
         str(results)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    data = json.loads(results.read_text())
    [result] = data['results']
    assert result['datasets'] == 3
    figures = set(bench.FIGURES) - {bench.EPHEMERAL}
    assert set(result['medians']) == figures
    assert set(result['git_spawns_per_dataset']) == figures
    assert all(v > 0 for v in result['git_spawns_per_dataset'].values())
    assert [t['target'] for t in data['targets']][:len(bench.TARGETS)] == \
        [t[0] for t in bench.TARGETS]
    for text in ('git loop: worktree add', 'worktree-remove --force',
                 'raw loop: rm + prune + branch -D',
                 'Targets (issues #17 and #27)',
                 'verdict'):
        assert text in out.stdout


def test_the_large_tree_profile_end_to_end(tmp_path):
    """bench_bigtree.py: its large dataset (files in git, annexed files,
    a clean and refreshed index), and a tiny run of it"""
    bench = load_benchmark('bench_bigtree')
    top = bench.build(tmp_path / 'built', 250, 20)
    data = top / 'data'
    assert git(top, 'status', '--porcelain').stdout == ''
    assert git(data, 'status', '--porcelain').stdout == ''
    tree = git(data, 'ls-tree', '-r', 'HEAD').stdout.splitlines()
    assert sum(line.startswith('100644') for line in tree) == 250
    assert sum(line.startswith('120000') for line in tree) == 20
    assert git(top, 'rev-parse', 'HEAD:data').stdout.strip() == \
        git(data, 'rev-parse', 'HEAD').stdout.strip()
    results = tmp_path / 'results.json'
    out = subprocess.run(
        [sys.executable, str(BENCHMARKS / 'bench_bigtree.py'),
         '--git-files', '120', '--annexed', '5', '--rounds', '1', '--json',
         str(results)], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    [result] = json.loads(results.read_text())['results']
    assert set(result['medians']) == set(bench.FIGURES)
    assert set(result['peak_kib']) == set(bench.BASELINE)
    assert all(v > 0 for v in result['peak_kib'].values())
    for text in ('Targets (issue #27)', 'carrying times, share of add',
                 'peak MiB', 'verdict'):
        assert text in out.stdout
