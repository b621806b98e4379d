"""What a commit records, and which objects a repository has

The tree entries of a commit, its gitlinks and the subdataset paths of
its ``.gitmodules``: read from the object store's files where they can be
(see ``objects``; a dataset without subdatasets then costs no git
process), else asked of git, with the same answer either way.

Questions about every file of a commit (``files_of``,
``may_hold_unlocked_files``) are read from the files only for small
trees (up to ``BY_HAND`` files): reading a tree in Python costs about
0.1 ms per file, git's ``ls-tree -r -l`` and ``cat-file --batch`` a
process (about 2.5 ms) and next to nothing per file (at 20 000 files,
2.2 s against 20 ms). Larger trees are asked of git, one ``ls-tree`` and
one ``cat-file --batch`` per question (a second only where git-annex's
mark turns up), whatever their size.

Whether the object store may be read at all is ``store.guard``'s to
say, for each repository once per question: where git would read a replacement (``git
replace``) or another object store, every question goes to git, so that
no answer mixes git's view of a commit with the raw one.
"""

from __future__ import annotations

import os
from contextlib import closing
from pathlib import Path

from datalad_next.runners import CommandError

from datalad_worktree.repo.queries import GITLINK_MODE, head_commit
from datalad_worktree.repo.sparse_checkout import checked_out
from datalad_worktree.repo.store.guard import OBJECTS, readable
from datalad_worktree.repo.store.objects import (
    FILE_MODES,
    GITLINK,
    MAX_POINTER,
    POINTER_MARK,
    TREE,
    commit_tree,
    is_pointer_like,
    pointers_in,
    read_object,
    tree_entry,
    tree_files,
)
from datalad_worktree.repo.store.refs import OBJECT_NAME, git_dirs
from datalad_worktree.runners import git


def staged_gitlinks(repo: Path, paths: list[str]) -> dict[str, set[str]]:
    """The commits the index stages for each of ``paths`` that is a
    gitlink there: the commit, or '' for each conflicted stage"""
    staged: dict[str, set[str]] = {}
    for r in git.entries(repo, ['--literal-pathspecs', 'ls-files', '-s', '-z',
                                '--', *paths]):
        meta, path = r.split('\t', 1)
        mode, sha, stage = meta.split(' ')
        if mode == GITLINK_MODE:
            staged.setdefault(path, set()).add(sha if stage == '0' else '')
    return staged


def gitlinks(repo: Path, commit: str, paths: list[str]) -> dict[str, str]:
    """The commit recorded for each of ``paths`` that is a gitlink in
    ``commit``"""
    if not paths:
        return {}
    found = {}
    located = _tree_from_files(repo, commit)
    entries = [tree_entry(*located, p) for p in paths] if located else [None]
    if None not in entries:
        return {p: e[1] for p, e in zip(paths, entries)
                if e and e[0] == GITLINK}
    for entry in git.entries(repo, ['--literal-pathspecs', 'ls-tree', '-z',
                                    commit, '--', *paths]):
        meta, path = entry.split('\t', 1)
        mode, _, sha = meta.split(' ')
        if mode == GITLINK_MODE:
            found[path] = sha
    return found


def submodule_paths(repo: Path, commit: str) -> list[str]:
    """The subdataset paths that the ``.gitmodules`` of ``commit`` lists,
    as written there (unchecked)"""
    located = _tree_from_files(repo, commit)
    if located and tree_entry(*located, '.gitmodules') is False:
        return []
    found = git.optional_text(repo, [
        'config', '-z', '--blob', f'{commit}:.gitmodules',
        '--get-regexp', r'^submodule\..*\.path$'])
    if found is None:
        # no .gitmodules, or no path in it
        return []
    return [r.split('\n', 1)[1] for r in found.split('\0')[:-1] if '\n' in r]


def _tree_from_files(repo: Path, commit: str) -> tuple[Path, str] | None:
    """The object directory of ``repo`` and the tree of ``commit`` (a
    commit's name, or HEAD), where they can be read without git"""
    if commit == 'HEAD':
        commit = head_commit(repo)
    if not commit or not OBJECT_NAME.fullmatch(commit):
        return None
    objects = _objects(repo)
    if objects is None:
        return None
    tree = commit_tree(objects, commit)
    return None if tree is None else (objects, tree)


def tree_entries(repo: Path, commit: str, paths: list[str]
                 ) -> dict[str, tuple[str, str]]:
    """Mode and blob of each of ``paths`` that is a file in ``commit``"""
    if not paths:
        return {}
    found = {}
    for entry in git.entries(repo, ['--literal-pathspecs', 'ls-tree', '-r',
                                    '-z', commit, '--', *paths]):
        meta, path = entry.split('\t', 1)
        mode, _, blob = meta.split(' ')
        found[path] = (mode, blob)
    return found


def object_ids(repo: Path, names: list[str]) -> list[str | None]:
    """The object each of ``names`` (revisions) stands for, None where
    there is none"""
    return [None if line.endswith(' missing') else line
            for line in git.text(repo, ['cat-file',
                                        '--batch-check=%(objectname)'],
                                 input='\n'.join(names) + '\n').splitlines()]


def has_commit(repo: Path, commit: str) -> bool:
    """Whether the commit ``commit`` (a full object name) is in ``repo``"""
    found = _object_from_files(repo, commit)
    if found is not None:
        return found[0] == b'commit'
    return object_ids(repo, [f'{commit}^{{commit}}'])[0] is not None


def _object_from_files(repo: Path, name: str) -> tuple[bytes, bytes] | None:
    """``objects.read_object`` for the repository of ``repo``"""
    objects = _objects(repo)
    return None if objects is None else read_object(objects, name)


def _objects(repo: Path) -> Path | None:
    """The object directory of the repository of ``repo``, where its files
    may be read for objects (see ``store.guard``: no replacement refs, a
    repository format and an environment that leave the objects where
    they are); None where git has to be asked"""
    try:
        gitdir, common = git_dirs(repo)
    except OSError:
        return None
    return common / 'objects' if readable(common, gitdir, OBJECTS) else None


BY_HAND = 32
"""The most files of a tree that are read from the object store's files
for a question about all of them; beyond, git is asked (see the module's
docstring)"""


def may_hold_unlocked_files(repo: Path, commit: str, files: int = BY_HAND,
                            cone: tuple[str, ...] | None = None) -> bool:
    """Whether ``commit`` may hold an unlocked annexed file (a git-annex
    pointer file): False only where all its files were read and none is
    one; from the object store where it may be read and ``commit`` has at
    most ``files`` files, else from git (``ls-tree``, then ``cat-file
    --batch`` of the blobs small enough to be pointers), at any size. With
    ``cone``, only the files of a sparse checkout of those directories
    count."""
    located = _tree_from_files(repo, commit)
    found = None if located is None else pointers_in(*located, files, cone)
    if found is not None:
        return found
    try:
        return _pointers_from_git(repo, commit, cone)
    except CommandError:
        # git cannot read the commit: the checkout will say why
        return True


def _pointers_from_git(repo: Path, commit: str,
                       cone: tuple[str, ...] | None) -> bool:
    """``may_hold_unlocked_files``, asked of git: the blobs small enough to
    be pointers, from ``git ls-tree -r -l``, are read with one ``git
    cat-file --batch``. Its output is only searched for ``POINTER_MARK``
    as it comes, and its length checked against what the blobs' sizes
    make it (so every blob was there); only where the mark turns up is
    each blob looked at (a second ``cat-file``), to the first that may be
    a pointer."""
    small: dict[bytes, bytes] = {}
    for record in git.run(repo, ['ls-tree', '-r', '-l', '-z', '--full-tree',
                                 commit]).split(b'\0'):
        if not record:
            continue
        meta, path = record.split(b'\t', 1)
        mode, _, name, size = meta.split()
        if mode in FILE_MODES and int(size) < MAX_POINTER and (
                cone is None or checked_out(os.fsdecode(path), cone)):
            small[name] = size
    if not small:
        return False
    names = sorted(n.decode() for n in small)
    # each answer: "<name> blob <size>\n<content>\n"
    expected = 8 * len(small) + sum(map(len, small)) + \
        sum(map(len, small.values())) + sum(map(int, small.values()))
    seen, tail, marked = 0, b'', False
    with closing(git.stream(repo, ['cat-file', '--batch', '--buffer'],
                            names)) as chunks:
        for chunk in chunks:
            seen += len(chunk)
            if POINTER_MARK in tail + chunk[:len(POINTER_MARK)] or \
                    POINTER_MARK in chunk:
                marked = True
                break
            tail = chunk[-len(POINTER_MARK):]
    if not marked and seen == expected:
        return False
    with closing(git.cat_file(repo, names)) as blobs:
        # the git process is ended at the first pointer found
        return any(content is None or is_pointer_like(content)
                   for _, content in blobs)


def path_kind(repo: Path, commit: str, path: str) -> str | None:
    """What ``path`` (slash-separated) is in ``commit``: 'tree', 'commit'
    (a gitlink: a subdataset) or 'blob', or None where it is not there.
    The first gitlink on the way answers for the path below it."""
    located = _tree_from_files(repo, commit)
    parts = path.split('/')
    for depth in range(1, len(parts) + 1):
        prefix = '/'.join(parts[:depth])
        kind = _kind_from_files(located, prefix) if located else None
        if kind is None:
            kind = _kind_from_git(repo, commit, prefix) or False
        if kind == 'commit' or not kind:
            return kind or None
        if kind == 'blob':
            return kind if depth == len(parts) else None
    return 'tree'


def _kind_from_files(located: tuple[Path, str], path: str
                     ) -> str | None | bool:
    entry = tree_entry(*located, path)
    if not entry:
        return entry
    return {TREE: 'tree', GITLINK: 'commit'}.get(entry[0], 'blob')


def _kind_from_git(repo: Path, commit: str, path: str) -> str | None:
    found = git.entries(repo, ['--literal-pathspecs', 'ls-tree', '-z',
                               commit, '--', path])
    kinds = [e.split(' ', 2)[1] for e in found
             if e.split('\t', 1)[1] == path]
    return kinds[0] if kinds else None


def files_of(repo: Path, commit: str, files: int = BY_HAND
             ) -> list[tuple[str, str, str, int]] | None:
    """Path, mode, blob and size of each file and symbolic link of
    ``commit``, read from the object store (see ``objects.tree_files``);
    None where git has to be asked: the store may not be read, or
    ``commit`` has more than ``files`` files (``git ls-tree -r -l`` is
    faster then)"""
    located = _tree_from_files(repo, commit)
    return None if located is None else tree_files(*located, files)


def contained_in(repo: Path, commits: list[str], head: str) -> set[str]:
    """Those of ``commits`` (full object names) that ``head`` contains: it
    is one of them or has them as ancestors (commits that ``repo`` lacks
    are not contained); ``head`` itself without asking git (nothing to
    merge), the others asked of git once for all"""
    found = {c for c in commits if c == head}
    rest = [c for c in commits if c != head]
    present = [c for c, there in zip(rest, object_ids(
        repo, [f'{c}^{{commit}}' for c in rest])) if there] \
        if rest else []
    if not present:
        return found
    outside = set(git.text(repo, ['rev-list', '--stdin'], input='\n'.join(
        [*present, f'^{head}']) + '\n').split())
    return found | (set(present) - outside)
