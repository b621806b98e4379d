"""Plain helpers for the tests: no fixtures here (those are in
``tests/fixtures.py``), so that a test module may import any of them

The names of the project hierarchy that ``tests/fixtures.py`` builds
(``DERIVED``, ``CODE``, ``PARENT``, ``INSTALLED``, ``RUN_CMD``), the
``datalad`` command of the Python that runs the tests, and helpers that run
git and DataLad, compare hierarchies and load the benchmark scripts.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
from datalad import api as dl

TOP = Path(__file__).parent.parent
"""The top of the repository (where setup.cfg is)"""

DOCS = TOP / 'docs'
BENCHMARKS = TOP / 'benchmarks'

# paths in the hierarchy, relative to super/
DERIVED = 'derived/L5b'
CODE = f'{DERIVED}/code'
# each installed subdataset: (its parent, its path in the parent)
PARENT = {
    'raw/bpod': ('.', 'raw/bpod'),
    'raw/2p': ('.', 'raw/2p'),
    DERIVED: ('.', DERIVED),
    CODE: (DERIVED, 'code'),
    f'{DERIVED}/inputs/bpod': (DERIVED, 'inputs/bpod'),
    f'{DERIVED}/inputs/2p': (DERIVED, 'inputs/2p'),
}
INSTALLED = ['.', *PARENT]
"""The installed datasets, top first"""

DATALAD = str(Path(sys.executable).with_name('datalad'))
"""The ``datalad`` command of the Python that runs the tests"""

PROCESS_PY = """\
import sys
from pathlib import Path

out = Path(sys.argv[-1])
out.parent.mkdir(parents=True, exist_ok=True)
lines = [f"{p}: {len(Path(p).read_text().splitlines())} lines"
         for p in sys.argv[1:-1]]
out.write_text("\\n".join(lines) + "\\n")
"""

RUN_CMD = (f'{sys.executable} code/process.py '
           'inputs/bpod/sub-01/trials.tsv inputs/2p/sub-01/F.csv '
           'results/summary.txt')


def direct_git_annex(bindir: Path, mp: pytest.MonkeyPatch) -> None:
    """Where git-annex comes from PyPI (the git-annex package), its
    commands on PATH are Python scripts that only exec the bundled binary,
    as a symbolic link would: a Python start for each of the many
    git-annex processes (filter-process, hooks, batch commands) that git and
    DataLad start. Put the symbolic links in ``bindir``, first on PATH, to
    the same binary, with the same file magic database that the scripts
    set (MAGIC)"""
    try:
        import git_annex
    except ImportError:
        return  # a git-annex installed otherwise: used as it is
    exe = Path(git_annex.__file__).with_name('git-annex')
    if not exe.is_file():
        return
    for name in ('git-annex', 'git-annex-shell', 'git-remote-annex',
                 'git-remote-tor-annex'):
        (bindir / name).symlink_to(exe)
    magic = exe.with_name('magic.mgc')
    if magic.exists():
        mp.setenv('MAGIC', str(magic))
    mp.setenv('PATH', f'{bindir}{os.pathsep}{os.environ["PATH"]}')
    global DIRECT_BIN
    DIRECT_BIN = str(bindir)


DIRECT_BIN = ''
"""The directory of ``direct_git_annex``'s links, if it made them"""


def datalad_cli(*args: str, cwd: Path | None = None,
                **kw) -> subprocess.CompletedProcess:
    """Run ``datalad ARGS`` (in ``cwd``) as a user does; output as text"""
    return subprocess.run([DATALAD, *args], cwd=cwd, capture_output=True,
                          text=True, **kw)


def env_with_datalad() -> dict:
    """The environment, with the directory of ``datalad`` (and of the
    Python that runs the tests) first on PATH, for scripts that call it
    (after ``direct_git_annex``'s links, if any)"""
    path = f'{Path(DATALAD).parent}{os.pathsep}{os.environ["PATH"]}'
    if DIRECT_BIN:
        path = f'{DIRECT_BIN}{os.pathsep}{path}'
    return dict(os.environ, PATH=path)


def clean(ds) -> bool:
    """Whether ``datalad status -r`` finds nothing to report in ``ds``"""
    status = dl.status(dataset=ds, recursive=True, result_renderer='disabled',
                       return_type='list')
    return all(s['state'] == 'clean' for s in status)


def git(repo: Path, *args: str) -> str:
    return subprocess.run(['git', *args], cwd=repo, check=True, text=True,
                          capture_output=True).stdout.strip()


def datasets_of(top: Path) -> list[Path]:
    """Installed datasets of a hierarchy on disk, top first"""
    found = [top]
    for dirpath, dirnames, _ in os.walk(top):
        dirnames[:] = [d for d in dirnames if d != '.git']
        for d in dirnames:
            if (Path(dirpath) / d / '.git').exists():
                found.append(Path(dirpath) / d)
    return found


def snapshot(top: Path) -> dict:
    """Everything about a hierarchy that this package must not change"""
    state = {}
    for ds in datasets_of(top):
        state[str(ds)] = dict(
            refs=git(ds, 'for-each-ref', '--format=%(refname) %(objectname)'),
            head=git(ds, 'rev-parse', 'HEAD'),
            symbolic=subprocess.run(
                ['git', 'symbolic-ref', '-q', 'HEAD'], cwd=ds, text=True,
                capture_output=True).stdout,
            status=git(ds, 'status', '--porcelain', '--ignored',
                       '--ignore-submodules=none'),
            worktrees=git(ds, 'worktree', 'list', '--porcelain'),
        )
    return state


def quiet(**kw):
    """Keyword arguments for a Python API call that reports, never raises"""
    return dict(result_renderer='disabled', return_type='list',
                on_failure='ignore', **kw)


def add(origin, path, **kw):
    """worktree_add as a notebook user calls it, results as a list"""
    kw.setdefault('on_failure', 'ignore')
    return dl.worktree_add(path, dataset=origin, result_renderer='disabled',
                           return_type='list', **kw)


def by_path(results, root):
    """Results keyed by their path relative to ``root``"""
    return {os.path.relpath(r['path'], root): r for r in results}


def recorded(parent: Path, sub: str) -> str:
    """The commit that ``parent``'s HEAD records for subdataset ``sub``"""
    return git(parent, 'rev-parse', f'HEAD:{sub}')


def commit_file(repo: Path, name: str, text: str, message: str) -> str:
    """Commit one file with plain git; returns the new commit"""
    (repo / name).parent.mkdir(parents=True, exist_ok=True)
    (repo / name).write_text(text)
    git(repo, 'add', '--', name)
    git(repo, 'commit', '-q', '-m', message)
    return git(repo, 'rev-parse', 'HEAD')


def load_benchmark(name: str):
    """The script ``benchmarks/NAME.py``, imported as a module"""
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS /
                                                  f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def live_in_group(pgid: int) -> list[int]:
    """The processes of the process group ``pgid`` that have not ended:
    a zombie has (it runs no code and holds no file), although
    ``killpg(pgid, 0)`` still finds it until it is reaped. An orphan is
    reaped by process 1, which on some machines does so only about once a
    second (a firecracker VM's init: 1.1 s per killed command)"""
    found = []
    for entry in os.scandir('/proc'):
        if not entry.name.isdigit():
            continue
        try:
            with open(f'/proc/{entry.name}/stat', 'rb') as f:
                stat = f.read()
        except OSError:
            continue
        # pid (comm) state ppid pgrp ...: comm may hold spaces and ')'
        fields = stat[stat.rindex(b')') + 2:].split()
        if int(fields[2]) == pgid and fields[0] != b'Z':
            found.append(int(entry.name))
    return found


def wait_group_ended(pgid: int, timeout: float = 30) -> bool:
    """Wait until no process of the group ``pgid`` runs (see
    ``live_in_group``); whether that happened within ``timeout`` s"""
    import time
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not live_in_group(pgid):
            return True
        time.sleep(0.01)
    return False
