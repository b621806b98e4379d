"""The shared fixtures: a dataset hierarchy shaped like a real analysis
project, built once per test run, and git's configuration isolated

::

    super/                       superdataset (annex)
    ├── raw/bpod/                raw data subdataset, annexed files
    ├── raw/2p/                  raw data subdataset, annexed files
    └── derived/L5b/             analysis subdataset, with a `datalad run` record
        ├── inputs/bpod/         raw/bpod installed as an input (3rd level)
        ├── inputs/2p/           raw/2p as an ephemeral clone: shares its annex
        ├── code/                plain git subdataset (--no-annex)
        ├── containers/          registered, not installed
        └── results/summary.txt  annexed output of the run record

A second hierarchy has one subdataset of tens of thousands of files
(``large``: ``build_large``, 20 000 files in git and 200 annexed, built
once as ``large_template``), for checks of what the many-file paths do.

It is built once per session (``template``), at ``project/super`` in a
directory of its own; a second template adds a 'runs' worktree of the whole
hierarchy next to it (``runs_template``: ``worktree-add -r --branch runs``
at ``runs``). Each test gets a copy of its own at the same places below its
``tmp_path`` (``origin``, and ``runs`` when the test asks for it), with
every absolute path into the template rewritten to the copy (``restore``).
Templates are built once per test run (``built_once``): with pytest-xdist,
the first worker that needs one builds it, the others wait and share it.
Test modules with templates of their own use ``built_once`` and
``restore`` too.

Git's configuration is isolated for the whole session, also for the
``datalad`` processes the tests start: a HOME and a global git config of
their own (with a user identity), and no system config.

``tests/conftest.py`` registers the fixtures of this module; the plain
helpers, and the names of the hierarchy's datasets, are in
``tests/helpers.py``.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from datalad import api as dl

from tests.helpers import (
    PROCESS_PY,
    RUN_CMD,
    add,
    direct_git_annex,
)

# commits need an identity, also on a machine without any git config; set
# in the environment, they win over any configuration
IDENTITY = {'GIT_AUTHOR_NAME': 'Test User',
            'GIT_AUTHOR_EMAIL': 'test@example.com',
            'GIT_COMMITTER_NAME': 'Test User',
            'GIT_COMMITTER_EMAIL': 'test@example.com'}


@pytest.fixture(scope='session', autouse=True)
def isolated_git_config(tmp_path_factory):
    """Keep the user's and the system's git configuration out of the tests,
    as datalad-next's fixtures do: a HOME of its own whose .gitconfig is the
    global configuration (GIT_CONFIG_GLOBAL), with a user identity only, and
    no system configuration (GIT_CONFIG_NOSYSTEM). Set in the environment,
    so that git, git-annex and the ``datalad`` processes that the tests
    start see the same; DataLad's own configuration is reloaded"""
    from datalad import cfg
    home = tmp_path_factory.mktemp('home')
    gitconfig = home / '.gitconfig'
    gitconfig.write_text(
        '[user]\n'
        f'\tname = {IDENTITY["GIT_AUTHOR_NAME"]}\n'
        f'\temail = {IDENTITY["GIT_AUTHOR_EMAIL"]}\n')
    mp = pytest.MonkeyPatch()
    mp.setenv('HOME', str(home))
    mp.setenv('GIT_CONFIG_GLOBAL', str(gitconfig))
    mp.setenv('GIT_CONFIG_NOSYSTEM', '1')
    mp.delenv('XDG_CONFIG_HOME', raising=False)
    direct_git_annex(tmp_path_factory.mktemp('bin'), mp)
    for var, value in IDENTITY.items():
        if var not in os.environ:
            mp.setenv(var, value)
    cfg.reload(force=True)
    yield gitconfig
    mp.undo()
    cfg.reload(force=True)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def build_hierarchy(root: Path) -> Path:
    quiet = dict(result_renderer='disabled')
    sup = dl.create(root / 'super', **quiet)
    _write(sup.pathobj / 'README.md', 'A project\n')
    for name, fname in (('bpod', 'sub-01/trials.tsv'), ('2p', 'sub-01/F.csv')):
        raw = dl.create(sup.pathobj / 'raw' / name, dataset=sup, **quiet)
        _write(raw.pathobj / fname, f'{name} row 1\n{name} row 2\n')
        _write(raw.pathobj / 'sub-02' / 'notes.txt', f'{name} notes\n')
        raw.save(message=f'{name} raw data', **quiet)
    derived = dl.create(sup.pathobj / 'derived' / 'L5b', dataset=sup, **quiet)
    code = dl.create(derived.pathobj / 'code', dataset=derived,
                     annex=False, **quiet)
    _write(code.pathobj / 'process.py', PROCESS_PY)
    _write(code.pathobj / '.gitignore', '.venv/\n')
    code.save(message='processing script', **quiet)
    for name, reckless in (('bpod', None), ('2p', 'ephemeral')):
        dl.clone(source=str(sup.pathobj / 'raw' / name),
                 path=derived.pathobj / 'inputs' / name, dataset=derived,
                 reckless=reckless, **quiet)
    dl.create(derived.pathobj / 'containers', dataset=derived, **quiet)
    derived.save(message='add code, inputs and containers', **quiet)
    derived.run(RUN_CMD, message='summarize inputs',
                inputs=['inputs/bpod/sub-01/trials.tsv',
                        'inputs/2p/sub-01/F.csv'],
                outputs=['results/summary.txt'], **quiet)
    sup.save(recursive=True, message='record derived results', **quiet)
    derived.drop('containers', what='datasets', reckless='kill',
                 recursive=True, **quiet)
    return sup.pathobj


def built_once(tmp_path_factory, name: str, build) -> Path:
    """The directory ROOT for the template ``name``, made by
    ``build(ROOT)`` once per test run: the pytest-xdist workers share it
    (the first to ask builds it, under a lock, while the others wait), as
    they share the run's base temporary directory. Templates are read
    only: tests work on copies of them (``restore``)"""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get('PYTEST_XDIST_WORKER'):
        base = base.parent  # the run's directory, above each worker's own
    shared = base / 'templates'
    shared.mkdir(parents=True, exist_ok=True)
    root, done = shared / name, shared / f'{name}.done'
    with open(shared / f'{name}.lock', 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            # what a build that failed (in any worker) left behind
            shutil.rmtree(root, ignore_errors=True)
            root.mkdir()
            build(root)
            done.touch()
    return root


@pytest.fixture(scope='session')
def template(tmp_path_factory) -> Path:
    """The hierarchy, built once, at ROOT/project/super; returns super/"""
    root = built_once(tmp_path_factory, 'template',
                      lambda root: build_hierarchy(root / 'project'))
    return root / 'project' / 'super'


@pytest.fixture(scope='session')
def runs_template(template, tmp_path_factory) -> Path:
    """A copy of the hierarchy with a 'runs' worktree of all its datasets,
    made once: ROOT/project/super and ROOT/runs; returns ROOT"""
    def build(root):
        restore(template.parent.parent, root)
        res = add(root / 'project' / 'super', root / 'runs', branch='runs',
                  recursive=True)
        assert {r['status'] for r in res} <= {'ok', 'notneeded'}, res

    return built_once(tmp_path_factory, 'runs-template', build)


LARGE_GIT_FILES = 20000
LARGE_ANNEXED = 200
"""The subdataset ``data`` of the large template: files in git (100 per
directory, in ``sub-NNN/func/``), and locked annexed files"""


def build_large(root: Path) -> Path:
    """A superdataset with one subdataset ``data`` of ``LARGE_GIT_FILES``
    files in git and ``LARGE_ANNEXED`` annexed ones, at ROOT/large/super:
    made with DataLad, the files added with git-annex (annexed) and with
    plain git (git-annex's filter off: much faster, and where they go is
    said here), as a BIDS dataset holds them"""
    quiet = {'result_renderer': 'disabled'}
    sup = dl.create(root / 'large' / 'super', **quiet)
    data = dl.create(sup.pathobj / 'data', dataset=sup, **quiet).pathobj
    annexed = []
    for i in range(LARGE_GIT_FILES):
        d, n = divmod(i, 100)
        func = data / f'sub-{d:03d}' / 'func'
        if not n:
            func.mkdir(parents=True)
        (func / f'sub-{d:03d}_task-t{n:02d}_bold.json').write_text(
            f'{{"RepetitionTime": {n}, "subject": {d}}}\n')
        if n < LARGE_ANNEXED * 100 // LARGE_GIT_FILES:
            name = func / f'sub-{d:03d}_task-t{n:02d}_bold.nii.gz'
            name.write_bytes(b'nifti %d\n' % i)
            annexed.append(str(name.relative_to(data)))
    subprocess.run(['git', 'annex', 'add', '-q', '--force-large', '--',
                    *annexed], cwd=data, check=True)
    subprocess.run(['git', *NO_ANNEX_FILTER, 'add', '--', '.'], cwd=data,
                   check=True)
    subprocess.run(['git', '-c', 'gc.auto=0', 'commit', '-q', '-m',
                    'BIDS-sized'], cwd=data, check=True)
    subprocess.run(['git', 'repack', '-a', '-d', '-q'], cwd=data, check=True)
    sup.save(path='data', message='record data', **quiet)
    return sup.pathobj


@pytest.fixture(scope='session')
def large_template(tmp_path_factory) -> Path:
    """The large hierarchy (``build_large``), built once; returns ROOT, with
    the superdataset at ROOT/large/super"""
    return built_once(tmp_path_factory, 'large', build_large)


@pytest.fixture
def large(large_template, tmp_path) -> Path:
    """A private copy of the large hierarchy at tmp_path/large/super;
    returns the superdataset"""
    restore(large_template, tmp_path)
    return tmp_path / 'large' / 'super'


@pytest.fixture
def origin(request, tmp_path) -> Path:
    """A private copy of the project hierarchy at tmp_path/project/super;
    returns the superdataset. A test that asks for ``runs`` as well gets
    the copy that has that worktree"""
    if 'runs' in request.fixturenames:
        restore(request.getfixturevalue('runs_template'), tmp_path)
    else:
        restore(request.getfixturevalue('template').parent.parent, tmp_path)
    return tmp_path / 'project' / 'super'


@pytest.fixture
def runs(origin, tmp_path) -> Path:
    """A 'runs' worktree of the whole hierarchy at tmp_path/runs, as
    `datalad worktree-add -r --branch runs` makes it from ``origin``
    (restored from ``runs_template``)"""
    wt = tmp_path / 'runs'
    assert (wt / '.git').exists()
    return wt


def restore(template_root: Path, dest: Path) -> list[Path]:
    """Copy what ``template_root`` holds (``project/``, and ``runs/`` if
    there) into the directory ``dest``, and make the copy independent of the
    template (``relocate``): returns the datasets of the copy"""
    tops = []
    for entry in sorted(template_root.iterdir()):
        shutil.copytree(entry, dest / entry.name, symlinks=True)
        tops.append(dest / entry.name)
    return relocate(tops, template_root, dest)


NO_ANNEX_FILTER = ['-c', 'filter.annex.process=', '-c', 'filter.annex.clean=',
                   '-c', 'filter.annex.smudge=']
GIT_TEXT_FILES = {'gitdir', 'config', 'config.worktree'}
"""Files of a git directory that may hold absolute paths (besides reflogs):
a linked worktree's location, remote and submodule URLs, per-worktree
configuration"""


def relocate(tops: list[Path], old: Path, new: Path) -> list[Path]:
    """Rewrite every absolute path below ``old`` in the copied trees
    ``tops`` to the same path below ``new``: symbolic link targets (the
    ephemeral clone's ``.git/annex``, links git-annex made), ``.git`` files
    of linked worktrees (``gitdir: ...``), and in git directories the
    ``gitdir`` files of registered worktrees, configuration and reflogs.
    Committed files (a ``.gitmodules`` that records a clone's URL) are left
    as they are. Then refresh git's stat cache of every dataset, which the
    copy made stale. Returns the datasets found"""
    pattern = re.compile(re.escape(os.fsencode(old)) + rb'(?![\w.@+~-])')
    replacement = os.fsencode(new)
    datasets = []
    for top in tops:
        for dirpath, dirnames, filenames in os.walk(top):
            here = Path(dirpath)
            in_git = '.git' in here.relative_to(top).parts
            if not in_git and '.git' in dirnames + filenames:
                datasets.append(here)
            for name in dirnames + filenames:
                path = here / name
                if path.is_symlink():
                    target = os.fsencode(os.readlink(path))
                    moved = pattern.sub(replacement, target)
                    if moved != target:
                        path.unlink()
                        path.symlink_to(os.fsdecode(moved))
                elif (name == '.git' and path.is_file()) or (in_git and (
                        name in GIT_TEXT_FILES or 'logs' in
                        here.relative_to(top).parts) and path.is_file()):
                    data = path.read_bytes()
                    moved = pattern.sub(replacement, data)
                    if moved != data:
                        path.write_bytes(moved)
            # object stores hold no paths: not worth walking
            dirnames[:] = [d for d in dirnames
                           if not (in_git and d == 'objects')]

    def refresh(ds):
        out = subprocess.run(['git', *NO_ANNEX_FILTER, 'update-index', '-q',
                              '--ignore-submodules', '--refresh'], cwd=ds,
                             capture_output=True, text=True)
        assert out.returncode == 0, (ds, out.stdout + out.stderr)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(refresh, datasets))
    return datasets

