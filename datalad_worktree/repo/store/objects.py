"""git objects read from the object store's files, without starting git

A commit, tree or blob is a zlib-compressed loose file
``objects/xx/yyyy...``, or an entry of a pack (``objects/pack/*.pack``,
found through its version 2 ``.idx``), possibly stored as a delta against
another entry. Reading the few objects that say which subdatasets a
commit records costs no process, which matters where a command walks a
thousand datasets.

Every object read is checked against its name (its SHA-1), so what this
module returns is exactly what git would. Whatever it cannot read (a
SHA-256 repository, alternates, a pack index of another version, a
missing or damaged object) gives None, and the caller asks git instead.
Whether a repository's object store may be read at all (no replacement
refs, no other object directory, a repository format read here) is
``store.guard``'s to say: the callers (``repo.records``) ask it first.
"""

from __future__ import annotations

import hashlib
import mmap
import os
import struct
import zlib
from functools import lru_cache
from pathlib import Path

TYPES = {1: b'commit', 2: b'tree', 3: b'blob', 4: b'tag'}


FILE_MODES = (b'100644', b'100755')


SYMLINK = b'120000'


MAX_POINTER = 32768
"""git-annex takes a file in git for a pointer to annexed content (an
unlocked file) only below this size"""


POINTER_MARK = b'annex/objects/'
"""What every git-annex pointer holds, in its first line"""


OFS_DELTA, REF_DELTA = 6, 7


GITLINK = b'160000'


TREE = b'40000'


CHUNK = 65536


def read_object(objects: Path, name: str) -> tuple[bytes, bytes] | None:
    """Type and content of the object ``name`` (40 hex digits) in the
    object directory ``objects``, None where it cannot be read here"""
    if len(name) != 40:
        return None
    try:
        found = _loose(objects, name) or _packed(objects, name)
    except (OSError, ValueError, zlib.error, struct.error, IndexError,
            RecursionError):
        return None
    if found is None:
        return None
    kind, data = found
    header = kind + b' %d\0' % len(data)
    if hashlib.sha1(header + data).hexdigest() != name:
        return None
    return found


def blob_of(path: Path, digits: int = 40) -> str | None:
    """The blob id (of ``digits`` hex digits: SHA-1 or SHA-256) git would
    give the file or symbolic link at ``path``, without any filter; None
    for anything else"""
    try:
        if path.is_symlink():
            data = os.fsencode(os.readlink(path))
        elif path.is_file():
            data = path.read_bytes()
        else:
            return None
    except OSError:
        return None
    return blob_id(data, digits)


def blob_id(data: bytes, digits: int = 40) -> str:
    """git's object name of a blob with content ``data``: SHA-1, or SHA-256
    where object names have 64 hex ``digits``"""
    algo = hashlib.sha256 if digits == 64 else hashlib.sha1
    return algo(b'blob %d\0' % len(data) + data).hexdigest()


def commit_tree(objects: Path, commit: str) -> str | None:
    """The tree of the commit ``commit``, None where it cannot be read"""
    found = read_object(objects, commit)
    if found is None or found[0] != b'commit' or \
            not found[1].startswith(b'tree '):
        return None
    return found[1][5:45].decode()


def tree_entry(objects: Path, tree: str, path: str
               ) -> tuple[bytes, str] | None | bool:
    """Mode and object name of ``path`` (slash-separated) in the tree
    ``tree``; False where the tree has no such entry, None where this
    cannot be read here"""
    parts = path.split('/')
    if any(part in ('', '.', '..') for part in parts):
        return None
    for depth, part in enumerate(parts):
        entries = _tree(objects, tree)
        if entries is None:
            return None
        entry = entries.get(os.fsencode(part))
        if entry is None:
            return False
        mode, tree = entry
        if depth < len(parts) - 1 and mode != TREE:
            return False
    return mode, tree


def tree_files(objects: Path, tree: str, files: int
               ) -> list[tuple[str, str, str, int]] | None:
    """Path, mode, object name and size of every file and symbolic link in
    the tree ``tree`` and the trees below it, as ``git ls-tree -r -l``
    lists them; None where more than ``files`` or any of them cannot be
    read here"""
    found: list[tuple[str, str, str, int]] = []
    pending = [('', tree)]
    try:
        while pending:
            prefix, name = pending.pop()
            entries = _tree(objects, name)
            if entries is None:
                return None
            for base, (mode, object_name) in entries.items():
                path = prefix + os.fsdecode(base)
                if mode == TREE:
                    pending.append((path + '/', object_name))
                elif mode in FILE_MODES or mode == SYMLINK:
                    size = _size(objects, object_name)
                    if size is None or len(found) >= files:
                        return None
                    found.append((path, mode.decode(), object_name, size))
    except (OSError, ValueError, zlib.error, struct.error, IndexError):
        return None
    return found


@lru_cache(maxsize=1024)
def _tree(objects: Path, name: str) -> dict[bytes, tuple[bytes, str]] | None:
    """The entries of the tree ``name``, None where it cannot be read here
    (kept: an object's content never changes)"""
    found = read_object(objects, name)
    if found is None or found[0] != b'tree':
        return None
    return _entries(found[1])


def may_hold_pointers(objects: Path, tree: str, files: int,
                      cone: tuple[str, ...] | None = None) -> bool:
    """Whether the tree ``tree`` may hold a git-annex pointer file (an
    unlocked annexed file) in any of its directories: False only where
    all its files, at most ``files`` of them, were read here and none is
    smaller than ``MAX_POINTER`` with ``POINTER_MARK`` in its first 1024
    bytes. With ``cone`` (directories, as git's cone mode of a sparse
    checkout has them), only the files such a checkout has count: those
    below a cone directory and those directly in a directory on the way
    to one."""
    return pointers_in(objects, tree, files, cone) is not False


def pointers_in(objects: Path, tree: str, files: int,
                cone: tuple[str, ...] | None = None) -> bool | None:
    """``may_hold_pointers``, telling the cases apart: True where a file
    that may be a pointer was found, False where all files (at most
    ``files``) were read and none is one, None where more than ``files``
    or any of them could not be read here (then git is to be asked)"""
    budget = [files]
    wanted = None if cone is None else [c.split('/') for c in cone]
    try:
        return _may_hold_pointers(objects, tree, budget, wanted)
    except (OSError, ValueError, zlib.error, struct.error, IndexError,
            RecursionError):
        return None


def is_pointer_like(data: bytes) -> bool:
    """Whether a blob smaller than ``MAX_POINTER`` with content (or start)
    ``data`` may be a git-annex pointer file"""
    return POINTER_MARK in data[:1024]


def _may_hold_pointers(objects: Path, tree: str, budget: list[int],
                       cone: list[list[str]] | None) -> bool | None:
    entries = _tree(objects, tree)
    if entries is None:
        return None
    for base, (mode, name) in entries.items():
        if mode == TREE:
            below = _cone_below(cone, os.fsdecode(base))
            if below != []:
                found = _may_hold_pointers(objects, name, budget, below)
                if found is not False:
                    return found
        if mode not in FILE_MODES:
            continue
        budget[0] -= 1
        size = _size(objects, name) if budget[0] >= 0 else None
        if size is None:
            return None
        if size < MAX_POINTER:
            blob = read_object(objects, name)
            if blob is None:
                return None
            if is_pointer_like(blob[1]):
                return True
    return False


def _cone_below(cone: list[list[str]] | None, name: str
                ) -> list[list[str]] | None:
    """The part of ``cone`` (split directories) inside the directory
    ``name``: None where all of it is in the cone, [] where none is"""
    if cone is None:
        return None
    inside = [c[1:] for c in cone if c[0] == name]
    return None if [] in inside else inside


def _size(objects: Path, name: str) -> int | None:
    """The size of the object ``name``, read from the start of its loose
    file or its pack entry only; None where it is not found"""
    try:
        with open(objects / name[:2] / name[2:], 'rb') as loose:
            start = zlib.decompressobj().decompress(loose.read(CHUNK), 64)
        return int(start.partition(b'\0')[0].split(b' ')[1])
    except FileNotFoundError:
        pass
    found = _pack_entry(objects, name)
    if found is None:
        return None
    pack_path, offset = found
    with open(pack_path, 'rb') as pack:
        pack.seek(offset)
        kind, size, pos, _ = _entry_header(pack.read(32), offset)
        if kind in TYPES:
            return size
        pack.seek(offset + pos)
        delta = zlib.decompressobj().decompress(pack.read(64), 32)
    return _varints(delta, 2)[0][1]


def _entries(data: bytes) -> dict[bytes, tuple[bytes, str]]:
    """Name -> (mode, object name) of a tree object's content"""
    entries = {}
    pos = 0
    while pos < len(data):
        space = data.index(b' ', pos)
        nul = data.index(b'\0', space)
        name = data[space + 1:nul]
        entries[name] = (data[pos:space], data[nul + 1:nul + 21].hex())
        pos = nul + 21
    return entries


def _loose(objects: Path, name: str) -> tuple[bytes, bytes] | None:
    try:
        raw = (objects / name[:2] / name[2:]).read_bytes()
    except FileNotFoundError:
        return None
    data = zlib.decompress(raw)
    header, _, body = data.partition(b'\0')
    kind, _, size = header.partition(b' ')
    if int(size) != len(body):
        raise ValueError('size mismatch')
    return kind, body


def _packed(objects: Path, name: str) -> tuple[bytes, bytes] | None:
    found = _pack_entry(objects, name)
    if found is None:
        return None
    with open(found[0], 'rb') as pack:
        return _unpack(pack, found[1], objects)


def _pack_entry(objects: Path, name: str) -> tuple[str, int] | None:
    """The pack holding the object ``name``, and the offset of its entry
    there; None where no pack of ``objects`` holds it"""
    if (objects / 'info' / 'alternates').exists():
        raise ValueError('alternates')
    try:
        indexes = [p for p in os.scandir(objects / 'pack')
                   if p.name.endswith('.idx')]
    except FileNotFoundError:
        return None
    wanted = bytes.fromhex(name)
    for idx in indexes:
        stat = idx.stat()
        offset = _find(_index(idx.path, stat.st_mtime_ns, stat.st_size),
                       wanted)
        if offset is not None:
            return idx.path[:-4] + '.pack', offset
    return None


@lru_cache(maxsize=256)
def _index(path: str, mtime_ns: int, size: int) -> mmap.mmap:
    """A version 2 pack index, mapped (cached while the file stays as it
    is: git never changes a pack index in place)"""
    with open(path, 'rb') as f:
        data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    if data[:8] != b'\xfftOc\x00\x00\x00\x02':
        raise ValueError('not a version 2 pack index')
    return data


def _find(index: mmap.mmap, wanted: bytes) -> int | None:
    """The pack offset of the object ``wanted`` (20 bytes) in a version 2
    pack index, None where the pack lacks it"""
    fanout = struct.unpack_from('>256I', index, 8)
    count = fanout[255]
    lo = fanout[wanted[0] - 1] if wanted[0] else 0
    hi = fanout[wanted[0]]
    names = 8 + 1024
    while lo < hi:
        mid = (lo + hi) // 2
        at = index[names + 20 * mid:names + 20 * mid + 20]
        if at < wanted:
            lo = mid + 1
        elif at > wanted:
            hi = mid
        else:
            offsets = names + 24 * count
            offset, = struct.unpack_from('>I', index, offsets + 4 * mid)
            if offset & 0x80000000:
                large = offsets + 4 * count + 8 * (offset & 0x7fffffff)
                offset, = struct.unpack_from('>Q', index, large)
            return offset
    return None


def _unpack(pack, offset: int, objects: Path) -> tuple[bytes, bytes]:
    """Type and content of the pack entry at ``offset``, deltas applied"""
    pack.seek(offset)
    kind, size, pos, base_at = _entry_header(pack.read(32), offset)
    if kind == OFS_DELTA:
        base = _unpack(pack, base_at, objects)
    elif kind == REF_DELTA:
        base = read_object(objects, base_at)
        if base is None:
            raise ValueError('delta base not found')
    else:
        base = None
    data = _inflate(pack, offset + pos, size)
    if base is None:
        return TYPES[kind], data
    return base[0], _apply_delta(base[1], data)


def _entry_header(head: bytes, offset: int) -> tuple[int, int, int, object]:
    """Type, size (of the delta, for a delta) and header length of the
    pack entry at ``offset`` that starts with ``head``, and for a delta,
    its base: the offset of its entry, or its name"""
    byte = head[0]
    kind, size, shift, pos = (byte >> 4) & 7, byte & 15, 4, 1
    while byte & 0x80:
        byte = head[pos]
        size |= (byte & 0x7f) << shift
        shift, pos = shift + 7, pos + 1
    if kind == OFS_DELTA:
        byte = head[pos]
        back, pos = byte & 0x7f, pos + 1
        while byte & 0x80:
            byte = head[pos]
            back, pos = ((back + 1) << 7) | (byte & 0x7f), pos + 1
        return kind, size, pos, offset - back
    if kind == REF_DELTA:
        return kind, size, pos + 20, head[pos:pos + 20].hex()
    if kind not in TYPES:
        raise ValueError(f'pack entry type {kind}')
    return kind, size, pos, None


def _inflate(pack, start: int, size: int) -> bytes:
    """The ``size`` bytes that the zlib stream at ``start`` holds"""
    pack.seek(start)
    inflater = zlib.decompressobj()
    out = b''
    while not inflater.eof:
        chunk = pack.read(CHUNK)
        if not chunk:
            raise ValueError('truncated pack entry')
        out += inflater.decompress(chunk)
    if len(out) != size:
        raise ValueError('pack entry size mismatch')
    return out


def _apply_delta(base: bytes, delta: bytes) -> bytes:
    """The object that git's ``delta`` makes of ``base``"""
    (base_size, size), pos = _varints(delta, 2)
    if base_size != len(base):
        raise ValueError('delta base size mismatch')
    out = bytearray()
    while pos < len(delta):
        op = delta[pos]
        pos += 1
        if op & 0x80:
            start = length = 0
            for bit in range(4):
                if op & (1 << bit):
                    start |= delta[pos] << (8 * bit)
                    pos += 1
            for bit in range(3):
                if op & (1 << (4 + bit)):
                    length |= delta[pos] << (8 * bit)
                    pos += 1
            out += base[start:start + (length or 0x10000)]
        elif op:
            out += delta[pos:pos + op]
            pos += op
        else:
            raise ValueError('delta opcode 0')
    if len(out) != size:
        raise ValueError('delta result size mismatch')
    return bytes(out)


def _varints(data: bytes, count: int) -> tuple[list[int], int]:
    """The first ``count`` of the little-endian base-128 numbers that a
    delta starts with (its base's size and its result's), and where they
    end"""
    values, pos = [], 0
    for _ in range(count):
        value = shift = 0
        while True:
            byte = data[pos]
            pos += 1
            value |= (byte & 0x7f) << shift
            shift += 7
            if not byte & 0x80:
                break
        values.append(value)
    return values, pos
