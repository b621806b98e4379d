#!/usr/bin/env python3
"""Benchmark: datalad-worktree against git's own work on the same hierarchy

Builds a superdataset with N subdatasets (each with 20 annexed files and a
few files in git; optionally a 3-level variant), then times, in alternating
rounds on the same machine:

1. a hand-written loop of ``git worktree add`` per dataset at the recorded
   commits (the baseline: the cost of git's and git-annex's own work),
2. ``datalad worktree-add -r`` serial and with ``-J 2``, and serial with
   ``--no-mtimes`` (what carrying modification times costs),
3. ``datalad worktree-sync -r`` and ``datalad worktree-merge -r`` with
   nothing to do, against a loop of ``git status --porcelain``, and with one
   changed subdataset,
4. ``datalad clone --reckless ephemeral`` plus a recursive install, the
   usual alternative.

It prints medians, every figure as a ratio to its baseline, the disk bytes
a worktree adds, and how many git processes each command spawns per
dataset (counted with GIT_TRACE2). Usage::

    python benchmarks/bench_nested.py --sizes 10 100 --rounds 3
    python benchmarks/bench_nested.py --sizes 500 --rounds 3 --levels 3

The datalad commands run as separate processes, so DataLad's import time is
included, as a user pays it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DATALAD = str(Path(sys.executable).with_name('datalad'))


def run(cmd: list[str], cwd: Path | None = None, env: dict | None = None,
        check: bool = True) -> str:
    res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True,
                         text=True)
    if check and res.returncode:
        raise RuntimeError(f'{cmd} failed: {res.stderr}{res.stdout}')
    return res.stdout


def git(repo: Path, *args: str) -> str:
    return run(['git', *args], cwd=repo).strip()


def make_dataset(path: Path, annexed: int = 20) -> None:
    """A git-annex repository with ``annexed`` annexed files and three in git"""
    path.mkdir(parents=True)
    git(path, 'init', '-q')
    git(path, 'annex', 'init', '-q', 'bench')
    for i in range(annexed):
        (path / f'data_{i:02d}.bin').write_bytes(os.urandom(1024) + bytes([i]))
    git(path, 'annex', 'add', '-q', '.')
    for name in ('README.md', 'code.py', 'params.json'):
        (path / name).write_text(f'{name} of {path.name}\n')
    git(path, 'add', 'README.md', 'code.py', 'params.json')
    git(path, 'commit', '-q', '-m', 'content')


def register(parent: Path, subs: list[str]) -> None:
    """Record ``subs`` (paths inside ``parent``) as subdatasets, as DataLad
    does: a .gitmodules entry and a gitlink each, in one commit"""
    lines = []
    for sub in subs:
        lines += [f'[submodule "{sub}"]', f'\tpath = {sub}', f'\turl = ./{sub}']
        sha = git(parent / sub, 'rev-parse', 'HEAD')
        git(parent, 'update-index', '--add', '--cacheinfo',
            f'160000,{sha},{sub}')
    (parent / '.gitmodules').write_text('\n'.join(lines) + '\n')
    git(parent, 'add', '.gitmodules')
    git(parent, 'commit', '-q', '-m', f'{len(subs)} subdatasets')


def build(root: Path, n: int, levels: int) -> Path:
    """The superdataset with ``n`` leaf subdatasets, below ``levels - 1``
    intermediate levels (2: super/sub_i, 3: super/group_j/sub_i)"""
    top = root / 'super'
    make_dataset(top, annexed=1)
    if levels == 2:
        for i in range(n):
            make_dataset(top / f'sub_{i:04d}')
        register(top, [f'sub_{i:04d}' for i in range(n)])
        return top
    groups = max(1, n // 10)
    for j in range(groups):
        group = top / f'group_{j:03d}'
        make_dataset(group, annexed=1)
        members = [f'sub_{i:04d}' for i in range(j, n, groups)]
        for m in members:
            make_dataset(group / m)
        register(group, members)
    register(top, [f'group_{j:03d}' for j in range(groups)])
    return top


def datasets(top: Path) -> list[Path]:
    """Every dataset of the hierarchy, parents first"""
    found, queue = [], [top]
    while queue:
        ds = queue.pop(0)
        found.append(ds)
        if (ds / '.gitmodules').exists():
            out = run(['git', 'config', '-f', '.gitmodules', '--get-regexp',
                       r'\.path$'], cwd=ds)
            queue += [ds / line.split(' ', 1)[1] for line in out.splitlines()]
    return found


def git_loop_add(top: Path, dest: Path, branch: str) -> None:
    """The baseline: what a user scripts by hand, dataset by dataset"""
    for ds in datasets(top):
        rel = ds.relative_to(top)
        target = dest / rel
        if ds == top:
            commit = git(top, 'rev-parse', 'HEAD')
        else:
            parent_wt = dest / rel.parent
            commit = git(parent_wt, 'rev-parse', f'HEAD:{rel.name}')
        git(ds, 'worktree', 'add', '-q', '-b', branch, str(target), commit)


def status_loop(wt: Path) -> None:
    for ds in datasets(wt):
        run(['git', 'status', '--porcelain'], cwd=ds)


def cleanup(top: Path, dest: Path, branch: str) -> None:
    shutil.rmtree(dest, ignore_errors=True)
    for ds in datasets(top):
        run(['git', 'worktree', 'prune'], cwd=ds)
        run(['git', 'branch', '-D', branch], cwd=ds, check=False)


def timed(fn, *args, **kwargs) -> float:
    start = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - start


def datalad(*args: str, cwd: Path, env: dict | None = None) -> None:
    run([DATALAD, *args], cwd=cwd, env=env)


def disk_bytes(path: Path) -> int:
    """Bytes of regular files below ``path`` (symlinks count as links)"""
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            total += os.lstat(os.path.join(dirpath, f)).st_size
    return total


def git_spawns(fn, *args) -> int:
    """How many git processes ``fn`` starts, counted with GIT_TRACE2"""
    with tempfile.NamedTemporaryFile(suffix='.trace') as trace:
        env = dict(os.environ, GIT_TRACE2_EVENT=trace.name)
        fn(*args, env)
        return sum('"event":"start"' in line
                   for line in Path(trace.name).read_text().splitlines())


def bench_size(root: Path, n: int, levels: int, rounds: int) -> dict:
    top = build(root / f'n{n}', n, levels)
    count = len(datasets(top))
    wt = root / f'n{n}' / 'wt'
    times: dict[str, list[float]] = {}

    def record(name, seconds):
        times.setdefault(name, []).append(seconds)

    for _ in range(rounds):
        record('git loop: worktree add', timed(git_loop_add, top, wt, 'b'))
        cleanup(top, wt, 'b')
        record('worktree-add -r', timed(
            datalad, 'worktree-add', '-r', '-b', 'b', str(wt), cwd=top))
        cleanup(top, wt, 'b')
        record('worktree-add -r --no-mtimes', timed(
            datalad, 'worktree-add', '-r', '--no-mtimes', '-b', 'b', str(wt),
            cwd=top))
        cleanup(top, wt, 'b')
        record('worktree-add -r -J 2', timed(
            datalad, 'worktree-add', '-r', '-J', '2', '-b', 'b', str(wt),
            cwd=top))
        # keep this worktree for the no-op and one-change figures
        record('git loop: status', timed(status_loop, wt))
        record('worktree-sync -r (no-op)', timed(
            datalad, 'worktree-sync', '-r', cwd=wt))
        record('worktree-merge -r (no-op)', timed(
            datalad, 'worktree-merge', '-r', str(wt), cwd=top))
        leaf = datasets(top)[-1]
        (leaf / 'code.py').write_text(f'changed {time.time()}\n')
        git(leaf, 'commit', '-q', '-am', 'one change')
        record('worktree-sync -r (1 changed)', timed(
            datalad, 'worktree-sync', '-r', cwd=wt))
        wt_leaf = wt / leaf.relative_to(top)
        (wt_leaf / 'params.json').write_text(f'result {time.time()}\n')
        git(wt_leaf, 'commit', '-q', '-am', 'one result')
        record('worktree-merge -r (1 changed)', timed(
            datalad, 'worktree-merge', '-r', str(wt), cwd=top))
        cleanup(top, wt, 'b')
        clone = root / f'n{n}' / 'clone'
        record('ephemeral clone + install -r', timed(
            _ephemeral, top, clone))
        shutil.rmtree(clone, ignore_errors=True)

    datalad('worktree-add', '-r', '-b', 'b', str(wt), cwd=top)
    added = disk_bytes(wt)
    source = disk_bytes(top)
    cleanup(top, wt, 'b')
    spawns = {
        'git loop: worktree add': git_spawns(
            lambda t, w, env: _with_env(env, git_loop_add, t, w, 'b'),
            top, wt),
    }
    cleanup(top, wt, 'b')
    spawns['worktree-add -r'] = git_spawns(
        lambda t, w, env: datalad('worktree-add', '-r', '-b', 'b', str(w),
                                  cwd=t, env=env), top, wt)
    spawns['worktree-sync -r (no-op)'] = git_spawns(
        lambda t, w, env: datalad('worktree-sync', '-r', cwd=w, env=env),
        top, wt)
    cleanup(top, wt, 'b')
    medians = {k: statistics.median(v) for k, v in times.items()}
    return dict(n=n, levels=levels, datasets=count, medians=medians,
                worktree_bytes=added, hierarchy_bytes=source,
                git_spawns_per_dataset={k: v / count
                                        for k, v in spawns.items()})


def _ephemeral(top: Path, clone: Path) -> None:
    run([DATALAD, 'clone', '--reckless', 'ephemeral', str(top), str(clone)])
    run([DATALAD, 'get', '-n', '-r', '--reckless', 'ephemeral', '-d',
         str(clone)])


def _with_env(env, fn, *args):
    old = dict(os.environ)
    os.environ.update(env)
    try:
        fn(*args)
    finally:
        os.environ.clear()
        os.environ.update(old)


BASELINE = {
    'worktree-add -r': 'git loop: worktree add',
    'worktree-add -r --no-mtimes': 'git loop: worktree add',
    'worktree-add -r -J 2': 'git loop: worktree add',
    'ephemeral clone + install -r': 'git loop: worktree add',
    'worktree-sync -r (no-op)': 'git loop: status',
    'worktree-merge -r (no-op)': 'git loop: status',
    'worktree-sync -r (1 changed)': 'git loop: status',
    'worktree-merge -r (1 changed)': 'git loop: status',
}


def report(results: list[dict]) -> str:
    """The results as a reStructuredText table, with machine and ratios"""
    lines = [f'Machine: {platform.machine()}, {os.cpu_count()} cores, '
             f'Python {platform.python_version()}, '
             f'{git_version()}', '']
    header = ('N', 'levels', 'datasets', 'figure', 'median s', 'ratio')
    rows = []
    for r in results:
        for name, median in r['medians'].items():
            base = BASELINE.get(name)
            ratio = (f"{median / r['medians'][base]:.2f}x {base}"
                     if base else 'baseline')
            rows.append((str(r['n']), str(r['levels']), str(r['datasets']),
                         name, f'{median:.2f}', ratio))
    widths = [max(len(h), *(len(row[i]) for row in rows))
              for i, h in enumerate(header)]
    rule = '  '.join('=' * w for w in widths)
    lines += [rule, '  '.join(h.ljust(w) for h, w in zip(header, widths)),
              rule]
    lines += ['  '.join(c.ljust(w) for c, w in zip(row, widths))
              for row in rows]
    lines += [rule, '']
    for r in results:
        spawns = ', '.join(f'{k}: {v:.1f}'
                           for k, v in r['git_spawns_per_dataset'].items())
        lines.append(
            f"N={r['n']} ({r['levels']} levels): a worktree adds "
            f"{r['worktree_bytes']} bytes (the hierarchy has "
            f"{r['hierarchy_bytes']}); git processes per dataset: {spawns}")
    if len(results) > 1:
        xs = [r['datasets'] for r in results]
        ys = [r['medians']['worktree-add -r'] for r in results]
        slope = (ys[-1] - ys[0]) / (xs[-1] - xs[0])
        lines.append(f'worktree-add -r grows by {slope * 1000:.1f} ms per '
                     'dataset')
    return '\n'.join(lines)


def git_version() -> str:
    return run(['git', '--version']).strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--sizes', type=int, nargs='+', default=[10, 100])
    parser.add_argument('--levels', type=int, choices=(2, 3), default=2)
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--json', type=Path,
                        help='also write the raw results to this file')
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix='wt-bench-') as tmp:
        results = [bench_size(Path(tmp), n, args.levels, args.rounds)
                   for n in args.sizes]
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    print(report(results))


if __name__ == '__main__':
    main()
