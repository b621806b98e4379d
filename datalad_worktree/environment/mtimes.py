"""File modification times that follow file content between worktrees

Make-style tools (make, Snakemake) decide what to rebuild by comparing
modification times. A fresh checkout gives every file the time of the
checkout, so such a tool would rebuild everything in a new worktree, and
again in the main worktree after merging results back. This module gives a
file the modification time of the same file in another worktree of the
same repository, where both hold the same content:

* the file is tracked in the commit that the destination has checked out,
  with the same content (blob) in the working files on both sides: neither
  differs from that commit (``git diff COMMIT``, which compares content,
  not only stat data);
* symbolic links (locked annexed files) get the link's own time, set with
  ``follow_symlinks=False``: the annexed object they point to, shared by
  all worktrees, is never touched;
* unlocked annexed files (regular files whose blob is a git-annex pointer)
  are left alone: a new time would make git-annex hash their content again.

Afterwards git's stat cache (the index) of the destination is refreshed,
so that git does not take the files for modified. The git processes here
never start git-annex: its filter is switched off for them, which can only
make git see a file as modified, never the other way round.
"""

from __future__ import annotations

import logging
import os
import stat
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import (
    Callable,
    Iterator,
    NamedTuple,
)

from datalad_next.runners import CommandError

from datalad_worktree.base.outcome import Outcome
from datalad_worktree.repo.queries import head_commit
from datalad_worktree.repo.records import files_of
from datalad_worktree.repo.sparse_checkout import Cone, checked_out, cone_pathspecs
from datalad_worktree.repo.store.index import file_times, recorded_files
from datalad_worktree.repo.store.objects import blob_id, blob_of
from datalad_worktree.runners import git
from datalad_worktree.runners.git import NO_ANNEX_FILTER

lgr = logging.getLogger('datalad.worktree.mtimes')


MARKERS = ('.snakemake_timestamp',)
"""Untracked files that make-style tools keep next to their outputs and
that travel with their directory into a new worktree"""


ANNEX_POINTER = b'/annex/objects/'


MAX_POINTER_SIZE = 8192 + 2
"""No git-annex pointer file is larger than this (git-annex's own limit)"""


CARRIED_MODES = ('100644', '100755', '120000')


class Entry(NamedTuple):
    """A file of a commit, as ``git ls-tree -r -l`` lists it (a named
    tuple: a commit may have a hundred thousand, and a tuple is made
    several times faster than a frozen dataclass)"""
    mode: str
    blob: str
    size: int


def ls_tree_args(commit: str) -> list[str]:
    """git arguments that list the files of ``commit`` with their sizes"""
    return ['ls-tree', '-r', '-l', '-z', '--full-tree', commit]


def differing_args(commit: str, submodules: str = 'all') -> list[str]:
    """git arguments that name the files whose working content differs
    from ``commit`` (also files that are staged differently or missing);
    ``submodules`` is git's ``--ignore-submodules``: 'all' names no
    subdataset

    git compares content where the stat data in the index does not match
    a file (and refreshes the index for those that are unchanged,
    ``diff.autoRefreshIndex``), so a file that was only rewritten with
    the same bytes is not named, and a racily clean one is checked."""
    return [*NO_ANNEX_FILTER, 'diff', '--name-only', '-z', '--no-ext-diff',
            '--no-renames', f'--ignore-submodules={submodules}', commit, '--']


def listed_files(repo: Path, commit: str) -> dict[str, Entry]:
    """The carried kinds of files (regular files, symbolic links) of
    ``commit``, by path: from the object store where it can be read,
    else from ``git ls-tree``"""
    found = files_of(repo, commit)
    if found is None:
        return parse_tree(git.run(repo, ls_tree_args(commit)))
    return carried_of(found)


def carried_of(found: list[tuple[str, str, str, int]],
               cone: Cone | None = None) -> dict[str, Entry]:
    """The carried kinds of files of the listing ``found`` (path, mode,
    blob, size; ``records.files_of``), of them only those in ``cone``
    where given, by path"""
    return {path: Entry(mode, blob, size)
            for path, mode, blob, size in found if mode in CARRIED_MODES
            and (cone is None or checked_out(path, cone))}


def parse_tree(out: bytes) -> dict[str, Entry]:
    """The carried kinds of files (regular files, symbolic links) of a
    ``git ls-tree -r -l -z`` listing, by path"""
    entries = {}
    # decoded once: a file name comes back as os.fsdecode gives it
    for record in os.fsdecode(out).split('\0'):
        if not record:
            continue
        meta, path = record.split('\t', 1)
        mode, _, blob, size = meta.split()
        if mode in CARRIED_MODES:
            entries[path] = Entry(mode, blob, int(size))
    return entries


def parse_names(out: bytes) -> set[str]:
    """The paths of a ``git diff --name-only -z`` output"""
    return {os.fsdecode(p) for p in out.split(b'\0') if p}


def is_plain(path: str, entry: Entry, st: os.stat_result) -> bool:
    """Whether the regular file ``path`` (with lstat result ``st``) is a
    plain file that may get a new time: not an unlocked annexed file

    A blob larger than any annex pointer is plain. A smaller one is plain
    only when the file holds exactly that blob, and it is no pointer.
    """
    if entry.size > MAX_POINTER_SIZE:
        return True
    if st.st_size != entry.size:
        return False
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        with open(fd, 'rb') as f:
            data = f.read(MAX_POINTER_SIZE + 1)
    except OSError:
        return False
    return not data.startswith(ANNEX_POINTER) and \
        blob_id(data, len(entry.blob)) == entry.blob


def copy_times(source: Path, dest: Path, entries: dict[str, Entry],
               skip: set[str], check_pointers: bool = True,
               newer_only: bool = False) -> int:
    """Give each file of ``entries`` (not in ``skip``) in ``dest`` the
    modification time of the same file in ``source``, where both are of
    the entry's kind (with ``newer_only``: only where the source's time
    is the newer); returns how many files got a new time"""
    changed = 0
    # plain strings: much faster than Path objects for many files
    src_root, dst_root = os.path.join(source, ''), os.path.join(dest, '')
    for path, entry in entries.items():
        if path in skip:
            continue
        target = dst_root + path
        try:
            src = os.lstat(src_root + path)
            dst = os.lstat(target)
        except OSError:
            continue
        if src.st_mtime_ns == dst.st_mtime_ns or \
                newer_only and src.st_mtime_ns < dst.st_mtime_ns:
            continue
        if entry.mode == '120000':
            if not (stat.S_ISLNK(src.st_mode) and stat.S_ISLNK(dst.st_mode)):
                continue
        elif not (stat.S_ISREG(src.st_mode) and stat.S_ISREG(dst.st_mode)) \
                or check_pointers and not is_plain(target, entry, dst):
            continue
        # never through a symbolic link: annexed objects are shared
        os.utime(target, ns=(dst.st_atime_ns, src.st_mtime_ns),
                 follow_symlinks=False)
        changed += 1
    return changed


REFRESH_ARGS = [*NO_ANNEX_FILTER, 'update-index', '-q', '--ignore-submodules',
                '--refresh']
"""git arguments that refresh the index's stat data of unchanged files"""


def refresh_index(repo: Path) -> None:
    """Update git's stat cache in ``repo`` for files whose content did not
    change, so that git does not report them as modified"""
    git.run(repo, REFRESH_ARGS)


def copy_markers(source: Path, dest: Path, dirs: set[str],
                 names: tuple[str, ...] = MARKERS) -> int:
    """Copy marker files (``names``) from each of ``dirs`` (relative paths,
    '' for the top) in ``source`` to the same directory in ``dest``, with
    their modification time, where that directory exists and has no such
    file yet; returns how many were copied"""
    copied = 0
    for d in dirs:
        for name in names:
            src = source / d / name
            dst = dest / d / name
            try:
                st = os.lstat(src)
            except OSError:
                continue
            if not stat.S_ISREG(st.st_mode) or \
                    not os.path.isdir(dst.parent) or \
                    os.path.islink(dst.parent):
                continue
            try:
                with open(src, 'rb') as f_in, open(dst, 'xb') as f_out:
                    f_out.write(f_in.read())
            except FileExistsError:
                continue
            os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns),
                     follow_symlinks=False)
            copied += 1
    return copied


def directories(paths) -> set[str]:
    """Every directory that holds one of ``paths``, '' for the top"""
    found = {''}
    for path in paths:
        parent = path.rpartition('/')[0]
        # up to the first directory already found (its own are, too)
        while parent not in found:
            found.add(parent)
            parent = parent.rpartition('/')[0]
    return found


def tracked_children(entries) -> dict[str, set[str]]:
    """The names that each directory of the files ``entries`` (paths)
    holds in the commit, by directory ('' for the top)"""
    found: dict[str, set[str]] = {}
    for path in entries:
        while True:
            parent, _, name = path.rpartition('/')
            names = found.get(parent)
            if names is not None:
                # its parents are known already
                names.add(name)
                break
            found[parent] = {name}
            if not parent:
                break
            path = parent
    return found


def _later(src: int, dst: int, newer_only: bool) -> bool:
    """Whether a time ``src`` is to replace ``dst``"""
    return src > dst if newer_only else src != dst


def copy_dir_times(source: Path, dest: Path, children: dict[str, set[str]],
                   skip: set[str], newer_only: bool = False,
                   markers: tuple[str, ...] = MARKERS) -> int:
    """Give each directory of ``children`` (directory: the names the
    commit has in it) in ``dest`` the modification time of the same
    directory in ``source``, where it holds what the source's holds:

    * the same names on both sides, each a file or directory of the
      commit or a marker file (``markers``, which make-style tools keep
      next to their outputs and which git does not track); an untracked
      or ignored file, a subdataset, or anything only one side has keeps
      the directory's time, so that nothing the commit does not hold can
      be made to look as fresh as the source's directory;
    * none of its files in ``skip`` (differing from the commit);
    * not the dataset's top (which holds ``.git``).

    An untracked marker there gets the time of the source's (a missing
    one is copied, as ``copy_markers`` does); with ``newer_only`` only
    where the source's time is the newer, for a copied marker than the
    directory's time here. Returns how many directories got a time."""
    changed = 0
    src_root, dst_root = os.path.join(source, ''), os.path.join(dest, '')
    allowed = set(markers)
    skipped: dict[str, set[str]] = {}
    for path in skip:
        parent, _, name = path.rpartition('/')
        skipped.setdefault(parent, set()).add(name)
    for d, names in children.items():
        if not d or not names.isdisjoint(skipped.get(d, ())):
            continue
        src_dir, dst_dir = src_root + d, dst_root + d
        try:
            src, dst = os.lstat(src_dir), os.lstat(dst_dir)
            if not (stat.S_ISDIR(src.st_mode) and stat.S_ISDIR(dst.st_mode)):
                continue
            here, there = set(os.listdir(dst_dir)), set(os.listdir(src_dir))
        except OSError:
            continue
        own = names | allowed
        if not (here <= own and there <= own) or \
                (here ^ there) - allowed or (here - there):
            continue
        carried = sorted((there - names) & allowed)
        for m in carried:
            carry_marker(os.path.join(src_dir, m), os.path.join(dst_dir, m),
                         dst.st_mtime_ns, newer_only)
        if carried or here != there:
            # what it holds now, and its time after a marker was copied
            try:
                if set(os.listdir(dst_dir)) != there:
                    continue
                dst = os.lstat(dst_dir)
            except OSError:
                continue
        if _later(src.st_mtime_ns, dst.st_mtime_ns, newer_only):
            os.utime(dst_dir, ns=(dst.st_atime_ns, src.st_mtime_ns),
                     follow_symlinks=False)
            changed += 1
    return changed


def carry_marker(src: str, dst: str, dir_time: int, newer_only: bool
                 ) -> None:
    """Give the untracked marker file ``dst`` the time of ``src`` (both
    regular files of the same size), or copy it where ``dst`` is missing;
    with ``newer_only``, only a newer time (for a copy: newer than the
    directory's time ``dir_time``, which it stands for)"""
    st = os.lstat(src)
    if not stat.S_ISREG(st.st_mode):
        return
    try:
        here = os.lstat(dst)
    except FileNotFoundError:
        if newer_only and st.st_mtime_ns <= dir_time:
            return
        with open(src, 'rb') as f_in:
            data = f_in.read()
        try:
            with open(dst, 'xb') as f_out:
                f_out.write(data)
        except FileExistsError:
            return
        os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns),
                 follow_symlinks=False)
        return
    if stat.S_ISREG(here.st_mode) and here.st_size == st.st_size and \
            _later(st.st_mtime_ns, here.st_mtime_ns, newer_only):
        os.utime(dst, ns=(here.st_atime_ns, st.st_mtime_ns),
                 follow_symlinks=False)


def into_new_worktree(origin: Path, worktree: Path, commit: str,
                      annex: bool = True, cone: Cone | None = None) -> int:
    """Carry modification times from the working tree ``origin`` into the
    worktree just made at ``worktree``, which has ``commit`` checked out
    (sparse to ``cone``, where given), and copy marker files there; then
    the directories' times (see ``copy_dir_times``); returns how many
    files got a time

    Files that differ from ``commit`` in ``origin`` keep their checkout
    time. Without ``annex`` (no git-annex in the dataset), files are not
    checked for annex pointers. Of a sparse checkout, only the files it
    has are looked at, in ``origin`` too.
    """
    pathspecs = [] if cone is None else cone_pathspecs(cone)
    entries, differing = listed_and_differing(origin, commit, pathspecs,
                                              cone)
    changed = copy_times(origin, worktree, entries, differing,
                         check_pointers=annex)
    # git refreshes its index while the markers and the directories' times
    # are done here (neither touches a tracked file)
    with git.meanwhile(worktree, REFRESH_ARGS) if changed else nullcontext():
        copy_markers(origin, worktree, directories(entries))
        copy_dir_times(origin, worktree, tracked_children(entries),
                       differing)
    return changed


def listed_and_differing(repo: Path, commit: str, pathspecs: list[str],
                         cone: Cone | None = None
                         ) -> tuple[dict[str, Entry], set[str]]:
    """``listed_files(repo, commit)`` (of them only those in ``cone``,
    where given), and the names of the files of ``repo`` that differ from
    ``commit`` (in ``pathspecs``, the cone's): for a commit small enough to
    be read from the files, without git where git's index says that no
    file differs (``unchanged_in``); else with the two git processes at
    the same time"""
    found = files_of(repo, commit)
    if found is not None:
        entries = carried_of(found, cone)
        if unchanged_in(repo, entries):
            return entries, set()
        return entries, parse_names(git.run(repo, differing_args(commit) +
                                            pathspecs))
    tree, differing = git.run_all([
        (repo, ls_tree_args(commit)),
        (repo, differing_args(commit) + pathspecs)])
    entries = parse_tree(tree)
    if cone is not None:
        entries = {path: entry for path, entry in entries.items()
                   if checked_out(path, cone)}
    return entries, parse_names(differing)


def unchanged_in(repo: Path, entries: dict[str, Entry]) -> bool:
    """Whether each file of ``entries`` certainly holds, in the working
    tree ``repo``, the blob the entry names, by git's own record of it (as
    ``git diff`` would find without reading it): the index records that
    blob and mode for the path, and stat data the file still has exactly
    (times, inode, owner, size, kind and executable bit), and the file was
    not written in the second the index was (git would read such a
    "racily clean" file). False as soon as one is not, or where the index
    may not be read here (``store.index``): git is asked then."""
    found = recorded_files(repo)
    if found is None:
        return False
    index_time, recorded = found
    index_second = index_time // 1_000_000_000
    root = os.path.join(repo, '')
    for path, entry in entries.items():
        known = recorded.get(path)
        if known is None or known.blob != entry.blob or \
                known.mode != int(entry.mode, 8) or \
                known.mtime_ns // 1_000_000_000 >= index_second:
            return False
        try:
            st = os.lstat(root + path)
        except OSError:
            return False
        if (st.st_mtime_ns, st.st_ctime_ns, st.st_ino & 0xFFFFFFFF,
                st.st_uid, st.st_gid, st.st_size & 0xFFFFFFFF) != (
                known.mtime_ns, known.ctime_ns, known.ino, known.uid,
                known.gid, known.size) or \
                stat.S_IFMT(st.st_mode) != stat.S_IFMT(known.mode) or \
                stat.S_ISREG(st.st_mode) and \
                st.st_mode & 0o100 != known.mode & 0o100:
            return False
    return True


OTHER_TREE = 'other-tree'
"""Why no newer time was carried: the source has another tree checked out"""
UNCOMMITTED = 'uncommitted-changes'
"""Why no newer time was carried: a side has uncommitted changes"""


@dataclass(frozen=True)
class Carried:
    """What carrying times into one dataset did, for its record"""
    files: int = 0
    dirs: int = 0
    withheld: int = 0
    """Files with the same content whose source has a newer time that was
    not carried, because it was not earned (see ``reason``)"""
    reason: str | None = None
    """``OTHER_TREE`` or ``UNCOMMITTED``, where files were withheld"""
    notes: tuple[str, ...] = ()
    """Why times were withheld, or that carrying them failed"""

    def onto(self, outcome: Outcome) -> Outcome:
        """``outcome`` with the notes in its message, and the key
        ``mtimes_withheld`` (the reason) where times were withheld"""
        for note in self.notes:
            outcome = outcome.noted(note)
        if self.reason:
            outcome = outcome.with_keys(mtimes_withheld=self.reason)
        return outcome


def combined(carried: list[Carried]) -> Carried:
    """The sum of several ``Carried`` (the first reason)"""
    return Carried(
        files=sum(c.files for c in carried), dirs=sum(c.dirs for c in carried),
        withheld=sum(c.withheld for c in carried),
        reason=next((c.reason for c in carried if c.reason), None),
        notes=tuple(n for c in carried for n in c.notes))


def withheld(source: Path, count: int, reason: str, why: str) -> Carried:
    """No newer time carried from ``source`` for ``count`` files"""
    note = (f'no modification times carried from {source}: {why}, so '
            f'{count} newer time(s) there would not say that the files were '
            'made from what this checkout holds')
    return Carried(withheld=count, reason=reason, notes=(note,))


def same_tree(repo: Path, a: str, b: str) -> bool:
    """Whether the commits ``a`` and ``b`` of ``repo`` have the same tree"""
    if a == b:
        return True
    trees = git.text(repo, ['rev-parse', f'{a}^{{tree}}', f'{b}^{{tree}}']
                     ).split()
    return len(trees) == 2 and trees[0] == trees[1]


def newer_files(source: Path, dest: Path, entries: dict[str, Entry]
                ) -> dict[str, Entry]:
    """Those of ``entries`` whose file in ``source`` is of the same kind as
    in ``dest`` (regular file, symbolic link) and has a newer time: stat
    data only, nothing read"""
    found = {}
    src_root, dst_root = os.path.join(source, ''), os.path.join(dest, '')
    for path, entry in entries.items():
        try:
            src = os.lstat(src_root + path)
            dst = os.lstat(dst_root + path)
        except OSError:
            continue
        if src.st_mtime_ns > dst.st_mtime_ns and \
                stat.S_IFMT(src.st_mode) == stat.S_IFMT(dst.st_mode):
            found[path] = entry
    return found


def newer_than_recorded(source: Path, recorded: dict[str, tuple[int, int]]
                        ) -> list[str]:
    """The paths of ``recorded`` (another worktree's index: mode and time
    of each file) whose file in ``source`` is of the same kind and newer
    than that worktree's index says: one ``lstat`` per file, on one side
    only. An index may say a file is older than it is (written since),
    never newer unless its time was set back: so each path found is
    checked again on both sides (``newer_files``), and a time set back by
    hand may go uncarried, which makes make redo work, never skip it."""
    found = []
    root = os.path.join(source, '')
    for path, (mode, mtime_ns) in recorded.items():
        try:
            st = os.lstat(root + path)
        except OSError:
            continue
        if st.st_mtime_ns > mtime_ns and \
                stat.S_IFMT(st.st_mode) == stat.S_IFMT(mode):
            found.append(path)
    return found


def times_differ(source: Path, dest: Path, entries, dirs) -> bool:
    """Whether a file of ``entries`` (paths) or a directory of ``dirs``
    (not the top) that both sides have has another modification time in
    ``source`` than in ``dest``, or such a directory holds a marker file
    in ``source``: where none does, carrying times from ``source`` to
    ``dest`` changes nothing. Stat data only, up to the first found."""
    src_root, dst_root = os.path.join(source, ''), os.path.join(dest, '')
    if any(_other_time(src_root + p, dst_root + p) for p in entries):
        return True
    for d in dirs:
        other = _other_time(src_root + d, dst_root + d) if d else None
        if other or other is not None and any(
                os.path.lexists(os.path.join(src_root + d, m))
                for m in MARKERS):
            return True
    return False


def _other_time(a: str, b: str) -> bool | None:
    """Whether ``a`` has another modification time than ``b``; None where
    either is missing"""
    try:
        return os.lstat(a).st_mtime_ns != os.lstat(b).st_mtime_ns
    except OSError:
        return None


def newer_dirs(source: Path, dest: Path, dirs) -> bool:
    """Whether a directory of ``dirs`` (its paths, '' for the top, which
    is not looked at; or a marker file in one) is newer in ``source`` than
    in ``dest``: stat data only"""
    for d in dirs:
        if not d:
            continue
        try:
            dst = os.lstat(os.path.join(dest, d)).st_mtime_ns
            times = [os.lstat(os.path.join(source, d)).st_mtime_ns]
        except OSError:
            continue
        for m in MARKERS:
            try:
                times.append(os.lstat(os.path.join(source, d, m)).st_mtime_ns)
                dst = max(dst, os.lstat(os.path.join(dest, d, m)).st_mtime_ns)
            except OSError:
                pass
        if max(times) > dst:
            return True
    return False


def dirty_sides(source: Path, dest: Path, commit: str) -> list[bytes]:
    """What differs from ``commit`` in ``dest`` and in ``source`` (the
    outputs of ``differing_args``), asked of git at the same time: also
    the subdatasets that have another commit checked out than ``commit``
    records, or uncommitted changes of their own (an output here may have
    been made from their files; untracked files do not count)"""
    return git.run_all([(dest, differing_args(commit, 'untracked')),
                        (source, differing_args(commit, 'untracked'))])


def uncommitted_sides(source: Path, dest: Path, source_diff: bytes,
                      dest_diff: bytes) -> str:
    """Which of ``dest`` and ``source`` have uncommitted changes, for a
    message, by their ``dirty_sides`` outputs"""
    sides = [str(p) for p, out in ((dest, dest_diff), (source, source_diff))
             if out]
    return f'{" and ".join(sides)} ' \
        f'{"have" if len(sides) > 1 else "has"} uncommitted changes'


def up_to_date(source: Path, dest: Path, commit: str) -> Carried:
    """Carry newer modification times from the worktree ``source`` into
    the worktree ``dest``, which has ``commit`` checked out and was not
    moved: only where they are earned, the source's checkout holding the
    tree of ``commit`` and neither side differing from it (so the source
    made its files from what ``dest`` holds), and only newer times, to
    files (and directories, see ``copy_dir_times``) that hold the same
    on both sides. Costs no git process where no file or directory is
    newer in ``source``, and where ``dest``'s index may be read (see
    ``newer_than_recorded``) no listing of ``commit`` either."""
    recorded = file_times(dest)
    if recorded is not None:
        maybe = newer_than_recorded(source, recorded)
        if not maybe and not newer_dirs(source, dest,
                                        directories(recorded)):
            return Carried()
    entries = listed_files(dest, commit)
    newer = newer_files(source, dest, entries if recorded is None else {
        p: entries[p] for p in maybe if p in entries})
    children = tracked_children(entries)
    if not newer and not newer_dirs(source, dest, children):
        return Carried()
    head = head_commit(source)
    if head is None:
        return Carried()
    if not same_tree(dest, head, commit):
        theirs = listed_files(source, head)
        count = sum(1 for p, e in newer.items() if theirs.get(p) == e)
        if not count:
            return Carried()
        return withheld(source, count, OTHER_TREE, (
            f'it has {head[:10]} checked out, whose files differ from '
            f'{commit[:10]} here'))
    dest_diff, source_diff = dirty_sides(source, dest, commit)
    if dest_diff or source_diff:
        if not newer:
            return Carried()
        return withheld(source, len(newer), UNCOMMITTED, uncommitted_sides(
            source, dest, source_diff, dest_diff))
    files = copy_times(source, dest, newer, set(), newer_only=True)
    if files:
        refresh_index(dest)
    dirs = copy_dir_times(source, dest, children, set(), newer_only=True)
    return Carried(files, dirs)


def between_worktrees(source: Path, dest: Path, commit: str,
                      before: str | None = None) -> Carried:
    """Carry modification times from the worktree ``source`` to the
    worktree ``dest`` of the same repository, whose checkout was moved
    from ``before`` to ``commit`` (None: not known, every file may have
    been written), for the files of ``commit`` whose working content is
    that of ``commit`` on both sides:

    * where it is earned (the source's checkout holds the tree of
      ``commit``, and neither side differs from it, subdatasets' commits
      included), every such file gets the source's time, and the
      directories theirs (see ``copy_dir_times``);
    * else only the files that the move wrote (changed from ``before``),
      which have the time of the checkout; newer times of the others are
      withheld (and counted).

    Where no file or directory has another time in ``source`` than in
    ``dest`` and no marker is there (``times_differ``), none of this would
    change anything: git is not asked whether the sides differ from
    ``commit``, which in a dataset with subdatasets looks into each of
    them."""
    entries = listed_files(dest, commit)
    if not times_differ(source, dest, entries, directories(entries)):
        return Carried()
    dest_diff, source_diff = dirty_sides(source, dest, commit)
    skip = parse_names(dest_diff) | parse_names(source_diff)
    head = head_commit(source)
    same = bool(head) and same_tree(dest, head, commit)
    if same and not dest_diff and not source_diff:
        files = copy_times(source, dest, entries, skip)
        if files:
            refresh_index(dest)
        dirs = copy_dir_times(source, dest, tracked_children(entries), skip)
        return Carried(files, dirs)
    written = set(entries) if before is None else parse_names(git.run(
        dest, ['diff', '--name-only', '-z', '--no-renames', before, commit,
               '--']))
    files = copy_times(source, dest, {p: e for p, e in entries.items()
                                      if p in written}, skip)
    if files:
        refresh_index(dest)
    others = newer_files(source, dest, {p: e for p, e in entries.items()
                                        if p not in written and
                                        p not in skip})
    if not others:
        return Carried(files)
    if not same:
        why = (f'it has {(head or "no commit")[:10]} checked out, whose '
               f'files differ from {commit[:10]} here')
        reason = OTHER_TREE
    else:
        why = uncommitted_sides(source, dest, source_diff, dest_diff)
        reason = UNCOMMITTED
    found = withheld(source, len(others), reason, why)
    return replace(found, files=files)


def carry_problem(carry, *args, **kwargs) -> Carried:
    """Run one of the carrying functions; what it did, or a note that it
    failed

    Modification times are a convenience: a failure to carry them is
    reported, but does not undo or fail what the command did.
    """
    try:
        found = carry(*args, **kwargs)
    except (CommandError, OSError) as e:
        detail = e.stderr.strip().splitlines()[-1:] if isinstance(
            e, CommandError) and e.stderr else [str(e)]
        return Carried(notes=(
            f'modification times not carried over: {detail[0]}',))
    return found if isinstance(found, Carried) else Carried(files=found)


def carry_from(source: Path | None, dest: Path, commit: str,
               before: str | None = None) -> Carried:
    """Carry times from the worktree ``source`` (where it is one other than
    ``dest``) into ``dest``, whose checkout was moved from ``before`` to
    ``commit``: ``between_worktrees``, or where it was not moved (``before``
    is ``commit``), ``up_to_date``"""
    if source is None or os.path.realpath(source) == os.path.realpath(dest):
        return Carried()
    if before == commit:
        return carry_problem(up_to_date, source, dest, commit)
    return carry_problem(between_worktrees, source, dest, commit, before)


def carry_into_new_worktree(origin: Path, worktree: Path, commit: str,
                            annex: bool, cone: Cone | None = None) -> None:
    """``into_new_worktree``, with a failure logged as a warning"""
    problem = carry_problem(into_new_worktree, origin, worktree, commit,
                            annex=annex, cone=cone)
    for note in problem.notes:
        lgr.warning('%s: %s', worktree, note)


@contextmanager
def carrying(enabled: bool, workers: int = 1
             ) -> Iterator[Callable | None]:
    """A function that carries times into a new worktree, like
    ``carry_into_new_worktree`` (same arguments), but on up to ``workers``
    threads of its own, so that this overlaps with making the next
    worktrees; everything handed to it is done when the context is left
    (when it is left with an exception, what has not started yet is
    dropped). None if not ``enabled``.
    """
    if not enabled:
        yield None
        return
    futures = []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        try:
            yield lambda *args: futures.append(
                pool.submit(carry_into_new_worktree, *args))
        except BaseException:
            # interrupted: finish only what has started
            for future in futures:
                future.cancel()
            raise
        for future in futures:
            future.result()


def carry_brought(dest: Path, commit: str,
                  sources: list[tuple[Path, dict[str, str]]]) -> Carried:
    """Carry modification times into ``dest``, which has ``commit`` checked
    out, from several source worktrees, each only for the files it brought
    (path: blob): where the source's file holds that blob, ``commit`` has
    it too, and ``dest``'s file does not differ from ``commit``. Costs no
    git process per source. What it did, or a note that it failed"""
    return carry_problem(_carry_brought, dest, commit, sources)


def _carry_brought(dest: Path, commit: str,
                   sources: list[tuple[Path, dict[str, str]]]) -> int:
    if not sources:
        return 0
    entries = listed_files(dest, commit)
    skip = parse_names(git.run(dest, differing_args(commit)))
    changed = 0
    for source, brought in sources:
        same = {p: entries[p] for p, blob in brought.items()
                if p in entries and entries[p].blob == blob and
                blob_of(source / p, len(blob)) == blob}
        changed += copy_times(source, dest, same, skip)
    if changed:
        refresh_index(dest)
    return changed
