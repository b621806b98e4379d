"""Sparse worktrees across a hierarchy: which part of it a job gets

``worktree-add --sparse PATH`` checks out only PATH and what lies on the
way to it, with the cone mode of ``git sparse-checkout`` (see
``repo.sparse_checkout``). PATHs are given relative to the top dataset
and cross dataset boundaries: each dataset's worktree gets the parts of
the PATHs inside it as its cone, a subdataset that holds a PATH or lies in
one is part of the worktree (in full where it lies in one), and every
other subdataset is left out. This module is that algebra, and the check
that a sparse worktree's commits delete nothing it never had.
"""

from __future__ import annotations

from pathlib import (
    Path,
    PurePosixPath,
)

from datalad_worktree.base.paths import unsafe_relpath
from datalad_worktree.repo.records import path_kind
from datalad_worktree.repo.sparse_checkout import Cone, checked_out, cone_of, inside
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
            problems.append(f'--sparse {value!r} cannot be used: {problem}; '
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
            return (f'--sparse: {path} is a file in {repo}; git checks out '
                    'whole directories only, so give the directory that '
                    'holds it')
    return None


def deleted_outside(repo: Path, head: str, commit: str, cone: Cone
                    ) -> list[str]:
    """The files that ``commit`` deletes in ``repo`` since its merge base
    with ``head``, although a sparse checkout of ``cone`` never had them:
    what DataLad's ``save`` commits where it takes the files a sparse
    checkout leaves out for deleted (datalad/datalad#7815)"""
    return [path for path in git.entries(repo, [
        'diff', '--no-renames', '--name-only', '--diff-filter=D', '-z',
        f'{head}...{commit}', '--']) if not checked_out(path, cone)]


def sparse_deletion_problem(repo: Path, head: str, commit: str, name: str,
                            worktree: Path | None) -> str | None:
    """Why ``commit`` (of the source ``name``, checked out at ``worktree``)
    must not be merged into ``repo`` at ``head``: the worktree is sparse,
    and the commit deletes files that it never had; or None"""
    cone = cone_of(worktree) if worktree is not None else None
    deleted = cone and deleted_outside(repo, head, commit, cone)
    if not deleted:
        return None
    shown = ', '.join(deleted[:3]) + (', ...' if len(deleted) > 3 else '')
    return (f'{name} ({commit[:10]}) deletes {len(deleted)} file(s) that '
            f'its sparse worktree never checked out ({shown}): DataLad '
            'records the files a sparse checkout leaves out as deleted '
            'when it saves the whole dataset (datalad/datalad#7815). '
            'Nothing was merged from it. Undo those deletions there (find '
            f"them with 'git -C {worktree} log --diff-filter=D --stat'), "
            "use 'datalad run --explicit' in sparse worktrees, and run "
            'this again')
