"""Sparse worktrees across a hierarchy: which part of it a job gets

``worktree-add --sparse PATH`` checks out only PATH and what lies on the
way to it, with the cone mode of ``git sparse-checkout`` (see
``repo.sparse_checkout``). PATHs are given relative to the top dataset
and cross dataset boundaries: each dataset's worktree gets the parts of
the PATHs inside it as its cone, a subdataset that holds a PATH or lies in
one is part of the worktree (in full where it lies in one), and every
other subdataset is left out. This module is that algebra, and what a
merge takes from a sparse worktree whose commits delete files it never
had (DataLad's ``save`` records them as deleted, datalad/datalad#7815): a
commit on top that restores them (``restored_outside``).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import (
    Path,
    PurePosixPath,
)

from datalad_next.runners import CommandError

from datalad_worktree.base.advice import flag
from datalad_worktree.base.paths import unsafe_relpath
from datalad_worktree.repo.queries import GITLINK_MODE
from datalad_worktree.repo.records import path_kind
from datalad_worktree.repo.sparse_checkout import Cone, checked_out, cone_of, inside
from datalad_worktree.repo.store.refs import git_dirs
from datalad_worktree.runners import git

DATALAD_DIR = '.datalad'


def sparse_paths(given: list[str]) -> tuple[Cone, list[str]]:
    """The PATHs of ``--sparse`` as a cone of the top dataset (normalized,
    each once, none inside another), and why each unusable one is"""
    problems, found = [], set()
    for value in given:
        path = value.rstrip('/') or value
        problem = unsafe_relpath(path) if path != '.' else \
            'it is the whole dataset'
        if problem:
            problems.append(f'{flag("sparse")} {value!r} cannot be used: '
                            f'{problem}; '
                            'give a directory relative to the dataset, '
                            "such as 'inputs/sub-01'")
        else:
            found.add(path)
    return tuple(sorted(p for p in found
                        if not any(inside(p, q) for q in found if q != p))
                 ), problems


def cone_at(relpath: PurePosixPath, cone: Cone | None) -> Cone | None:
    """The cone of the dataset at ``relpath`` (relative to the top) in a
    worktree whose top dataset has ``cone`` (the PATHs of ``--sparse``):
    None (everything) where it lies in one of them, else the parts of them
    below it and ``.datalad``"""
    if cone is None:
        return None
    where = relpath.as_posix()
    if where == '.':
        return with_datalad(cone)
    if any(inside(where, c) for c in cone):
        return None
    return with_datalad(
        c[len(where) + 1:] for c in cone if inside(c, where))


def with_datalad(cone) -> Cone:
    """``cone`` with the dataset's ``.datalad`` directory, which DataLad
    needs in every worktree (the dataset's id, container definitions)"""
    return tuple(sorted({DATALAD_DIR, *cone}))


def in_cone(subpath: str, cone: Cone | None) -> bool:
    """Whether the subdataset at ``subpath`` (relative to its parent) is
    part of a worktree of the parent with ``cone``: it holds or lies in
    one of its directories"""
    return cone is None or any(
        inside(subpath, c) or inside(c, subpath) for c in cone)


def cone_problem(repo: Path, commit: str, cone: Cone) -> str | None:
    """Why the directories of ``cone`` cannot be checked out of ``commit``
    in ``repo``: one is a file; or None. A directory that is not there
    yet (for outputs) is fine, and a subdataset on the way leaves the
    rest to that subdataset's own check."""
    for path in cone:
        if path_kind(repo, commit, path) == 'blob':
            return (f'{flag("sparse")}: {path} is a file in {repo}; git '
                    'checks out '
                    'whole directories only, so give the directory that '
                    'holds it')
    return None


def deleted_outside(repo: Path, head: str, commit: str, cone: Cone
                    ) -> dict[str, tuple[str, str]]:
    """The files that ``commit`` deletes in ``repo`` since its merge base
    with ``head``, although a sparse checkout of ``cone`` never had them,
    each with the mode and object the merge base has for it: what
    DataLad's ``save`` commits where it takes the files a sparse checkout
    leaves out for deleted (datalad/datalad#7815)"""
    fields = git.entries(repo, [
        'diff', '--raw', '-z', '--no-abbrev', '--no-renames',
        '--diff-filter=D', f'{head}...{commit}', '--'])
    found = {}
    for meta, path in zip(fields[::2], fields[1::2]):
        parts = meta[1:].split(' ')
        mode, sha = parts[0], parts[2]
        if not checked_out(path, cone):
            found[path] = (mode, sha)
    return found


@dataclass(frozen=True)
class Restored:
    """What merging a source from a sparse worktree takes instead of its
    commit, where that deletes files outside the worktree's cone"""
    commit: str
    """The commit to merge: the source's, or the one that restores the
    files on top of it"""
    files: int = 0
    """How many files that commit restores (0: the source's own)"""
    problem: str | None = None
    """Why the source must not be merged at all, or None"""


RESTORE_MESSAGE = "Restore files outside the sparse job's checkout"

INDEX_NAME = 'worktree-merge-restore-index'
"""The index file, in the git directory of the checkout, that the tree
of a restoring commit is built in (with the process and thread ids
appended; removed when done)"""


def restored_outside(repo: Path, head: str, commit: str, name: str,
                     worktree: Path | None) -> Restored:
    """What to merge into ``repo`` at ``head`` for ``commit`` of the
    source ``name``, checked out at ``worktree``: where the worktree is
    sparse and the commit deletes files that it never had, a commit on top
    of it that restores them as the merge base has them (see
    ``restoring_commit``), so that the merge brings the job's own changes
    and keeps those files; else ``commit`` itself. Refused (``problem``)
    where those deletions cannot be undone without touching the job's own
    changes."""
    cone = cone_of(worktree) if worktree is not None else None
    deleted = deleted_outside(repo, head, commit, cone) if cone else {}
    if not deleted:
        return Restored(commit)
    made = restoring_commit(repo, commit, deleted, name)
    if made is None:
        return Restored(commit, problem=sparse_deletion_problem(
            commit, name, worktree, sorted(deleted)))
    return Restored(made, len(deleted))


def restoring_commit(repo: Path, commit: str,
                     entries: dict[str, tuple[str, str]], name: str
                     ) -> str | None:
    """A commit on top of ``commit`` whose tree is that of ``commit`` with
    ``entries`` (path: mode, object) put back: built in an index file of
    its own (the checkout's index is not touched), and dated as
    ``commit`` is, so that the same call makes the same commit again.
    None where the tree would differ from ``commit``'s in anything but
    those files added (a subdataset among them, or a file of the job's
    where one of them would go)."""
    if any(mode == GITLINK_MODE for mode, _ in entries.values()):
        return None
    index = git_dirs(repo)[0] / \
        f'{INDEX_NAME}.{os.getpid()}.{threading.get_ident()}'
    env = {'GIT_INDEX_FILE': str(index)}
    try:
        git.run(repo, ['read-tree', commit], env=env)
        git.run(repo, ['update-index', '-z', '--index-info'], input=''.join(
            f'{mode} {sha}\t{path}\0'
            for path, (mode, sha) in entries.items()), env=env)
        tree = git.text(repo, ['write-tree'], env=env).strip()
    except CommandError:
        # git refused the index (a file where the job has a directory)
        return None
    finally:
        try:
            os.unlink(index)
        except FileNotFoundError:
            pass
    fields = git.entries(repo, ['diff-tree', '-r', '-z', '--no-renames',
                                commit, tree])
    added = {path for meta, path in zip(fields[::2], fields[1::2])
             if meta.split(' ')[-1] == 'A'}
    if len(fields) != 2 * len(entries) or added != set(entries):
        return None
    date = committer_date(repo, commit)
    return git.text(repo, [
        'commit-tree', '-p', commit, '-m', RESTORE_MESSAGE, '-m', (
            f'{name} ({commit[:10]}) records {len(entries)} file(s) as '
            'deleted that its sparse worktree never checked out: DataLad '
            'takes the files a sparse checkout leaves out for deleted when '
            'it saves the whole dataset (datalad/datalad#7815). '
            'worktree-merge restores them as they were where the job '
            'started, so that merging its results keeps them.'), tree],
        env={'GIT_AUTHOR_DATE': date, 'GIT_COMMITTER_DATE': date}).strip()


def committer_date(repo: Path, commit: str) -> str:
    """The committer date of ``commit``, as git reads dates from the
    environment ('SECONDS ZONE')"""
    for line in git.lines(repo, ['cat-file', 'commit', commit]):
        if line.startswith('committer '):
            return ' '.join(line.rsplit(' ', 2)[1:])
        if not line:
            break
    raise ValueError(f'{commit} has no committer')


def sparse_deletion_problem(commit: str, name: str, worktree: Path | None,
                            deleted: list[str]) -> str:
    """Why ``commit`` (of the source ``name``, checked out at ``worktree``)
    must not be merged: it deletes the files ``deleted`` that its sparse
    worktree never had, and they cannot be restored without changing
    the job's own changes"""
    shown = ', '.join(deleted[:3]) + (', ...' if len(deleted) > 3 else '')
    return (f'{name} ({commit[:10]}) deletes {len(deleted)} file(s) or '
            f'subdataset(s) that its sparse worktree never checked out '
            f'({shown}), and they cannot be restored without changing what '
            'the job itself changed (it removed a subdataset, or put a '
            'file where one of them was). Nothing was merged from it. '
            'Undo those deletions there (find them with '
            f"'git -C {worktree} log --diff-filter=D --stat'), and run "
            'this again')
