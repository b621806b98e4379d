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
  chunks of up to 2000, BABS's default (``--chunk``); where git refuses a
  chunk that large, again on a fresh copy with chunks of 100. BABS merges
  in a clone of its output store and records nothing in a superdataset.
  With ``--babs-budget SECONDS`` no chunk starts once that much time is
  spent: then the time of all chunks is given as a lower bound (the
  mean time of the chunks done, times their number: a later chunk merges
  into a larger index, so it is not expected to take less);
* a loop of ``git merge --no-edit BRANCH`` over the branches, one after
  the other, in ``results``, only up to N = ``--loop-max`` (1000).

Each is checked afterwards: ``results`` must have all N result files. The
output, per N and way: the seconds, the milliseconds per branch (constant
where the time grows linearly), and the peak memory: the largest resident
set of the process or of any process it started (``wait4``'s
``ru_maxrss``; for BABS and the loop, the largest of its ``git merge``
processes). Then per N the ratio ours / BABS against the target of issue
#18 (at most 0.5), and at 40 000 the target of issue #26 (under 300 s).
Usage::

    python benchmarks/bench_jobs.py              # N=1000
    python benchmarks/bench_jobs.py --quick      # N=50
    python benchmarks/bench_jobs.py --jobs 1000 10000 40000 --babs-budget 240

The job branches are written with git's plumbing (one ``git annex add``
of all N result files for their annex keys, content and location log, then
one ``git fast-import``), not with N ``worktree-add`` calls, which would
take longer than everything timed here; then packed (``git repack -a
-d``), as branches fetched or pushed from a cluster arrive, so that no
``git gc --auto`` of the build's loose objects runs in a timed step. Only
public tools are used: git, git-annex, datalad and Python's standard
library.
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
"""Issue #18: at most half of BABS's time"""
BIG, BIG_SECONDS = 40000, 300
"""Issue #26: 40 000 job branches merged in under 5 minutes"""
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
    for repo in (top, results):
        pack(repo)
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


def pack(repo: Path) -> None:
    """Pack the objects of ``repo``, as job branches fetched or pushed
    from a cluster arrive: else the first merge of each copy would start
    ``git gc --auto`` on the build's loose objects, in ours and BABS's
    timed steps alike"""
    git(repo, 'repack', '-a', '-d', '-q')
    git(repo, 'prune-packed', '-q')


def copy_of(template: Path, dest: Path) -> Path:
    """A copy of the start state, with git's stat data refreshed"""
    shutil.copytree(template, dest, symlinks=True)
    for repo in (dest, dest / 'results'):
        git(repo, 'update-index', '-q', '--refresh')
    return dest


class Step:
    """One timed way of merging: its seconds, the peak memory of its
    largest process, and what else to say of it (a plain class: the tests
    load this script without registering it as a module, which a
    dataclass needs)"""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.peak_kib = 0
        self.note = ''


def measured(cmd: list[str], cwd: Path, step: Step) -> None:
    """Run ``cmd`` in ``cwd``, adding its time to ``step`` and raising its
    peak to the largest resident set of the process or of any process it
    started and waited for (``wait4``'s ``ru_maxrss``, in KiB on Linux)"""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT,
                            env={**os.environ, **IDENTITY})
    # the output is small: git merge -q, and ours without a renderer
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    step.seconds += time.perf_counter() - start
    step.peak_kib = max(step.peak_kib, usage.ru_maxrss)
    if proc.returncode:
        raise RuntimeError(f'{cmd[:4]} failed in {cwd}: '
                           f'{out.decode(errors="replace")[-2000:]}')


def ours(top: Path) -> Step:
    step = Step()
    measured([DATALAD, '-f', 'disabled', 'worktree-merge', '-r', 'job-*'],
             top, step)
    return step


def babs(top: Path, names: list[str], chunk: int,
         budget: float | None = None) -> Step:
    """BABS's merge of ``names`` in chunks of ``chunk``; with a ``budget``
    (seconds), no chunk starts once it is spent"""
    results, step = top / 'results', Step()
    chunks = range(0, len(names), chunk)
    for done, i in enumerate(chunks):
        if budget is not None and done and step.seconds >= budget:
            per = step.seconds / done
            step.note = (
                f'stopped after {done} of {len(chunks)} chunks '
                f'({i} of {len(names)} branches) at the budget of '
                f'{budget:.0f} s; all {len(chunks)} would take at least '
                f'{per * len(chunks):.0f} s ({per:.1f} s a chunk so far; '
                'later chunks merge into a larger index)')
            step.seconds = per * len(chunks)
            return step
        measured(['git', 'merge', '-q', '-m',
                  f'merge results chunk {i // chunk + 1}',
                  *names[i:i + chunk]], results, step)
    return step


def merge_loop(top: Path, names: list[str]) -> Step:
    results, step = top / 'results', Step()
    for name in names:
        measured(['git', 'merge', '-q', '--no-edit', name], results, step)
    return step


def result_files(top: Path) -> int:
    """How many result files ``results`` has checked out"""
    return len(os.listdir(top / 'results' / 'out'))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--jobs', type=int, nargs='+', default=[1000],
                        help='one or more N')
    parser.add_argument('--chunk', type=int, default=2000,
                        help="BABS's chunk size (BABS's default: 2000)")
    parser.add_argument('--loop-max', type=int, default=1000,
                        help='the largest N for the loop of single merges')
    parser.add_argument('--babs-budget', type=float, default=None,
                        help='seconds after which no more BABS chunks start '
                             '(then the time of all is a lower bound)')
    parser.add_argument('--quick', action='store_true',
                        help=f'N={QUICK_JOBS}')
    args = parser.parse_args(argv)
    sizes = [QUICK_JOBS] if args.quick else args.jobs
    rows, notes = [], []
    with tempfile.TemporaryDirectory(prefix='bench-jobs-') as tmp:
        root = Path(tmp)
        linked = direct_git_annex(root / 'bin')
        if linked:
            notes.append(linked)
        for n in sizes:
            rows += one_size(root / str(n), n, args, notes)
            shutil.rmtree(root / str(n))
    report(rows, notes)


def one_size(root: Path, n: int, args, notes: list[str]
             ) -> list[tuple[int, str, Step]]:
    """Build N job branches, merge them each way; the rows of the report"""
    names = job_names(n)
    (root / 'template').mkdir(parents=True)
    print(f'building {n} job branches ...', flush=True)
    took = timed(lambda: build(root / 'template', n))
    template = root / 'template' / 'super'
    print(f'built in {took:.1f} s; git {git_version()}', flush=True)
    rows = []
    top = copy_of(template, root / 'ours')
    rows.append((n, OURS, ours(top)))
    check(top, n, 'ours')
    notes.append(f'N={n}: ours: super records the merged results: '
                 f'{pointer_recorded(top)}')
    shutil.rmtree(top)
    print(f'  ours: {rows[-1][2].seconds:.1f} s', flush=True)
    chunk = args.chunk
    top = copy_of(template, root / 'babs')
    try:
        step = babs(top, names, chunk, args.babs_budget)
    except RuntimeError as e:
        notes.append(f'N={n}: BABS chunks of {chunk} failed '
                     f'({str(e)[-200:].strip()}); chunks of 100')
        chunk = 100
        shutil.rmtree(top)
        top = copy_of(template, root / 'babs-100')
        step = babs(top, names, chunk, args.babs_budget)
    if step.note:
        notes.append(f'N={n}: BABS {step.note}')
    else:
        check(top, n, 'BABS')
    shutil.rmtree(top)
    rows.append((n, f'BABS: git merge octopus, chunks of {chunk}', step))
    print(f'  BABS: {step.seconds:.1f} s', flush=True)
    if n <= args.loop_max:
        top = copy_of(template, root / 'loop')
        rows.append((n, LOOP, merge_loop(top, names)))
        check(top, n, 'loop')
        shutil.rmtree(top)
    else:
        notes.append(f'N={n}: the loop of single merges was not run '
                     f'(N > --loop-max {args.loop_max})')
    return rows


OURS = 'ours: worktree-merge -r job-*'
LOOP = 'loop: git merge per branch'


def timed(work) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def check(top: Path, n: int, who: str) -> None:
    found = result_files(top)
    if found != n:
        raise SystemExit(f'{who}: {found} result files, not {n}')


def pointer_recorded(top: Path) -> bool:
    return git(top, 'rev-parse', 'HEAD:results').strip() == \
        git(top / 'results', 'rev-parse', 'HEAD').strip()


def git_version() -> str:
    return git(Path('.'), '--version').split()[-1]


def report(rows: list[tuple[int, str, Step]], notes: list[str]) -> None:
    """The table: per N and way, seconds, milliseconds per branch and the
    peak memory; per N the ratio ours / BABS; the targets"""
    sizes = sorted({n for n, _, _ in rows})
    print(f'\n{", ".join(map(str, sizes))} job branches, each adding one '
          'annexed result file, merged home:')
    width = max(len(label) for _, label, _ in rows)
    print(f'  {"N":>6}  {"how":<{width}}  {"seconds":>9}  {"ms/branch":>9}'
          f'  {"peak MiB":>8}')
    for n, label, step in rows:
        print(f'  {n:>6}  {label:<{width}}  {step.seconds:9.1f}  '
              f'{1000 * step.seconds / n:9.2f}  {step.peak_kib / 1024:8.1f}')
    for n in sizes:
        mine = next(s for m, label, s in rows if m == n and label == OURS)
        base = next(s for m, label, s in rows
                    if m == n and label.startswith('BABS'))
        ratio = mine.seconds / base.seconds
        verdict = 'met' if ratio <= TARGET else 'not met'
        bound = ' (BABS: a lower bound)' if base.note else ''
        print(f'N={n}: ratio ours / BABS: {ratio:.3f}{bound} '
              f'(target <= {TARGET}): {verdict}')
        if n >= BIG:
            verdict = 'met' if mine.seconds < BIG_SECONDS else 'not met'
            print(f'N={n}: ours in {mine.seconds:.1f} s (target for '
                  f'{BIG}: under {BIG_SECONDS} s): {verdict}')
    for note in notes:
        print(f'note: {note}')


if __name__ == '__main__':
    main()
