"""What git keeps in files, read without starting git: where a working
tree's git directories are, its HEAD and the repository's branch tips

A working tree's ``.git`` is a directory, a link to one, or a file naming
one; a linked worktree's git directory names the repository's common one
in its ``commondir`` file. With git's default ``files`` ref storage, a worktree's ``HEAD`` is a file
in its git directory, and a branch is a file below the common directory's
``refs/heads`` or a line of its ``packed-refs`` (the loose file wins).
Reading them is what git itself does, and costs no process, which matters
where a command asks this of a thousand datasets.

Whatever cannot be read with certainty gives None: a repository whose
files ``guard`` does not let be read (a newer repository format, the
``reftable`` storage, an environment that points git elsewhere), a HEAD
that names something other than a branch, a ref name git would not take,
a file that is not what git writes. A file that cannot be read at all
raises ``OSError``. Either way the caller asks git instead.

Relative paths are resolved as git (2.48 and later, which writes them with
``worktree.useRelativePaths``) resolves them: in a ``.git`` file against
the working tree's directory, in a worktree's ``gitdir`` file against the
directory of that file.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from datalad_worktree.repo.store.guard import REFS, WORKTREES, readable

OBJECT_NAME = re.compile(r'[0-9a-f]{40}(?:[0-9a-f]{24})?')
"""A full SHA-1 or SHA-256 object name"""


REF_PART = re.compile(r'[^\x00-\x20~^:?*\[\\\x7f]+')
"""One part of a ref name as git takes it (between slashes), before the
rules about dots (see ``plain_ref``)"""


ANNEX_VERSION = re.compile(r'version\s*=\s*\d+', re.IGNORECASE)
"""The line ``git annex init`` writes into its section of the config"""


def git_dirs(repo: Path) -> tuple[Path, Path]:
    """The git directory of the working tree ``repo`` and the repository's
    common one, read from ``.git`` (a directory, a link to one, or a file
    naming one) without starting git; raises ``OSError`` where ``.git``
    is none of these. What a ``.git`` names is remembered for as long as
    it is the same file (same inode and times)."""
    dotgit = repo / '.git'
    try:
        st = os.lstat(dotgit)
    except OSError:
        return _git_dirs(dotgit)
    return _remembered_git_dirs(str(dotgit), st.st_ino, st.st_mtime_ns,
                                st.st_ctime_ns)


@lru_cache(maxsize=4096)
def _remembered_git_dirs(dotgit: str, inode: int, mtime_ns: int,
                         ctime_ns: int) -> tuple[Path, Path]:
    return _git_dirs(Path(dotgit))


def _git_dirs(dotgit: Path) -> tuple[Path, Path]:
    repo = dotgit.parent
    if dotgit.is_file() and not dotgit.is_symlink():
        named = dotgit.read_text().partition('gitdir:')[2].strip()
        if not named:
            raise OSError(f'{dotgit} names no git directory')
        gitdir = Path(named)
        # a relative one resolved as git resolves it: to a real path, which
        # stays right while the working tree is moved (worktree-remove
        # moves it aside before deleting it)
        gitdir = Path(os.path.realpath(repo / gitdir)) \
            if not gitdir.is_absolute() else gitdir
    else:
        gitdir = Path(os.path.realpath(dotgit))
    return gitdir, common_dir(gitdir)


def common_dir(gitdir: Path) -> Path:
    """The repository's common git directory, for the git directory of one
    of its working trees (``gitdir``), read without starting git"""
    commondir = gitdir / 'commondir'
    common = gitdir / commondir.read_text().strip() \
        if commondir.is_file() else gitdir
    return Path(os.path.normpath(common))


@dataclass(frozen=True)
class Head:
    """What a worktree's HEAD holds"""
    branch: str | None
    """Full ref name of the checked-out branch, None when detached"""
    commit: str | None
    """The commit checked out, None on a branch without commits yet"""


def read_head(gitdir: Path, common: Path) -> Head | None:
    """The HEAD of the worktree whose git directory is ``gitdir`` (in the
    repository with the common directory ``common``), or None where it
    cannot be read from files"""
    if not readable(common, gitdir, REFS):
        return None
    return _read_head(gitdir, common)


def _read_head(gitdir: Path, common: Path) -> Head | None:
    """``read_head``, where the guard has let the files be read"""
    content = _read(gitdir / 'HEAD')
    content = content and content.strip()
    if content is None:
        return None
    if OBJECT_NAME.fullmatch(content):
        return Head(branch=None, commit=content)
    ref = content.removeprefix('ref: ')
    if ref == content or not ref.startswith('refs/heads/'):
        return None
    found = _branch_commit(common, ref)
    if found is None:
        return None
    return Head(branch=ref, commit=found or None)


def branch_commit(common: Path, ref: str) -> str | None:
    """The commit of the branch ``ref`` (a full ref name) in the repository
    with the common directory ``common``: '' where the branch does not
    exist, None where this cannot be read from files"""
    if not readable(common, None, REFS):
        return None
    return _branch_commit(common, ref)


def _branch_commit(common: Path, ref: str) -> str | None:
    """``branch_commit``, where the guard has let the files be read"""
    if not plain_ref(ref):
        return None
    loose = _read(common / ref)
    loose = loose and loose.strip()
    if loose is not None:
        return loose if OBJECT_NAME.fullmatch(loose) else None
    packed = _read(common / 'packed-refs')
    if packed is None:
        return ''
    for line in packed.splitlines():
        commit, _, name = line.partition(' ')
        if name == ref:
            return commit if OBJECT_NAME.fullmatch(commit) else None
    return ''


REFLOG_TAIL = 4096
"""How much of the end of a reflog is read for its newest entry (an entry
is two object names, an identity, a time and a message: one longer than
this is left to git)"""


def newest_head_position(gitdir: Path, common: Path) -> str | None:
    """The commit that the newest entry of the HEAD reflog of the worktree
    whose git directory is ``gitdir`` moved HEAD to (as ``git log -g -n 1
    HEAD`` shows it), or None where this cannot be read with certainty
    from files: the guard, an entry being written, one that is not what
    git writes, and no reflog or an empty one (git then shows an entry it
    makes up from HEAD's commit)

    git appends each entry as one line, ``OLD NEW IDENTITY TIME ZONE\tMESSAGE``,
    so the newest one is the last line."""
    if not readable(common, gitdir, REFS):
        return None
    try:
        with open(gitdir / 'logs' / 'HEAD', 'rb') as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(0, size - REFLOG_TAIL))
            tail = f.read()
    except FileNotFoundError:
        return None
    if not tail.endswith(b'\n'):
        return None  # being written
    lines = tail[:-1].split(b'\n')
    if len(lines) < 2 and size > len(tail):
        return None  # the entry is longer than what was read
    fields = lines[-1].split(b' ', 2)
    if len(fields) < 3:
        return None
    new = fields[1].decode('ascii', 'replace')
    if not OBJECT_NAME.fullmatch(new) or not new.strip('0'):
        return None
    return new


def plain_ref(ref: str) -> bool:
    """Whether ``ref`` is a full ref name that git takes as it is (see
    ``git check-ref-format``), so that its file is where this module looks:
    no part empty, starting with a dot or ending with ``.lock``, no ``..``
    or ``@{``, none of the characters git refuses. Not one: the dummy
    ``refs/heads/.invalid`` that the reftable storage leaves in HEAD."""
    parts = ref.split('/')
    return len(parts) > 2 and '..' not in ref and '@{' not in ref and \
        not ref.endswith('.') and all(
            REF_PART.fullmatch(p) and not p.startswith('.') and
            not p.endswith('.lock') for p in parts)


@dataclass(frozen=True)
class Registered:
    """One worktree of a repository, as git's files record it"""
    path: Path
    head: Head
    locked: str | None
    """The lock reason, None when not locked"""
    prunable: bool


def read_worktrees(common: Path) -> list[Registered] | None:
    """The worktrees of the repository whose common directory is
    ``common``, as ``git worktree list --porcelain`` reports them (the
    main worktree first, the linked ones by name), read from the files git
    keeps for them; None where git has to be asked (a common directory
    not named ``.git``, such as one absorbed into a superdataset, or a
    file that is not what git writes)"""
    if common.name != '.git' or not readable(common, common, WORKTREES):
        return None
    main = _read_head(common, common)
    if main is None:
        return None
    real = os.path.realpath(common)
    if not real.endswith(f'{os.sep}.git'):
        return None
    found = [Registered(Path(real).parent, main, None, False)]
    try:
        names = sorted(os.listdir(common / 'worktrees'))
    except FileNotFoundError:
        names = []
    except OSError:
        return None
    for name in names:
        linked = _linked_worktree(common / 'worktrees' / name, common)
        if linked is None:
            return None
        if linked is not False:
            found.append(linked)
    return found


def _linked_worktree(admin: Path, common: Path
                     ) -> Registered | None | bool:
    """The linked worktree that the directory ``admin`` records; False
    where git would not list it (its gitdir file is missing or empty),
    None where this cannot be read with certainty"""
    path = worktree_path(admin)
    if not path:
        return path
    if os.path.lexists(admin / 'reftable'):
        return None
    head = _read_head(admin, common)
    if head is None:
        return None
    locked = _read(admin / 'locked')
    locked = None if locked is None else locked.rstrip('\n')
    return Registered(
        path=path, head=head, locked=locked,
        prunable=locked is None and not os.path.exists(path / '.git'))


def worktree_path(admin: Path) -> Path | None | bool:
    """Where the linked worktree is that the directory ``admin`` (below
    ``worktrees``) registers, as its ``gitdir`` file records it, a relative
    path resolved against ``admin`` (and real, as git resolves it); False
    where the file is missing or empty, None where it does not name a
    ``.git``"""
    dotgit = _read(admin / 'gitdir')
    dotgit = dotgit and dotgit.rstrip()
    if not dotgit:
        return False
    path = dotgit.removesuffix('/.git')
    if path == dotgit or not path:
        return None
    if not os.path.isabs(path):
        path = os.path.realpath(admin / path)
    return Path(path)


def annex_version_in(config: Path) -> bool:
    """Whether the git configuration file ``config`` plainly sets
    ``annex.version``, as ``git annex init`` writes it: a line
    ``version = N`` in an ``[annex]`` section. Anything else (no such
    line, includes) is no answer: ask git."""
    text = _read(config)
    if text is None or '[include' in text.lower():
        return False
    section = None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith('['):
            section = line.lower()
        elif section == '[annex]' and ANNEX_VERSION.fullmatch(line):
            return True
    return False


def _read(path: Path) -> str | None:
    """The text of the file at ``path``, decoded as file names are, None
    where there is no such file (other failures to read it raise
    ``OSError``)"""
    try:
        return os.fsdecode(path.read_bytes())
    except FileNotFoundError:
        return None
