#!/usr/bin/env python3
"""Benchmark: what one cluster job's start costs, by dataset size

Builds, per size S, a YODA-shaped analysis dataset like those BABS and the
FAIRly-big workflow run jobs on: a superdataset (git-annex) with a
plain-git ``code`` subdataset and an ``inputs/data`` subdataset of S
subjects (``sub-NNN/anat/T1w.nii.gz`` and ``sub-NNN/func/bold.nii.gz``,
annexed, 4 KiB each, and a ``sub-NNN/sub-NNN_scans.tsv`` in git). Then
times, in alternating rounds, how a job for one subject gets a checkout
where it can run (its subject's files readable):

* ``sparse worktree``: ``datalad worktree-add -r -b job-1 --sparse code
  --sparse inputs/data/sub-001 DEST`` (annexed files are readable at once:
  the annex is shared);
* ``full worktree``: ``datalad worktree-add -r -b job-1 DEST``, the same
  without ``--sparse``;
* ``clone + sparse (BABS)``: BABS's job start with its sparse checkout
  (PennLINC/babs#337): ``datalad clone`` of the superdataset with
  ``--no-checkout``, ``git sparse-checkout set --cone code inputs`` and a
  checkout, ``datalad get -n`` of ``code`` and ``inputs/data``, the input
  dataset made sparse to the subject, and ``datalad get`` of the
  subject's annexed files (a copy, as a job must have them).

For each it reports the median seconds, the bytes the job's directory
takes on disk (``du``: blocks, also of the git directory a clone has of
its own), and the files checked out. Every command runs as a process of
its own, DataLad's start-up included. Usage::

    python benchmarks/bench_job_setup.py                 # S=100, 500; 3 rounds
    python benchmarks/bench_job_setup.py --quick         # S=20, 100; 1 round
    python benchmarks/bench_job_setup.py --sizes 500 --rounds 5

Public tools only: git, git-annex, DataLad and this package's commands.
"""

from __future__ import annotations

import argparse
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
SUBJECT = 'sub-001'
FIGURES = ('sparse worktree', 'full worktree', 'clone + sparse (BABS)')


def run(cmd: list[str], cwd: Path | None = None, stdin: str | None = None
        ) -> str:
    res = subprocess.run(cmd, cwd=cwd, input=stdin, capture_output=True,
                         text=True)
    if res.returncode:
        sys.exit(f'failed: {" ".join(cmd)}\n{res.stdout}{res.stderr}')
    return res.stdout


def git(repo: Path, *args: str, stdin: str | None = None) -> str:
    return run(['git', *args], cwd=repo, stdin=stdin)


def datalad(*args: str, cwd: Path | None = None) -> str:
    return run([DATALAD, '-c', 'datalad.log.level=error', *args], cwd=cwd)


def build(root: Path, subjects: int) -> Path:
    """The analysis dataset with ``subjects`` subjects, at root/ds"""
    top = root / 'ds'
    datalad('create', str(top))
    datalad('create', '--no-annex', '-d', str(top), str(top / 'code'))
    (top / 'code' / 'run.sh').write_text('#!/bin/sh\nls "$@"\n')
    data = top / 'inputs' / 'data'
    datalad('create', '-d', str(top), str(data))
    for i in range(1, subjects + 1):
        sub = data / f'sub-{i:03d}'
        for kind, name in (('anat', 'T1w.nii.gz'), ('func', 'bold.nii.gz')):
            (sub / kind).mkdir(parents=True)
            (sub / kind / name).write_bytes(
                f'{sub.name} {kind}\n'.encode().ljust(4096, b'.'))
        (sub / f'{sub.name}_scans.tsv').write_text('filename\n')
    git(data, 'annex', 'add', '--quiet', '--largerthan=1kb', '.')
    git(data, 'add', '.')
    git(data, 'commit', '-q', '-m', f'{subjects} subjects')
    datalad('save', '-d', str(top), '-r', '-m', 'code and inputs')
    return top


def sparse_worktree(top: Path, dest: Path) -> None:
    datalad('worktree-add', '-d', str(top), '-r', '-b', 'job-1',
            '--sparse', 'code', '--sparse', f'inputs/data/{SUBJECT}',
            str(dest))


def full_worktree(top: Path, dest: Path) -> None:
    datalad('worktree-add', '-d', str(top), '-r', '-b', 'job-1', str(dest))


def clone_sparse(top: Path, dest: Path) -> None:
    datalad('clone', str(top), str(dest), '--', '--no-checkout')
    git(dest, 'sparse-checkout', 'set', '--cone', '--stdin',
        stdin='code\ninputs\n')
    git(dest, 'checkout', '-q')
    datalad('get', '-n', 'code', 'inputs/data', cwd=dest)
    data = dest / 'inputs' / 'data'
    git(data, 'sparse-checkout', 'set', '--cone', '--stdin',
        stdin=f'{SUBJECT}\n')
    datalad('get', SUBJECT, cwd=data)


def remove(top: Path, dest: Path) -> None:
    """Undo a job's start, so the next round starts as the first did"""
    if not (dest / '.git').is_dir() or (dest / '.git').is_symlink():
        # a linked worktree: its .git is a file, or git-annex's link
        datalad('worktree-remove', '-d', str(top), '--force', str(dest))
    else:
        subprocess.run(['chmod', '-R', 'u+w', str(dest)], check=True)
        shutil.rmtree(dest)


def disk_bytes(path: Path) -> int:
    """Bytes on disk below ``path`` (du's blocks; links not followed)"""
    return int(run(['du', '-s', '-B1', str(path)]).split()[0])


def checked_out_files(path: Path) -> int:
    found = 0
    for _, dirs, files in os.walk(path):
        dirs[:] = [d for d in dirs if d != '.git']
        found += len(files)
    return found


def bench_size(root: Path, subjects: int, rounds: int) -> dict:
    start = time.monotonic()
    top = build(root / f's{subjects}', subjects)
    built = time.monotonic() - start
    how = dict(zip(FIGURES, (sparse_worktree, full_worktree, clone_sparse)))
    times: dict[str, list[float]] = {f: [] for f in FIGURES}
    sizes: dict[str, tuple[int, int]] = {}
    for _ in range(rounds):
        for figure, make in how.items():
            dest = root / f's{subjects}-job'
            start = time.monotonic()
            make(top, dest)
            times[figure].append(time.monotonic() - start)
            readable = dest / 'inputs' / 'data' / SUBJECT / 'anat'
            assert (readable / 'T1w.nii.gz').read_bytes().startswith(b'sub')
            sizes[figure] = (disk_bytes(dest), checked_out_files(dest))
            remove(top, dest)
    return dict(subjects=subjects, built=built, sizes=sizes,
                times={f: statistics.median(t) for f, t in times.items()})


def report(results: list[dict], rounds: int) -> str:
    lines = [f'machine: {platform.machine()}, {os.cpu_count()} cores, '
             f'Python {platform.python_version()}, '
             f'{git(Path.cwd(), "--version").strip()}',
             f'medians of {rounds} round(s); one job for {SUBJECT}', '',
             f'{"subjects":>8}  {"how":<22} {"seconds":>8} {"vs BABS":>8} '
             f'{"disk KiB":>9} {"files":>6}']
    for r in results:
        babs = r['times']['clone + sparse (BABS)']
        for figure in FIGURES:
            disk, files = r['sizes'][figure]
            lines.append(
                f'{r["subjects"]:>8}  {figure:<22} {r["times"][figure]:>8.2f} '
                f'{r["times"][figure] / babs:>7.2f}x {disk // 1024:>9} '
                f'{files:>6}')
    if len(results) > 1:
        first, last = results[0], results[-1]
        for figure in FIGURES:
            lines.append(
                f'{figure}: {last["subjects"]} subjects take '
                f'{last["times"][figure] / first["times"][figure]:.2f}x the '
                f'time of {first["subjects"]}')
    return '\n'.join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--sizes', type=int, nargs='+')
    parser.add_argument('--rounds', type=int)
    parser.add_argument('--quick', action='store_true',
                        help='S=20 and 100, one round')
    args = parser.parse_args(argv)
    sizes = args.sizes or ([20, 100] if args.quick else [100, 500])
    rounds = args.rounds or (1 if args.quick else 3)
    with tempfile.TemporaryDirectory(prefix='bench-job-setup-') as tmp:
        results = [bench_size(Path(tmp), s, rounds) for s in sizes]
    print(report(results, rounds))


if __name__ == '__main__':
    main()
