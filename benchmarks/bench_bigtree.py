#!/usr/bin/env python3
"""Benchmark: datalad-worktree on real-sized trees, against git's own work

The large-tree profile, beside ``bench_nested.py``'s many small datasets:
a superdataset with one subdataset of many files, in two sizes:

* ``bids``: 20 000 files in git and 2 000 annexed (locked) files, laid out
  like a BIDS dataset (``sub-NNN/func/*_bold.json`` in git,
  ``*_bold.nii.gz`` annexed, 100 files in git and 10 annexed per subject
  directory);
* ``big``: 100 000 files in git, no annexed file (1 000 directories of 100
  files).

In each, the same figures and baselines as ``bench_nested.py``, in
alternating rounds, every command a process of its own:
``worktree-add -r`` (and with ``--no-mtimes``: the difference is what
carrying modification times costs) against the hand loop of ``git
worktree add`` per dataset (``bench_nested.git_loop_add``, the same
loop); no-op ``worktree-sync -r``, ``worktree-merge -r`` and
``worktree-list -r`` against a ``git status --porcelain`` loop over the
worktree's datasets; ``worktree-remove --force`` against ``rm -rf`` plus
``git worktree prune`` and ``git branch -D``. The peak memory (maximum
resident set size of the ``datalad`` process itself, not of the git
processes it starts) of each of our commands is reported too.

The files in git are written by the script and added with git-annex's
filter switched off (it would pass them to git anyway: ``annex.largefiles``
keeps small text files in git only where configured, so the script says
what goes where itself); their times are an hour old, so that git's index
is not racy; git's index is refreshed and git-annex has seen it
(``git annex smudge --update``) before the timed rounds. Usage::

    python benchmarks/bench_bigtree.py                 # bids and big, 2 rounds
    python benchmarks/bench_bigtree.py --sizes bids --rounds 1
    python benchmarks/bench_bigtree.py --git-files 5000 --annexed 500

The build takes about a minute for ``bids`` and one to two for ``big`` on a
2-core machine.
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

sys.path.insert(0, str(Path(__file__).parent))

from bench_nested import (
    ADD_LOOP,
    BRANCH,
    DATALAD,
    REMOVE_LOOP,
    STATUS_LOOP,
    annex_version,
    as_installed,
    direct_git_annex,
    git,
    git_loop_add,
    git_version,
    progress,
    raw_remove,
    register,
    run,
    settled,
    status_loop,
    table,
)

NO_FILTER = ['-c', 'filter.annex.process=', '-c', 'filter.annex.clean=',
             '-c', 'filter.annex.smudge=']

SIZES = {'bids': (20000, 2000), 'big': (100000, 0)}
"""Profile: (files in git, annexed files) of its subdataset"""

PER_DIR = 100
"""Files in git per directory"""

ADD = 'worktree-add -r'
ADD_NO_MTIMES = 'worktree-add -r --no-mtimes'
LIST = 'worktree-list -r'
SYNC = 'worktree-sync -r (no-op)'
MERGE = 'worktree-merge -r (no-op)'
REMOVE = 'worktree-remove --force'
FIGURES = [ADD_LOOP, ADD, ADD_NO_MTIMES, STATUS_LOOP, LIST, SYNC, MERGE,
           REMOVE_LOOP, REMOVE]
BASELINE = {ADD: ADD_LOOP, ADD_NO_MTIMES: ADD_LOOP, LIST: STATUS_LOOP,
            SYNC: STATUS_LOOP, MERGE: STATUS_LOOP, REMOVE: REMOVE_LOOP}
TARGETS = [
    # (what, figure, limit as a ratio to its baseline)
    ('worktree-add -r', ADD, 1.0),
    ('worktree-sync -r no-op', SYNC, 1.0),
    ('worktree-merge -r no-op', MERGE, 1.0),
    ('worktree-list -r', LIST, 1.0),
]
"""The targets of issue #27 (point 3); carrying times: at most
``CARRY_SHARE`` of add's time"""
CARRY_SHARE = 0.10


def make_big_dataset(path: Path, git_files: int, annexed: int) -> str:
    """A git-annex repository with ``git_files`` small files in git and
    ``annexed`` locked annexed files of 4 KiB, one commit; the commit"""
    path.mkdir(parents=True)
    git(path, 'init', '-q')
    git(path, 'annex', 'init', '-q', 'bench')
    mtime = time.time() - 3600
    dirs = max(1, -(-git_files // PER_DIR))
    per_dir_annexed = -(-annexed // dirs) if annexed else 0
    done = 0
    for d in range(dirs):
        sub = path / f'sub-{d:04d}' / 'func'
        sub.mkdir(parents=True)
        for i in range(min(PER_DIR, git_files - d * PER_DIR)):
            name = sub / f'sub-{d:04d}_task-t{i:03d}_bold.json'
            name.write_text(f'{{"RepetitionTime": {i}.{d:03d}, '
                            f'"dir": {d}}}\n')
            os.utime(name, (mtime, mtime))
        for i in range(min(per_dir_annexed, annexed - done)):
            (sub / f'sub-{d:04d}_task-t{i:03d}_bold.nii.gz').write_bytes(
                os.urandom(4096))
            done += 1
    if annexed:
        run(['git', 'annex', 'add', '-q', '--force-large', '--',
             *(str(p.relative_to(path))
               for p in sorted(path.glob('sub-*/func/*.nii.gz')))],
            cwd=path)
    run(['git', *NO_FILTER, '-c', 'gc.auto=0', 'add', '--', '.'],
        cwd=path)
    git(path, '-c', 'gc.auto=0', 'commit', '-q', '-m', f'{git_files} files in git, {annexed} '
        'annexed')
    for p in path.glob('sub-*/func/*.nii.gz'):
        os.utime(p, (mtime, mtime), follow_symlinks=False)
    run(['git', *NO_FILTER, 'update-index', '-q', '--refresh'], cwd=path,
        check=False)
    git(path, 'annex', 'smudge', '--update')
    # packed, as in a clone
    git(path, 'repack', '-a', '-d', '-q')
    git(path, 'prune-packed')
    return git(path, 'rev-parse', 'HEAD')


def build(root: Path, git_files: int, annexed: int) -> Path:
    """The superdataset with the one large subdataset ``data``"""
    top = root / 'super'
    top.mkdir(parents=True)
    git(top, 'init', '-q')
    git(top, 'annex', 'init', '-q', 'bench')
    (top / 'README.md').write_text('large-tree benchmark\n')
    git(top, 'add', 'README.md')
    git(top, 'commit', '-q', '-m', 'README')
    register(top, {'data': make_big_dataset(top / 'data', git_files,
                                            annexed)})
    return top


class Meter:
    """Times the figures of one round; peak memory of our commands"""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self.peak_kib: dict[str, int] = {}

    def __call__(self, name: str, fn, *args, **kwargs) -> None:
        settled()
        start = time.perf_counter()
        fn(*args, **kwargs)
        self.seconds[name] = time.perf_counter() - start

    def datalad(self, name: str, *args: str, cwd: Path) -> None:
        settled()
        start = time.perf_counter()
        proc = subprocess.Popen([DATALAD, *args], cwd=cwd,
                                stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        err = proc.stderr.read()
        proc.stderr.close()
        self.seconds[name] = time.perf_counter() - start
        if proc.returncode:
            raise RuntimeError(f'datalad {args} failed: {err.decode()}')
        # ru_maxrss of wait4: the peak of that process alone (Linux: KiB),
        # not of the git processes it started
        self.peak_kib[name] = usage.ru_maxrss


def one_round(top: Path, measure: Meter) -> None:
    wt = top.parent / 'wt'
    add = ('worktree-add', '-r', '-b', BRANCH, str(wt))
    measure(ADD_LOOP, git_loop_add, top, wt)
    measure(REMOVE_LOOP, raw_remove, top, wt)
    measure.datalad(ADD, *add, cwd=top)
    measure.datalad(REMOVE, 'worktree-remove', '--force', str(wt), cwd=top)
    measure.datalad(ADD_NO_MTIMES, *add, '--no-mtimes', cwd=top)
    raw_remove(top, wt)
    # the worktree for the figures that need one, made with times
    run([DATALAD, *add], cwd=top)
    measure(STATUS_LOOP, status_loop, wt)
    measure.datalad(LIST, 'worktree-list', '-r', cwd=top)
    measure.datalad(SYNC, 'worktree-sync', '-r', cwd=wt)
    measure.datalad(MERGE, 'worktree-merge', '-r', str(wt), cwd=top)
    raw_remove(top, wt)


def bench_profile(root: Path, name: str, git_files: int, annexed: int,
                  rounds: int) -> dict:
    progress(f'{name}: building ({git_files} files in git, {annexed} '
             'annexed)')
    start = time.perf_counter()
    top = build(root / name, git_files, annexed)
    built = time.perf_counter() - start
    progress(f'{name}: built in {built:.1f} s')
    times: dict[str, list[float]] = {}
    peaks: dict[str, list[int]] = {}
    for i in range(rounds):
        progress(f'{name}: round {i + 1} of {rounds}')
        measure = Meter()
        one_round(top, measure)
        for k, v in measure.seconds.items():
            times.setdefault(k, []).append(v)
        for k, v in measure.peak_kib.items():
            peaks.setdefault(k, []).append(v)
    shutil.rmtree(root / name)
    return {'profile': name, 'git_files': git_files, 'annexed': annexed,
            'build_seconds': built, 'rounds': rounds, 'times': times,
            'medians': {k: statistics.median(v) for k, v in times.items()},
            'peak_kib': {k: max(v) for k, v in peaks.items()}}


def ratio(result: dict, figure: str) -> float:
    return result['medians'][figure] / result['medians'][BASELINE[figure]]


def carry_share(result: dict) -> float:
    """What carrying times costs, as a share of add's time"""
    m = result['medians']
    return (m[ADD] - m[ADD_NO_MTIMES]) / m[ADD]


def report(results: list[dict], notes: list[str]) -> str:
    lines = [*notes, '']
    rows = []
    for r in results:
        for name in FIGURES:
            base = BASELINE.get(name)
            peak = r['peak_kib'].get(name)
            rows.append((
                r['profile'], name, f"{r['medians'][name]:.2f}",
                '-' if peak is None else f'{peak / 1024:.0f}',
                f'{ratio(r, name):.2f}x {base}' if base else 'baseline'))
    lines += [('Medians, peak memory of our commands (MiB), ratio to the '
               'baseline:'), '',
              *table(('profile', 'figure', 'median s', 'peak MiB', 'ratio'),
                     rows), '', 'Targets (issue #27):', '']
    rows = []
    for r in results:
        for what, figure, limit in TARGETS:
            value = ratio(r, figure)
            rows.append((r['profile'], what, f'<= {limit:.2f}x',
                         f'{value:.2f}x',
                         'met' if value <= limit else 'not met'))
        share = carry_share(r)
        rows.append((r['profile'], 'carrying times, share of add',
                     f'<= {CARRY_SHARE:.0%}', f'{share:.1%}',
                     'met' if share <= CARRY_SHARE else 'not met'))
    lines += table(('profile', 'target', 'limit', 'measured', 'verdict'),
                   rows)
    lines.append('Carrying times: worktree-add -r minus worktree-add -r '
                 '--no-mtimes, over worktree-add -r (medians).')
    return '\n'.join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--sizes', nargs='+', choices=sorted(SIZES),
                        default=['bids', 'big'])
    parser.add_argument('--rounds', type=int, default=2)
    parser.add_argument('--git-files', type=int,
                        help='one profile "custom" with this many files in '
                        'git (instead of --sizes)')
    parser.add_argument('--annexed', type=int, default=0,
                        help='annexed files of the "custom" profile')
    parser.add_argument('--json', type=Path)
    args = parser.parse_args(argv)
    profiles = {'custom': (args.git_files, args.annexed)} \
        if args.git_files else {k: SIZES[k] for k in args.sizes}
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix='wt-bigtree-') as tmp:
        note = direct_git_annex(Path(tmp) / 'bin')
        notes = [note] if note else []
        note = as_installed(Path(tmp))
        if note:
            notes.append(note)
            progress(note)
        results = [bench_profile(Path(tmp), name, *sizes, args.rounds)
                   for name, sizes in profiles.items()]
    versions = (f'{platform.machine()}, {os.cpu_count()} cores, Python '
                f'{platform.python_version()}, {git_version()}, '
                f'git-annex {annex_version()}')
    elapsed = time.perf_counter() - start
    if args.json:
        args.json.write_text(json.dumps({
            'results': results, 'machine': versions, 'notes': notes,
            'seconds': elapsed}, indent=2))
    print(report(results, [f'Machine: {versions}', *notes,
                           f'{args.rounds} round(s) per profile.']))
    print(f'\nThe whole run took {elapsed:.0f} s.')


if __name__ == '__main__':
    main()
