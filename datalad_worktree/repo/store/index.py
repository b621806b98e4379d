"""The stat data that git's index of a worktree records for each file,
read from the index file without starting git

git writes, for every file it checked out or added, the file's mode and
modification time as it saw them (``git update-index``, a checkout, an
``add``, a refresh by ``git status``). ``mtimes`` uses that as a cheap
first look at a worktree it does not move: which files may be newer in
another worktree. The index is not the truth about the files (a file
changed since is newer on disk than its entry says), so only a question
whose every "yes" is checked against the files again may use it.

Read are index versions 2 and 3, as git 2.39 writes them by default, with
SHA-1 object names. Anything else is left to the caller's other way (None):
version 4 (prefix-compressed paths, ``feature.manyFiles``), a split index
(``link`` extension), a sparse index (directory entries, ``sdir``),
``GIT_INDEX_FILE`` or another of ``guard.REDIRECTING`` in the environment,
a repository format that ``guard`` does not let be read, and a file that
does not parse to its end.
"""

from __future__ import annotations

import os
import stat
import struct
from pathlib import Path

from datalad_worktree.repo.store.guard import REFS, unreadable
from datalad_worktree.repo.store.refs import git_dirs

ENTRY = struct.Struct('>8xII8xI12x20sH')
"""An entry's fixed part (62 bytes) as far as it is read: ctime
(skipped), mtime seconds and nanoseconds, dev and ino (skipped), mode,
uid, gid and size (skipped), object name, flags"""

SKIP_WORKTREE = 0x4000
INTENT_TO_ADD = 0x2000
EXTENDED = 0x4000
STAGE = 0x3000
NAME_MASK = 0xFFF


def file_times(repo: Path) -> dict[str, tuple[int, int]] | None:
    """Mode and modification time (ns) that the index of the worktree
    ``repo`` records for each file at stage 0 that is checked out (not
    skip-worktree, not intent-to-add), by path; None where the index may
    not be read here (see the module's docstring)"""
    if 'GIT_INDEX_FILE' in os.environ:
        return None
    try:
        gitdir, common = git_dirs(repo)
    except OSError:
        return None
    if unreadable(common, gitdir, REFS):
        return None
    try:
        with open(gitdir / 'index', 'rb') as f:
            data = f.read()
    except OSError:
        return None
    return parse(data)


def parse(data: bytes) -> dict[str, tuple[int, int]] | None:
    """The entries of the index file ``data`` (see ``file_times``), or
    None where it is not a version 2 or 3 index read to its end"""
    if len(data) < 12 + 20 or data[:4] != b'DIRC':
        return None
    version, count = struct.unpack_from('>II', data, 4)
    if version not in (2, 3):
        return None
    names: list[bytes] = []
    stats: list[tuple[int, int]] = []
    offset, end = 12, len(data) - 20
    unpack = ENTRY.unpack_from
    for _ in range(count):
        if offset + ENTRY.size > end:
            return None
        mtime, nsec, mode, _name, flags = unpack(data, offset)
        start = offset + ENTRY.size
        extended = 0
        if flags & EXTENDED:
            if version < 3:
                return None
            extended, = struct.unpack_from('>H', data, start)
            start += 2
        length = flags & NAME_MASK
        if length == NAME_MASK:
            length = data.find(b'\0', start) - start
            if length < 0:
                return None
        path = data[start:start + length]
        # 1 to 8 NULs pad each entry to a multiple of 8 bytes
        offset += (start + length - offset + 8) & ~7
        if stat.S_ISDIR(mode):
            return None  # a sparse index's directory entry
        if flags & STAGE or extended & (SKIP_WORKTREE | INTENT_TO_ADD):
            continue
        names.append(path)
        stats.append((mode, mtime * 1_000_000_000 + nsec))
    while offset + 8 <= end:
        signature = data[offset:offset + 4]
        if signature in (b'link', b'sdir'):
            return None
        size, = struct.unpack_from('>I', data, offset + 4)
        offset += 8 + size
    if offset != end:
        return None
    # decoded at once, as os.fsdecode decodes each (no path holds a NUL)
    decoded = os.fsdecode(b'\0'.join(names)).split('\0') if names else []
    return dict(zip(decoded, stats))
