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
from typing import Any, Callable, NamedTuple

from datalad_worktree.repo.store.guard import REFS, unreadable
from datalad_worktree.repo.store.refs import git_dirs

ENTRY = struct.Struct('>8xII8xI12x20sH')
"""An entry's fixed part (62 bytes) as far as ``file_times`` reads it:
ctime (skipped), mtime seconds and nanoseconds, dev and ino (skipped),
mode, uid, gid and size (skipped), object name, flags"""

STAT_ENTRY = struct.Struct('>IIIIIIIIII20sH')
"""An entry's fixed part, all of it: ctime and mtime (seconds and
nanoseconds), dev, ino, mode, uid, gid, size (each as git keeps it, the
low 32 bits), object name, flags"""

SKIP_WORKTREE = 0x4000
INTENT_TO_ADD = 0x2000
EXTENDED = 0x4000
STAGE = 0x3000
NAME_MASK = 0xFFF


class Recorded(NamedTuple):
    """What git's index records of one file"""
    ctime_ns: int
    mtime_ns: int
    ino: int
    mode: int
    uid: int
    gid: int
    size: int
    blob: str


def file_times(repo: Path) -> dict[str, tuple[int, int]] | None:
    """Mode and modification time (ns) that the index of the worktree
    ``repo`` records for each file at stage 0 that is checked out (not
    skip-worktree, not intent-to-add), by path; None where the index may
    not be read here (see the module's docstring)"""
    found = _read(repo)
    return None if found is None else parse(found[0])


def recorded_files(repo: Path) -> tuple[int, dict[str, Recorded]] | None:
    """The modification time (ns) of the index file of the worktree
    ``repo`` and, for each file at stage 0 that is checked out, what the
    index records of it, by path; None where the index may not be read
    here (see the module's docstring)"""
    found = _read(repo)
    if found is None:
        return None
    entries = _entries(found[0], STAT_ENTRY, 6, _recorded)
    return None if entries is None else (found[1], entries)


def _recorded(entry: tuple) -> Recorded:
    ctime, ctime_ns, mtime, mtime_ns, _dev, ino, mode, uid, gid, size, \
        name, _flags = entry
    return Recorded(ctime * 1_000_000_000 + ctime_ns,
                    mtime * 1_000_000_000 + mtime_ns, ino, mode, uid, gid,
                    size, name.hex())


def _read(repo: Path) -> tuple[bytes, int] | None:
    """The index file of the worktree ``repo`` and its modification time
    (ns, of the file read), where it may be read here"""
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
            return f.read(), os.fstat(f.fileno()).st_mtime_ns
    except OSError:
        return None


def parse(data: bytes) -> dict[str, tuple[int, int]] | None:
    """The entries of the index file ``data`` (see ``file_times``), or
    None where it is not a version 2 or 3 index read to its end"""
    return _entries(data, ENTRY, 2, _mode_and_time)


def _mode_and_time(entry: tuple) -> tuple[int, int]:
    mtime, nsec, mode, _name, _flags = entry
    return mode, mtime * 1_000_000_000 + nsec


def _entries(data: bytes, fixed: struct.Struct, mode_at: int,
             value: Callable[[tuple], Any]) -> dict[str, Any] | None:
    """``value`` of the fixed part (unpacked with ``fixed``, whose field
    ``mode_at`` is the mode and whose last field is the flags), by path,
    of each entry of the index file ``data`` at stage 0 that is
    checked out (not skip-worktree, not intent-to-add), or None where it is
    not a version 2 or 3 index read to its end"""
    if len(data) < 12 + 20 or data[:4] != b'DIRC':
        return None
    version, count = struct.unpack_from('>II', data, 4)
    if version not in (2, 3):
        return None
    names: list[bytes] = []
    fields: list[tuple] = []
    offset, end = 12, len(data) - 20
    unpack, size = fixed.unpack_from, fixed.size
    for _ in range(count):
        if offset + size > end:
            return None
        entry = unpack(data, offset)
        flags = entry[-1]
        start = offset + size
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
        if stat.S_ISDIR(entry[mode_at]):
            return None  # a sparse index's directory entry
        if flags & STAGE or extended & (SKIP_WORKTREE | INTENT_TO_ADD):
            continue
        names.append(path)
        fields.append(value(entry))
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
    return dict(zip(decoded, fields))
