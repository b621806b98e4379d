#!/usr/bin/env python3
"""Benchmark: datalad-worktree against git's own work on the same hierarchy

Builds a superdataset with N subdatasets, then times, in alternating rounds
on the same hierarchy, each command of ours against a loop that does git's
and git-annex's own part of the work by hand (its baseline):

* ``datalad worktree-add -r``, serial, with ``-J 2``, and serial with
  ``--no-mtimes`` (what carrying modification times costs), against a
  loop of ``git worktree add`` per dataset at the commits the parents
  record (``git loop: worktree add``);
* ``datalad worktree-list -r`` in the superdataset, with the worktree
  present, and ``datalad worktree-sync -r`` and ``datalad worktree-merge
  -r`` with nothing to do and with one changed subdataset, against a loop
  of ``git status --porcelain`` over the worktree's datasets (``git loop:
  status``);
* ``datalad worktree-remove --force`` of the whole worktree, run in the
  superdataset, against ``rm -rf`` of the worktree and then ``git
  worktree prune`` and ``git branch -D`` per dataset (``raw loop: rm +
  prune + branch -D``);
* ``datalad clone --reckless ephemeral`` plus a recursive install, the
  usual alternative, against the ``git worktree add`` loop; only up to
  N=100 (``--ephemeral-up-to``): at three to four times the git loop it
  would dominate the run time at N=500 and N=1000.

Every command runs as a process of its own, so DataLad's start-up time is
included, as a user pays it. Then one more round runs with
``GIT_TRACE2_EVENT`` set and counts the git processes that each of our
commands and each baseline starts ("start" events; also those that
git-annex starts), per dataset.

The output: the machine; per N, how long the build took and the bytes a
worktree adds; a table of medians, ms per dataset, git processes per
dataset, and each figure as a ratio to its baseline; the ms per dataset
of each figure at each N, with the ratio of that at the largest N to that
at the smallest (at most 1.3: "linear"); and the targets of issues #17
and #27,
each with its ratio per N and "met" or "not met". Usage::

    python benchmarks/bench_nested.py            # N=100, 500, 1000; 3 rounds
    python benchmarks/bench_nested.py --quick    # N=10, 50; 1 round
    python benchmarks/bench_nested.py --sizes 100 --rounds 3 --levels 3

``--quick`` also leaves out the ephemeral clone and counts the git
processes in its one timed round (whose times then include the tracing);
``--sizes``, ``--rounds`` and ``--ephemeral-up-to`` given with it win. It
takes one to one and a half minutes on a 2-core machine; the default run,
whose rounds at N=1000 take about ten minutes each, over an hour.

The datasets: the superdataset is a git-annex repository with one annexed
file. Each subdataset is a copy of one template dataset (``git init``,
``git annex init``, 20 annexed files of 1 KiB, locked, and ``README.md``,
``code.py`` and ``params.json`` in git, one commit), built once and packed
with ``git repack``; a copy (``shutil.copytree``, symlinks kept) then
becomes a dataset of its own with one ``git fast-import`` and one ``git
read-tree``, and no git-annex process:

* a root commit of its own: the three files in git name the copy, so the
  subdatasets' commits differ (the annexed files are the same in all);
* an annex UUID of its own (``annex.uuid``), also in the git-annex
  branch: ``uuid.log`` describes it by the copy's name and the location
  logs say that this copy has the content (``git annex whereis`` and
  ``git annex fsck --fast`` agree), as ``git annex reinit`` followed by
  ``git annex fsck`` would leave it, and git-annex's index of that branch
  is up to date;
* git's index, written by the script with the stat data of the copied
  files (git's own refresh would read every file again through
  git-annex's filter, about 140 ms per dataset), and
  ``refs/annex/last-index`` as git-annex's post-checkout hook leaves it,
  so that neither git nor git-annex has first-time work left in the
  timed rounds.

That takes about 0.1 s per subdataset (10 to 15 s for N=100 on a 2-core
machine busy with other work), against about a second for ``git annex
init`` and ``git annex add`` in each. The subdatasets are registered as
DataLad does, with a ``.gitmodules`` entry and a gitlink each, in one
commit. With ``--levels 3`` they sit below N/10 intermediate datasets,
copies of a template with one annexed file.

If ``git-annex`` on PATH is the launcher of PyPI's ``git-annex`` package (a
Python process that starts the binary, about 45 ms per call), the script
puts a directory first on PATH that links the binary directly, so that our
commands and the baselines alike pay git-annex's own costs only, and says
so in its output. Only public tools are used: git, git-annex, datalad and
Python's standard library.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

DATALAD = str(Path(sys.executable).with_name('datalad'))
BRANCH = 'b'
GIT_FILES = ('README.md', 'code.py', 'params.json')
DEFAULT_SIZES = [100, 500, 1000]
QUICK_SIZES = [10, 50]
EPHEMERAL_UP_TO = 100

ADD_LOOP = 'git loop: worktree add'
STATUS_LOOP = 'git loop: status'
REMOVE_LOOP = 'raw loop: rm + prune + branch -D'
EPHEMERAL = 'ephemeral clone + install -r'
FIGURES = [
    ADD_LOOP,
    'worktree-add -r',
    'worktree-add -r -J 2',
    'worktree-add -r --no-mtimes',
    EPHEMERAL,
    STATUS_LOOP,
    'worktree-list -r',
    'worktree-sync -r (no-op)',
    'worktree-merge -r (no-op)',
    'worktree-sync -r (1 changed)',
    'worktree-merge -r (1 changed)',
    REMOVE_LOOP,
    'worktree-remove --force',
]
"""Every figure, in the order of the output, each after its baseline"""
OURS = [f for f in FIGURES if f.startswith('worktree-')]
"""The figures of our commands"""
BASELINE = {
    'worktree-add -r': ADD_LOOP,
    'worktree-add -r -J 2': ADD_LOOP,
    'worktree-add -r --no-mtimes': ADD_LOOP,
    EPHEMERAL: ADD_LOOP,
    'worktree-list -r': STATUS_LOOP,
    'worktree-sync -r (no-op)': STATUS_LOOP,
    'worktree-merge -r (no-op)': STATUS_LOOP,
    'worktree-sync -r (1 changed)': STATUS_LOOP,
    'worktree-merge -r (1 changed)': STATUS_LOOP,
    'worktree-remove --force': REMOVE_LOOP,
}
TARGETS = [
    # (what, figure, limit as a ratio to its baseline, sizes it is set for)
    ('worktree-add -r serial', 'worktree-add -r', 1.00, (100, 500)),
    ('worktree-add -r -J 2', 'worktree-add -r -J 2', 0.60, (100, 500)),
    ('worktree-sync -r no-op', 'worktree-sync -r (no-op)', 1.0, None),
    ('worktree-merge -r no-op', 'worktree-merge -r (no-op)', 1.0, None),
    ('worktree-list -r', 'worktree-list -r', 1.2, None),
    ('worktree-remove', 'worktree-remove --force', 2.0, None),
    # issue #27: the lead kept
    ('#27 worktree-add -r serial', 'worktree-add -r', 0.50, (100, 500)),
    ('#27 worktree-sync -r no-op', 'worktree-sync -r (no-op)', 1.0,
     (500, 1000)),
    ('#27 worktree-merge -r no-op', 'worktree-merge -r (no-op)', 1.0,
     (500, 1000)),
    ('#27 worktree-remove', 'worktree-remove --force', 1.5, (500,)),
]
"""The targets of issues #17 and #27 (those named so); None: at every N"""
LINEAR = 1.3
"""The most that the cost per dataset at the largest N may be, as a
multiple of that at the smallest N, to count as linear growth"""
FLAT = 0.2
"""Seconds by which the extra cost of one changed subdataset (over the
no-op) may grow from the smallest to the largest N"""


def run(cmd: list[str], cwd: Path | None = None, env: dict | None = None,
        check: bool = True, stdin: bytes | str | None = None) -> str:
    res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True,
                         input=stdin, text=not isinstance(stdin, bytes))
    out = res.stdout if isinstance(res.stdout, str) else res.stdout.decode()
    if check and res.returncode:
        err = res.stderr if isinstance(res.stderr, str) \
            else res.stderr.decode()
        raise RuntimeError(f'{cmd} in {cwd} failed: {err}{out}')
    return out


def git(repo: Path, *args: str, env: dict | None = None) -> str:
    return run(['git', *args], cwd=repo, env=env).strip()


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# git-annex ---------------------------------------------------------------

def direct_git_annex(bindir: Path) -> str | None:
    """If ``git-annex`` on PATH is PyPI's Python launcher, put ``bindir``
    first on PATH with links to the binary it starts; what was done"""
    try:
        import git_annex
    except ImportError:
        return None
    binary = Path(git_annex.__file__).with_name('git-annex')
    found = shutil.which('git-annex')
    if not binary.exists():
        return None
    if found:
        if Path(found).resolve() == binary.resolve():
            return None
        with open(found, 'rb') as f:
            head = f.read(4096)
        if not head.startswith(b'#!') or b'git_annex' not in head:
            return None  # some other git-annex: benchmark that one
    bindir.mkdir(parents=True, exist_ok=True)
    for name in ('git-annex', 'git-annex-shell', 'git-remote-annex'):
        (bindir / name).symlink_to(binary)
    os.environ['PATH'] = os.pathsep.join(
        [str(bindir), os.environ.get('PATH', '')])
    magic = binary.with_name('magic.mgc')
    if magic.exists():
        # as the launcher does
        os.environ.setdefault('MAGIC', str(magic))
    return (f'git-annex: {found or "(none on PATH)"} is the launcher of '
            f"PyPI's git-annex package; using its binary {binary} directly, "
            'for our commands and the baselines alike')


def as_installed(cwd: Path) -> str | None:
    """Let Python keep its compiled modules, as it does by default, and
    have them written once before anything is timed: where
    ``PYTHONDONTWRITEBYTECODE`` is set (some sandboxes and CI images set
    it), every ``datalad`` process would compile the modules that lack a
    cache (an editable install's), which a user's installation does once;
    what was done"""
    if not os.environ.pop('PYTHONDONTWRITEBYTECODE', None):
        return None
    run([DATALAD, 'worktree-list'], cwd=cwd, check=False)
    return ('PYTHONDONTWRITEBYTECODE was set: unset for the commands and '
            'the baselines, and the modules compiled once before timing, '
            'as a user\'s installation keeps them')


# the hierarchy -----------------------------------------------------------

def make_dataset(path: Path, annexed: int = 20) -> None:
    """A git-annex repository with ``annexed`` annexed files and three files
    in git, in one commit"""
    path.mkdir(parents=True)
    git(path, 'init', '-q')
    git(path, 'annex', 'init', '-q', 'bench')
    for i in range(annexed):
        (path / f'data_{i:02d}.bin').write_bytes(os.urandom(1024) + bytes([i]))
    git(path, 'annex', 'add', '-q', '.')
    for name in GIT_FILES:
        (path / name).write_text(f'{name} of {path.name}\n')
    git(path, 'add', *GIT_FILES)
    git(path, 'commit', '-q', '-m', 'content')


def make_template(path: Path, annexed: int) -> dict:
    """A dataset to copy (``make_dataset``, packed), and what a copy needs
    to know about it"""
    make_dataset(path, annexed)
    git(path, 'repack', '-a', '-d', '-q')
    git(path, 'prune-packed')
    # files an hour old: an index written just after a copy is then not
    # racy (git would read every file again to be sure)
    mtime = int(time.time()) - 3600
    tree = []
    for line in git(path, 'ls-tree', '-r', '--full-tree',
                    'HEAD').splitlines():
        meta, name = line.split('\t', 1)
        mode, _, sha = meta.split()
        os.utime(path / name, (mtime, mtime), follow_symlinks=False)
        if name not in GIT_FILES:
            tree.append((mode, sha, name))
    annex_uuid = git(path, 'config', 'annex.uuid')
    logs: dict[str, list[str]] = {}
    for line in git(path, 'ls-tree', '-r', 'git-annex').splitlines():
        meta, name = line.split('\t', 1)
        logs.setdefault(meta.split()[2], []).append(name)
    texts = {sha: git(path, 'cat-file', 'blob', sha) + '\n' for sha in logs}
    return dict(path=path, mtime=mtime,
                ref=git(path, 'symbolic-ref', 'HEAD'), tree=tree,
                uuid=annex_uuid,
                annex_head=git(path, 'rev-parse', 'refs/heads/git-annex'),
                logs={sha: (texts[sha], names) for sha, names in logs.items()
                      if annex_uuid in texts[sha]})


def _data(text: str) -> list[bytes]:
    raw = text.encode()
    return [b'data %d' % len(raw), raw]


def copy_dataset(template: dict, dest: Path) -> str:
    """Copy ``template`` to ``dest`` and make it a dataset of its own: a
    root commit whose files in git name ``dest`` (the annexed files stay
    the same), and an annex UUID of its own, also in the git-annex branch.
    The commit"""
    shutil.copytree(template['path'], dest, symlinks=True)
    name, old, new = dest.name, template['uuid'], str(uuid.uuid4())
    config = dest / '.git' / 'config'
    config.write_text(config.read_text().replace(old, new))
    stamp = f'bench <bench@example.com> {int(time.time())} +0000'
    lines: list[bytes] = []
    for i, fname in enumerate(GIT_FILES, 1):
        text = f'{fname} of {name}\n'
        (dest / fname).write_text(text)
        os.utime(dest / fname, (template['mtime'], template['mtime']))
        lines += [b'blob', b'mark :%d' % i, *_data(text)]
    lines += [b'reset ' + template['ref'].encode(),
              b'commit ' + template['ref'].encode(), b'mark :10',
              b'author ' + stamp.encode(), b'committer ' + stamp.encode(),
              *_data(f'content of {name}\n')]
    lines += [f'M {mode} {sha} {path}'.encode()
              for mode, sha, path in template['tree']]
    lines += [b'M 100644 :%d %s' % (i, f.encode())
              for i, f in enumerate(GIT_FILES, 1)]
    logs = list(template['logs'].values())
    for i, (text, _) in enumerate(logs, 20):
        text = text.replace(f'{old} bench ', f'{old} {name} ')
        lines += [b'blob', b'mark :%d' % i, *_data(text.replace(old, new))]
    lines += [b'commit refs/heads/git-annex', b'mark :11',
              b'committer ' + stamp.encode(), *_data('update\n'),
              b'from ' + template['annex_head'].encode()]
    lines += [b'M 100644 :%d %s' % (i, path.encode())
              for i, (_, paths) in enumerate(logs, 20) for path in paths]
    marks = dest / '.git' / 'bench-marks'
    run(['git', 'fast-import', '--quiet', '--force',
         f'--export-marks={marks}'], cwd=dest,
        stdin=b'\n'.join(lines) + b'\n')
    commits = dict(line.split() for line in marks.read_text().splitlines())
    marks.unlink()
    entries = [*template['tree'], *(('100644', commits[f':{i}'], f)
                                    for i, f in enumerate(GIT_FILES, 1))]
    write_index(dest, entries)
    # as ``git annex smudge --update`` would (git-annex's post-checkout
    # hook does, in every dataset that has seen a checkout): git-annex has
    # seen this index
    refs = dest / '.git' / 'refs' / 'annex'
    refs.mkdir(exist_ok=True)
    (refs / 'last-index').write_text(tree_sha(entries) + '\n')
    annex = dest / '.git' / 'annex'
    git(dest, 'read-tree', commits[':11'],
        env=dict(os.environ, GIT_INDEX_FILE=str(annex / 'index')))
    (annex / 'index.lck').write_text(commits[':11'] + '\n')
    (annex / 'mergedrefs').write_text(
        f"{commits[':11']}\trefs/heads/git-annex\n")
    return commits[':10']


def write_index(repo: Path, entries: list[tuple[str, str, str]]) -> None:
    """Write git's index of ``repo`` (version 2) for ``entries`` (mode,
    blob, path), with the stat data of the files in the worktree, as
    ``git update-index --refresh`` would, but without reading the files
    again through git-annex's filter (about 140 ms per dataset)"""
    body = [b'DIRC', struct.pack('>II', 2, len(entries))]
    for mode, sha, path in sorted(entries, key=lambda e: e[2].encode()):
        st = os.lstat(repo / path)
        name = path.encode()
        body.append(struct.pack(
            '>10I20sH', st.st_ctime_ns // 10**9, st.st_ctime_ns % 10**9,
            st.st_mtime_ns // 10**9, st.st_mtime_ns % 10**9,
            st.st_dev & 0xFFFFFFFF, st.st_ino & 0xFFFFFFFF, int(mode, 8),
            st.st_uid, st.st_gid, st.st_size & 0xFFFFFFFF,
            bytes.fromhex(sha), min(len(name), 0xFFF)))
        # the path, NUL-padded to a multiple of 8 bytes for the entry
        body.append(name + b'\0' * (8 - (62 + len(name)) % 8))
    data = b''.join(body)
    index = repo / '.git' / 'index'
    index.with_suffix('.lock').write_bytes(
        data + hashlib.sha1(data).digest())
    os.replace(index.with_suffix('.lock'), index)


def tree_sha(entries: list[tuple[str, str, str]]) -> str:
    """The name of git's tree of ``entries`` (mode, blob, name), all at the
    top level"""
    body = b''.join(f'{int(mode, 8):o} {name}'.encode() + b'\0'
                    + bytes.fromhex(sha)
                    for mode, sha, name in sorted(
                        entries, key=lambda e: e[2].encode()))
    return hashlib.sha1(b'tree %d\0' % len(body) + body).hexdigest()


def register(parent: Path, subs: dict[str, str]) -> str:
    """Record ``subs`` (paths inside ``parent``: their commits) as
    subdatasets, as DataLad does: a .gitmodules entry and a gitlink each,
    in one commit. The commit"""
    lines = []
    for sub in subs:
        lines += [f'[submodule "{sub}"]', f'\tpath = {sub}',
                  f'\turl = ./{sub}']
    run(['git', 'update-index', '--add', '--index-info'], cwd=parent,
        stdin=''.join(f'160000 {sha}\t{sub}\n' for sub, sha in subs.items()))
    (parent / '.gitmodules').write_text('\n'.join(lines) + '\n')
    git(parent, 'add', '.gitmodules')
    # commit-tree: ``git commit`` would look into every subdataset
    tree = git(parent, 'write-tree')
    commit = git(parent, 'commit-tree', tree, '-p', 'HEAD', '-m',
                 f'{len(subs)} subdatasets')
    git(parent, 'update-ref', 'HEAD', commit)
    # as after a checkout: git's index knows its files' stat data, and
    # git-annex has seen the index
    git(parent, 'update-index', '-q', '--refresh')
    git(parent, 'annex', 'smudge', '--update')
    return commit


def build(root: Path, n: int, levels: int) -> Path:
    """The superdataset with ``n`` leaf subdatasets, below ``levels - 1``
    intermediate levels (2: super/sub_i, 3: super/group_j/sub_i)"""
    top = root / 'super'
    make_dataset(top, annexed=1)
    templates = root / 'templates'
    leaf = make_template(templates / 'leaf', annexed=20)
    if levels == 2:
        register(top, {f'sub_{i:04d}': copy_dataset(leaf, top / f'sub_{i:04d}')
                       for i in range(n)})
    else:
        group = make_template(templates / 'group', annexed=1)
        groups = max(1, n // 10)
        recorded = {}
        for j in range(groups):
            name = f'group_{j:03d}'
            copy_dataset(group, top / name)
            recorded[name] = register(top / name, {
                f'sub_{i:04d}': copy_dataset(leaf, top / name / f'sub_{i:04d}')
                for i in range(j, n, groups)})
        register(top, recorded)
    shutil.rmtree(templates)
    return top


def datasets(top: Path, env: dict | None = None) -> list[Path]:
    """Every dataset of the hierarchy, parents first"""
    found, queue = [], [top]
    while queue:
        ds = queue.pop(0)
        found.append(ds)
        if (ds / '.gitmodules').exists():
            out = run(['git', 'config', '-f', '.gitmodules', '--get-regexp',
                       r'\.path$'], cwd=ds, env=env)
            queue += [ds / line.split(' ', 1)[1] for line in out.splitlines()]
    return found


# the figures -------------------------------------------------------------

def git_loop_add(top: Path, dest: Path, env: dict | None = None) -> None:
    """The baseline: what a user scripts by hand, dataset by dataset"""
    for ds in datasets(top, env):
        rel = ds.relative_to(top)
        target = dest / rel
        if ds == top:
            commit = git(top, 'rev-parse', 'HEAD', env=env)
        else:
            parent_wt = dest / rel.parent
            commit = git(parent_wt, 'rev-parse', f'HEAD:{rel.name}', env=env)
        git(ds, 'worktree', 'add', '-q', '-b', BRANCH, str(target), commit,
            env=env)


def status_loop(wt: Path, env: dict | None = None) -> None:
    for ds in datasets(wt, env):
        run(['git', 'status', '--porcelain'], cwd=ds, env=env)


def raw_remove(top: Path, wt: Path, env: dict | None = None) -> None:
    """The baseline of worktree-remove, also the cleanup between figures"""
    shutil.rmtree(wt, ignore_errors=True)
    for ds in datasets(top, env):
        run(['git', 'worktree', 'prune'], cwd=ds, env=env)
        run(['git', 'branch', '-D', BRANCH], cwd=ds, env=env, check=False)


def datalad(*args: str, cwd: Path, env: dict | None = None) -> None:
    run([DATALAD, *args], cwd=cwd, env=env)


def ephemeral(top: Path, clone: Path, env: dict | None = None) -> None:
    datalad('clone', '--reckless', 'ephemeral', str(top), str(clone),
            cwd=top.parent, env=env)
    datalad('get', '-n', '-r', '--reckless', 'ephemeral', '-d', str(clone),
            cwd=top.parent, env=env)


def disk_bytes(path: Path) -> int:
    """Bytes of regular files below ``path`` (symlinks count as links)"""
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            total += os.lstat(os.path.join(dirpath, f)).st_size
    return total


def settled() -> None:
    """Let the file system finish what the previous step left it (a
    deletion of thousands of files, on ext4 mounted with ``discard``,
    goes on in the kernel after ``rm`` returned), so that no timed step
    pays for the one before it: ``sync``, outside the timing"""
    os.sync()


class Meter:
    """Runs the figures of one round and times them; with ``trace_dir``,
    also counts the git processes each starts"""

    def __init__(self, trace_dir: Path | None = None):
        self.trace_dir = trace_dir
        self.seconds: dict[str, float] = {}
        self.spawns: dict[str, int] = {}

    def __call__(self, name: str, fn, *args, **kwargs) -> None:
        env = trace = None
        if self.trace_dir is not None:
            trace = self.trace_dir / f'{len(self.spawns)}.trace'
            env = dict(os.environ, GIT_TRACE2_EVENT=str(trace))
        settled()
        start = time.perf_counter()
        fn(*args, env=env, **kwargs)
        self.seconds[name] = time.perf_counter() - start
        if trace is not None:
            self.spawns[name] = 0
            if trace.exists():
                with trace.open(errors='replace') as events:
                    self.spawns[name] = sum(
                        '"event":"start"' in line for line in events)
                trace.unlink()


def one_round(top: Path, measure: Meter, with_ephemeral: bool) -> dict:
    """Every figure once, alternating ours and the baselines on the same
    hierarchy; the disk bytes of a worktree"""
    wt = top.parent / 'wt'
    leaf = datasets(top)[-1].relative_to(top)
    add = ('worktree-add', '-r', '-b', BRANCH, str(wt))

    measure(ADD_LOOP, git_loop_add, top, wt)
    measure(REMOVE_LOOP, raw_remove, top, wt)
    measure('worktree-add -r', datalad, *add, cwd=top)
    measure('worktree-remove --force', datalad, 'worktree-remove', '--force',
            str(wt), cwd=top)
    measure('worktree-add -r --no-mtimes', datalad, *add, '--no-mtimes',
            cwd=top)
    raw_remove(top, wt)
    measure('worktree-add -r -J 2', datalad, *add, '-J', '2', cwd=top)
    sizes = dict(worktree_bytes=disk_bytes(wt),
                 hierarchy_bytes=disk_bytes(top))
    # this worktree stays for the figures that need one
    measure(STATUS_LOOP, status_loop, wt)
    measure('worktree-list -r', datalad, 'worktree-list', '-r', cwd=top)
    measure('worktree-sync -r (no-op)', datalad, 'worktree-sync', '-r',
            cwd=wt)
    measure('worktree-merge -r (no-op)', datalad, 'worktree-merge', '-r',
            str(wt), cwd=top)
    (top / leaf / 'code.py').write_text(f'changed {time.time()}\n')
    git(top / leaf, 'commit', '-q', '-am', 'one change')
    measure('worktree-sync -r (1 changed)', datalad, 'worktree-sync', '-r',
            cwd=wt)
    (wt / leaf / 'params.json').write_text(f'result {time.time()}\n')
    git(wt / leaf, 'commit', '-q', '-am', 'one result')
    measure('worktree-merge -r (1 changed)', datalad, 'worktree-merge', '-r',
            str(wt), cwd=top)
    raw_remove(top, wt)
    # the merge changed the index of the leaf's parents: let git-annex see
    # it now, as the next checkout there would, so that every round starts
    # alike
    for parent in leaf.parents:
        git(top / parent, 'annex', 'smudge', '--update')
    if with_ephemeral:
        clone = top.parent / 'clone'
        measure(EPHEMERAL, ephemeral, top, clone)
        shutil.rmtree(clone, ignore_errors=True)
    return sizes


def bench_size(root: Path, n: int, levels: int, rounds: int,
               with_ephemeral: bool, trace_apart: bool) -> dict:
    """Build the hierarchy for ``n``, run ``rounds`` timed rounds, and
    count the git processes: in a round of their own (``trace_apart``), or
    in the last timed round"""
    progress(f'N={n}: building the hierarchy')
    start = time.perf_counter()
    top = build(root / f'n{n}', n, levels)
    built = time.perf_counter() - start
    count = len(datasets(top))
    progress(f'N={n}: {count} datasets built in {built:.1f} s')
    times: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix='trace-') as traces:
        for i in range(rounds):
            progress(f'N={n}: round {i + 1} of {rounds}')
            traced = not trace_apart and i == rounds - 1
            measure = Meter(Path(traces) if traced else None)
            found = one_round(top, measure, with_ephemeral)
            if not i:
                sizes = found
            for name, seconds in measure.seconds.items():
                times.setdefault(name, []).append(seconds)
        if trace_apart:
            progress(f'N={n}: counting git processes')
            measure = Meter(Path(traces))
            one_round(top, measure, with_ephemeral=False)
    shutil.rmtree(root / f'n{n}')
    medians = {k: statistics.median(v) for k, v in times.items()}
    return dict(
        n=n, levels=levels, datasets=count, build_seconds=built,
        rounds=rounds, times=times, medians=medians,
        ms_per_dataset={k: v * 1000 / count for k, v in medians.items()},
        git_spawns_per_dataset={k: v / count
                                for k, v in measure.spawns.items()},
        spawns_counted='in a round of their own' if trace_apart
        else 'in the last timed round', ephemeral=with_ephemeral, **sizes)


# the report --------------------------------------------------------------

def table(header: tuple, rows: list[tuple]) -> list[str]:
    """A reStructuredText simple table"""
    widths = [max(len(h), *(len(row[i]) for row in rows))
              for i, h in enumerate(header)]
    rule = '  '.join('=' * w for w in widths)

    def line(cells):
        return '  '.join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()
    return [rule, line(header), rule, *(line(row) for row in rows), rule]


def ratio(result: dict, figure: str) -> float | None:
    base = BASELINE.get(figure)
    medians = result['medians']
    if figure not in medians or base not in medians:
        return None
    return medians[figure] / medians[base]


def figures_table(results: list[dict]) -> list[str]:
    rows = []
    for r in results:
        for name in FIGURES:
            if name not in r['medians']:
                continue
            base = BASELINE.get(name)
            spawns = r['git_spawns_per_dataset'].get(name)
            rows.append((
                str(r['n']), str(r['datasets']), name,
                f"{r['medians'][name]:.2f}",
                f"{r['ms_per_dataset'][name]:.1f}",
                '-' if spawns is None else f'{spawns:.1f}',
                f'{ratio(r, name):.2f}x {base}' if base else 'baseline'))
    return table(('N', 'datasets', 'figure', 'median s', 'ms/dataset',
                  'git/dataset', 'ratio'), rows)


def growth(results: list[dict]) -> dict[str, float | None]:
    """Per figure: its ms per dataset at the largest N as a multiple of
    that at the smallest N (None: not measured at both, or one N only)"""
    first, last = results[0], results[-1]
    found = {}
    for name in FIGURES:
        if name in first['medians'] or name in last['medians']:
            found[name] = None
        if len(results) > 1 and name in first['medians'] \
                and name in last['medians']:
            found[name] = (last['ms_per_dataset'][name]
                           / first['ms_per_dataset'][name])
    return found


def linearity_table(results: list[dict]) -> list[str]:
    """ms per dataset of every figure at each N, and the ratio of that at
    the largest N to that at the smallest"""
    rows, unjudged = [], False
    for name, grown in growth(results).items():
        cells = [f"{r['ms_per_dataset'][name]:.1f}"
                 if name in r['medians'] else '-' for r in results]
        verdict = 'n/a' if grown is None else \
            'linear' if grown <= LINEAR else 'not linear'
        if name not in OURS and grown is not None:
            verdict, unjudged = f'({verdict})', True
        rows.append((name, *cells, '-' if grown is None else f'{grown:.2f}',
                     verdict))
    ns = [r['n'] for r in results]
    lines = table(('figure', *(f'ms/ds N={n}' for n in ns),
                   f'N={ns[-1]}/N={ns[0]}' if len(ns) > 1 else 'growth',
                   'verdict'), rows)
    if unjudged:
        lines.append('In parentheses: a baseline or the ephemeral clone, '
                     'not judged.')
    return lines


def targets_table(results: list[dict]) -> tuple[list[str], list[dict]]:
    """Each target with its ratio per N and whether it is met; the table
    with its notes, and the verdicts"""
    rows, verdicts, marks = [], [], set()
    ns = [r['n'] for r in results]
    span = f'N={ns[0]} to {ns[-1]}' if len(ns) > 1 else 'two sizes'
    for what, figure, limit, at in TARGETS:
        ratios = {r['n']: ratio(r, figure) for r in results}
        judged = [n for n in ns if at is None or n in at]
        mark = ''
        if not judged:
            judged, mark = ns, '*'
            marks.add(mark)
        values = [ratios[n] for n in judged if ratios[n] is not None]
        verdict = 'n/a' if not values else \
            ('met' if all(v <= limit for v in values) else 'not met') + mark
        cells = []
        for n in ns:
            cell = '-' if ratios[n] is None else f'{ratios[n]:.2f}x'
            if n not in judged and ratios[n] is not None:
                cell = f'({cell})'
                marks.add('()')
            cells.append(cell)
        sizes = 'every N' if at is None else \
            'N=' + ', '.join(str(n) for n in at)
        rows.append((what, f'<= {limit:.2f}x', sizes, *cells, verdict))
        verdicts.append(dict(target=what, figure=figure, limit=limit,
                             sizes=at, ratios=ratios, verdict=verdict))
    for kind in ('sync', 'merge'):
        what = f'worktree-{kind} -r, 1 changed'
        figure, noop = (f'worktree-{kind} -r (1 changed)',
                        f'worktree-{kind} -r (no-op)')
        extra = {r['n']: r['medians'][figure] - r['medians'][noop]
                 for r in results}
        verdict = 'n/a' if len(ns) < 2 else \
            'met' if extra[ns[-1]] - extra[ns[0]] <= FLAT else 'not met'
        rows.append((what, f'extra grows <= {FLAT}s', span,
                     *(f'{extra[n]:+.2f}s' for n in ns), verdict))
        verdicts.append(dict(target=what, figure=figure, limit=FLAT,
                             sizes=None, extra_seconds=extra,
                             verdict=verdict))
    grown = {k: v for k, v in growth(results).items()
             if k in OURS and v is not None}
    not_linear = [k for k, v in grown.items() if v > LINEAR]
    verdict = 'not met' if not_linear else 'met' if grown else 'n/a'
    worst = max(grown, key=grown.get) if grown else None
    rows.append(('linear growth, our commands', f'<= {LINEAR}x ms/ds', span,
                 *('-' for _ in ns[:-1]),
                 f'max {grown[worst]:.2f}x' if worst else '-', verdict))
    verdicts.append(dict(target='linear growth', limit=LINEAR, sizes=None,
                         growth=grown, not_linear=not_linear,
                         verdict=verdict))
    lines = table(('target', 'limit', 'set for', *(f'N={n}' for n in ns),
                   'verdict'), rows)
    lines.append('Extra: the median with one changed subdataset minus the '
                 'no-op; met when it grows by at most '
                 f'{FLAT} s from the smallest to the largest N.')
    if worst:
        lines.append(f'Linear growth: ms per dataset at N={ns[-1]} over '
                     f'that at N={ns[0]}; the most is {worst}\'s.')
    if '()' in marks:
        lines.append('In parentheses: at an N the target is not set for.')
    if '*' in marks:
        lines.append('*: the sizes the target is set for were not run; '
                     'judged at the sizes that were.')
    return lines, verdicts


def report(results: list[dict], notes: list[str]) -> str:
    lines = [*notes, '']
    for r in results:
        lines.append(
            f"N={r['n']} ({r['levels']} levels, {r['datasets']} datasets): "
            f"built in {r['build_seconds']:.1f} s; {r['rounds']} round(s); "
            f"a worktree adds {r['worktree_bytes']} bytes (the hierarchy "
            f"has {r['hierarchy_bytes']})"
            + ('' if r['ephemeral'] else '; no ephemeral clone'))
    lines += ['', 'Medians, ms per dataset, git processes per dataset, '
              'ratio to the baseline:', '', *figures_table(results), '',
              'Growth: ms per dataset at each N', '',
              *linearity_table(results), '', 'Targets (issues #17 and #27):',
              '']
    lines += targets_table(results)[0]
    return '\n'.join(lines)


def git_version() -> str:
    return run(['git', '--version']).strip()


def annex_version() -> str:
    return run(['git', 'annex', 'version', '--raw']).strip()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        '--quick', action='store_true',
        help=f'sizes {" ".join(map(str, QUICK_SIZES))}, one round, no '
        'ephemeral clone, and the git processes counted in the timed '
        'round (unless given otherwise)')
    parser.add_argument('--sizes', type=int, nargs='+',
                        help='numbers of subdatasets (default: '
                        f'{" ".join(map(str, DEFAULT_SIZES))})')
    parser.add_argument('--levels', type=int, choices=(2, 3), default=2)
    parser.add_argument('--rounds', type=int,
                        help='timed rounds per size (default: 3)')
    parser.add_argument('--ephemeral-up-to', type=int, metavar='N',
                        help='time the ephemeral clone only up to this N '
                        f'(default: {EPHEMERAL_UP_TO}; 0 with --quick)')
    parser.add_argument('--json', type=Path,
                        help='also write the raw results to this file')
    args = parser.parse_args(argv)
    sizes = sorted(args.sizes or (QUICK_SIZES if args.quick
                                  else DEFAULT_SIZES))
    rounds = args.rounds or (1 if args.quick else 3)
    ephemeral_up_to = args.ephemeral_up_to if args.ephemeral_up_to \
        is not None else 0 if args.quick else EPHEMERAL_UP_TO
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix='wt-bench-') as tmp:
        note = direct_git_annex(Path(tmp) / 'bin')
        notes = [note] if note else []
        if note:
            progress(note)
        note = as_installed(Path(tmp))
        if note:
            notes.append(note)
            progress(note)
        results = [bench_size(Path(tmp), n, args.levels, rounds,
                              n <= ephemeral_up_to, not args.quick)
                   for n in sizes]
        versions = (f'{platform.machine()}, {os.cpu_count()} cores, Python '
                    f'{platform.python_version()}, {git_version()}, '
                    f'git-annex {annex_version()}')
    notes.append(
        'Git processes counted with GIT_TRACE2_EVENT ("start" events), '
        + ('in the timed round (--quick): its times include the tracing.'
           if args.quick else 'in a round of their own after the timed '
           'ones.'))
    notes.append(
        'Ephemeral clone not timed (--quick).' if args.quick and not
        ephemeral_up_to else f'Ephemeral clone timed up to N='
        f'{ephemeral_up_to} only: at three to four times the git loop it '
        'would dominate the run time at larger N.')
    elapsed = time.perf_counter() - start
    if args.json:
        args.json.write_text(json.dumps(dict(
            results=results, targets=targets_table(results)[1],
            machine=versions, notes=notes, seconds=elapsed), indent=2))
    print(report(results, [f'Machine: {versions}', *notes]))
    print(f'\nThe whole run took {elapsed:.0f} s.')


if __name__ == '__main__':
    main()
