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
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import (
    Callable,
    Iterator,
)

from datalad_next.runners import CommandError

from datalad_worktree.repo.records import files_of
from datalad_worktree.repo.sparse_checkout import Cone, checked_out, cone_pathspecs
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


@dataclass(frozen=True)
class Entry:
    """A file of a commit, as ``git ls-tree -r -l`` lists it"""
    mode: str
    blob: str
    size: int


def ls_tree_args(commit: str) -> list[str]:
    """git arguments that list the files of ``commit`` with their sizes"""
    return ['ls-tree', '-r', '-l', '-z', '--full-tree', commit]


def differing_args(commit: str) -> list[str]:
    """git arguments that name the files whose working content differs
    from ``commit`` (also files that are staged differently or missing)"""
    return [*NO_ANNEX_FILTER, 'diff', '--name-only', '-z', '--no-ext-diff',
            '--no-renames', '--ignore-submodules=all', commit, '--']


def listed_files(repo: Path, commit: str) -> dict[str, Entry]:
    """The carried kinds of files (regular files, symbolic links) of
    ``commit``, by path: from the object store where it can be read,
    else from ``git ls-tree``"""
    found = files_of(repo, commit)
    if found is None:
        return parse_tree(git.run(repo, ls_tree_args(commit)))
    return {path: Entry(mode, blob, size)
            for path, mode, blob, size in found if mode in CARRIED_MODES}


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
               skip: set[str], check_pointers: bool = True) -> int:
    """Give each file of ``entries`` (not in ``skip``) in ``dest`` the
    modification time of the same file in ``source``, where both are of
    the entry's kind; returns how many files got a new time"""
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
        if src.st_mtime_ns == dst.st_mtime_ns:
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


def refresh_index(repo: Path) -> None:
    """Update git's stat cache in ``repo`` for files whose content did not
    change, so that git does not report them as modified"""
    git.run(repo, [*NO_ANNEX_FILTER, 'update-index', '-q',
                   '--ignore-submodules', '--refresh'])


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


def into_new_worktree(origin: Path, worktree: Path, commit: str,
                      annex: bool = True, cone: Cone | None = None) -> int:
    """Carry modification times from the working tree ``origin`` into the
    worktree just made at ``worktree``, which has ``commit`` checked out
    (sparse to ``cone``, where given), and copy marker files there;
    returns how many files got a time

    Files that differ from ``commit`` in ``origin`` keep their checkout
    time. Without ``annex`` (no git-annex in the dataset), files are not
    checked for annex pointers. Of a sparse checkout, only the files it
    has are looked at, in ``origin`` too.
    """
    entries = listed_files(origin, commit)
    pathspecs = []
    if cone is not None:
        entries = {path: entry for path, entry in entries.items()
                   if checked_out(path, cone)}
        pathspecs = cone_pathspecs(cone)
    differing = git.run(origin, differing_args(commit) + pathspecs)
    changed = copy_times(origin, worktree, entries, parse_names(differing),
                         check_pointers=annex)
    if changed:
        refresh_index(worktree)
    copy_markers(origin, worktree, directories(entries))
    return changed


def between_worktrees(source: Path, dest: Path, commit: str) -> int:
    """Carry modification times from the worktree ``source`` to the
    worktree ``dest`` of the same repository, which has ``commit`` checked
    out, for the files of ``commit`` whose working content is that of
    ``commit`` on both sides; returns how many files got a time"""
    dest_diff, source_diff = git.run_all([
        (dest, differing_args(commit)), (source, differing_args(commit))])
    changed = copy_times(source, dest, listed_files(dest, commit),
                         parse_names(dest_diff) | parse_names(source_diff))
    if changed:
        refresh_index(dest)
    return changed


def carry_problem(carry, *args, **kwargs) -> str | None:
    """Run one of the carrying functions; a message if it failed, else None

    Modification times are a convenience: a failure to carry them is
    reported, but does not undo or fail what the command did.
    """
    try:
        carry(*args, **kwargs)
    except (CommandError, OSError) as e:
        detail = e.stderr.strip().splitlines()[-1:] if isinstance(
            e, CommandError) and e.stderr else [str(e)]
        return f'modification times not carried over: {detail[0]}'
    return None


def carry_from(source: Path | None, dest: Path, commit: str) -> str | None:
    """``between_worktrees``, where ``source`` is a worktree other than
    ``dest``; a message if it failed, else None"""
    if source is None or os.path.realpath(source) == os.path.realpath(dest):
        return None
    return carry_problem(between_worktrees, source, dest, commit)


def carry_into_new_worktree(origin: Path, worktree: Path, commit: str,
                            annex: bool, cone: Cone | None = None) -> None:
    """``into_new_worktree``, with a failure logged as a warning"""
    problem = carry_problem(into_new_worktree, origin, worktree, commit,
                            annex=annex, cone=cone)
    if problem:
        lgr.warning('%s: %s', worktree, problem)


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
                  sources: list[tuple[Path, dict[str, str]]]) -> str | None:
    """Carry modification times into ``dest``, which has ``commit`` checked
    out, from several source worktrees, each only for the files it brought
    (path: blob): where the source's file holds that blob, ``commit`` has
    it too, and ``dest``'s file does not differ from ``commit``. Costs no
    git process per source. A message if it failed, else None"""
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
