#!/usr/bin/env python3
"""Benchmark: N cluster jobs' results merged home in one step

Builds a superdataset ``super`` with one annexed subdataset ``results``
and N job branches ``job-0001`` ... in both, as N jobs leave them that
each ran in a worktree of their own (``worktree-add -r --branch job-I``)
and saved one annexed result file, ``results/out/job-I.txt``: the job's
commit in ``results``, and in ``super`` a commit that records it. Then it
times, each on a copy of that same start state, in one run:

* ours: ``datalad worktree-merge -r 'job-*'`` in ``super`` (a process of
  its own, DataLad's start-up included): one merge commit of all N
  branches in ``results``, and one in ``super`` that records the merged
  ``results``;
* BABS's procedure (PennLINC/babs, ``babs merge``) on ``results``: ``git
  merge -m ... BRANCH...`` (an octopus merge) of the job branches in
  chunks of up to 1000 (``--chunk``); where git refuses a chunk that
  large, again on a fresh copy with chunks of 100. BABS merges in a clone
  of its output store and records nothing in a superdataset;
* a loop of ``git merge --no-edit BRANCH`` over the branches, one after
  the other, in ``results``.

Each is checked afterwards: ``results`` must have all N result files.
The output: the seconds of each, and the ratio ours / BABS against the
target of issue #18 (at most 0.5). Usage::

    python benchmarks/bench_jobs.py              # N=1000
    python benchmarks/bench_jobs.py --quick      # N=50
    python benchmarks/bench_jobs.py --jobs 5000 --chunk 1000

The job branches are written with git's plumbing (one ``git annex add``
of all N result files for their annex keys, content and location log, then
one ``git fast-import``), not with N ``worktree-add`` calls, which would
take longer than everything timed here. Only public tools are used: git,
git-annex, datalad and Python's standard library.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DATALAD = str(Path(sys.executable).with_name('datalad'))
TARGET = 0.5
QUICK_JOBS = 50
IDENTITY = {'GIT_AUTHOR_NAME': 'Bench', 'GIT_AUTHOR_EMAIL': 'bench@example',
            'GIT_COMMITTER_NAME': 'Bench',
            'GIT_COMMITTER_EMAIL': 'bench@example'}


def run(cmd: list[str], cwd: Path, input: str | None = None) -> str:
    res = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True,
                         input=input, env={**os.environ, **IDENTITY})
    if res.returncode:
        raise RuntimeError(f'{cmd[:4]} failed in {cwd}: {res.stderr[-2000:]}'
                           f'{res.stdout[-2000:]}')
    return res.stdout


def direct_git_annex(bindir: Path) -> str | None:
    """bench_nested.py's ``direct_git_annex``: where ``git-annex`` on PATH
    is PyPI's Python launcher, its binary is linked first on PATH, for
    ours and the baselines alike; what was done"""
    sys.path.insert(0, str(Path(__file__).parent))
    try:
        from bench_nested import direct_git_annex as direct
    finally:
        sys.path.pop(0)
    return direct(bindir)


def git(repo: Path, *args: str, input: str | None = None) -> str:
    return run(['git', *args], repo, input)


def job_names(n: int) -> list[str]:
    return [f'job-{i:04d}' for i in range(1, n + 1)]


def build(root: Path, n: int) -> Path:
    """The start state at ``root/super``: see the module's documentation"""
    top = root / 'super'
    run([DATALAD, 'create', '-c', 'text2git', str(top)], root)
    run([DATALAD, 'create', '-d', str(top), str(top / 'results')], root)
    results = top / 'results'
    names = job_names(n)
    # the result files, annexed in one go on a scratch branch: their keys,
    # content and location log, as each job's 'datalad save' leaves them
    base = git(results, 'rev-parse', 'HEAD').strip()
    out = results / 'out'
    out.mkdir()
    for name in names:
        (out / f'{name}.txt').write_text(f'result of {name}\n')
    git(results, 'annex', 'add', '--quiet', 'out')
    links = {}
    for line in git(results, 'ls-files', '-s', 'out').splitlines():
        meta, path = line.split('\t', 1)
        links[Path(path).stem] = meta.split()[1]
    git(results, 'reset', '-q', '--hard', base)
    job_commits = fast_import(results, 'out', names, links, base)
    super_base = git(top, 'rev-parse', 'HEAD').strip()
    fast_import_pointers(top, names, job_commits, super_base)
    return top


def fast_import(repo: Path, folder: str, names: list[str],
                blobs: dict[str, str], base: str) -> dict[str, str]:
    """One commit per job on ``base``, adding its blob as a symbolic link
    (an annexed file) ``folder/NAME.txt``, on branch NAME; their commits"""
    stream = []
    for i, name in enumerate(names, 1):
        stream += [f'commit refs/heads/{name}', f'mark :{i}',
                   'committer Bench <bench@example> 1700000000 +0000',
                   data(f'[DATALAD RUNCMD] {name}'), f'from {base}',
                   f'M 120000 {blobs[name]} {folder}/{name}.txt', '']
    git(repo, 'fast-import', '--quiet', '--export-marks=marks',
        input='\n'.join(stream) + '\n')
    marks = (repo / 'marks').read_text().split('\n')
    (repo / 'marks').unlink()
    by_mark = dict(line.split() for line in marks if line)
    return {name: by_mark[f':{i}'] for i, name in enumerate(names, 1)}


def fast_import_pointers(top: Path, names: list[str],
                         commits: dict[str, str], base: str) -> None:
    """One commit per job in the superdataset, recording its commit of
    ``results``, on branch NAME"""
    stream = []
    for name in names:
        stream += [f'commit refs/heads/{name}',
                   'committer Bench <bench@example> 1700000000 +0000',
                   data(f'[DATALAD] save {name}'), f'from {base}',
                   f'M 160000 {commits[name]} results', '']
    git(top, 'fast-import', '--quiet', input='\n'.join(stream) + '\n')


def data(text: str) -> str:
    return f'data {len(text.encode())}\n{text}'


def copy_of(template: Path, dest: Path) -> Path:
    """A copy of the start state, with git's stat data refreshed"""
    shutil.copytree(template, dest, symlinks=True)
    for repo in (dest, dest / 'results'):
        git(repo, 'update-index', '-q', '--refresh')
    return dest


def timed(work) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def ours(top: Path) -> None:
    run([DATALAD, 'worktree-merge', '-r', 'job-*'], top)


def babs(top: Path, names: list[str], chunk: int) -> None:
    results = top / 'results'
    for i in range(0, len(names), chunk):
        part = names[i:i + chunk]
        git(results, 'merge', '-m', f'merge results chunk {i // chunk + 1}',
            *part)


def merge_loop(top: Path, names: list[str]) -> None:
    results = top / 'results'
    for name in names:
        git(results, 'merge', '--no-edit', name)


def result_files(top: Path) -> int:
    """How many result files ``results`` has checked out"""
    return len(os.listdir(top / 'results' / 'out'))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--jobs', type=int, default=1000)
    parser.add_argument('--chunk', type=int, default=1000)
    parser.add_argument('--quick', action='store_true',
                        help=f'N={QUICK_JOBS}')
    args = parser.parse_args(argv)
    n = QUICK_JOBS if args.quick else args.jobs
    names = job_names(n)
    with tempfile.TemporaryDirectory(prefix='bench-jobs-') as tmp:
        root = Path(tmp)
        (root / 'template').mkdir()
        linked = direct_git_annex(root / 'bin')
        print(f'building {n} job branches ...', flush=True)
        took = timed(lambda: build(root / 'template', n))
        template = root / 'template' / 'super'
        print(f'built in {took:.1f} s; git {git_version()}', flush=True)
        times, notes = {}, [linked] if linked else []
        top = copy_of(template, root / 'ours')
        times['ours: worktree-merge -r job-*'] = timed(lambda: ours(top))
        check(top, n, 'ours')
        notes.append(f'ours: super records the merged results: '
                     f'{pointer_recorded(top)}')
        chunk = args.chunk
        top = copy_of(template, root / 'babs')
        try:
            took = timed(lambda: babs(top, names, chunk))
        except RuntimeError as e:
            notes.append(f'BABS chunks of {chunk} failed '
                         f'({str(e)[-200:].strip()}); chunks of 100')
            chunk = 100
            top = copy_of(template, root / 'babs-100')
            took = timed(lambda: babs(top, names, chunk))
        babs_label = f'BABS: git merge octopus, chunks of {chunk}'
        times[babs_label] = took
        check(top, n, 'BABS')
        top = copy_of(template, root / 'loop')
        times['loop: git merge per branch'] = timed(
            lambda: merge_loop(top, names))
        check(top, n, 'loop')
    report(n, times, babs_label, notes)


def check(top: Path, n: int, who: str) -> None:
    found = result_files(top)
    if found != n:
        raise SystemExit(f'{who}: {found} result files, not {n}')


def pointer_recorded(top: Path) -> bool:
    return git(top, 'rev-parse', 'HEAD:results').strip() == \
        git(top / 'results', 'rev-parse', 'HEAD').strip()


def git_version() -> str:
    return git(Path('.'), '--version').split()[-1]


def report(n: int, times: dict[str, float], babs_label: str,
           notes: list[str]) -> None:
    print(f'\n{n} job branches, each adding one annexed result file, '
          'merged home:')
    width = max(map(len, times))
    for label, seconds in times.items():
        print(f'  {label:<{width}}  {seconds:8.1f} s')
    ratio = times['ours: worktree-merge -r job-*'] / times[babs_label]
    verdict = 'met' if ratio <= TARGET else 'not met'
    print(f'ratio ours / BABS: {ratio:.2f} (target <= {TARGET}): {verdict}')
    for note in notes:
        print(f'note: {note}')


if __name__ == '__main__':
    main()
