"""Sparse worktrees: a checkout of only the directories a job needs

``worktree-add --sparse PATH`` checks out only PATH and what lies on the
way to it, with the cone mode of ``git sparse-checkout``: everything
below PATH, and the files directly in each directory on the way (the
top-level files among them). PATHs are given relative to the top dataset
and cross dataset boundaries: each dataset's worktree gets the parts of
the PATHs inside it as its cone, a subdataset that holds a PATH or lies in
one is part of the worktree (in full where it lies in one), and every
other subdataset is left out. A cone is a tuple of directories relative to
its dataset; None stands for a full checkout.
"""

from __future__ import annotations

from pathlib import (
    Path,
    PurePosixPath,
)

from datalad_next.runners import CommandError

from . import git
from .gitfiles import git_dirs
from .paths import unsafe_relpath
from .records import path_kind

Cone = tuple[str, ...]

DATALAD_DIR = '.datalad'
CONE_SET_GIT = (2, 35)
"""The first git whose ``sparse-checkout set`` takes ``--cone``"""


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
                        if not any(_inside(p, q) for q in found if q != p))
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
    if any(_inside(where, c) for c in cone):
        return None
    return with_datalad(
        c[len(where) + 1:] for c in cone if _inside(c, where))


def with_datalad(cone) -> Cone:
    """``cone`` with the dataset's ``.datalad`` directory, which DataLad
    needs in every worktree (the dataset's id, container definitions)"""
    return tuple(sorted({DATALAD_DIR, *cone}))


def in_cone(subpath: str, cone: Cone | None) -> bool:
    """Whether the subdataset at ``subpath`` (relative to its parent) is
    part of a worktree of the parent with ``cone``: it holds or lies in
    one of its directories"""
    return cone is None or any(
        _inside(subpath, c) or _inside(c, subpath) for c in cone)


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


def check_out_cone(worktree: Path, cone: Cone, config: list[str]) -> None:
    """Make the worktree just made with ``--no-checkout`` at ``worktree``
    sparse to ``cone``, then check out its HEAD there (with the git
    options ``config``); raises ``CommandError`` where git fails.
    ``checkout -f`` is safe here: the worktree holds nothing but its
    ``.git`` file, and it runs the post-checkout hook like ``worktree
    add`` does."""
    directories = ''.join(f'{c}\n' for c in cone)
    if (git.version() or (0,)) >= CONE_SET_GIT:
        git.run(worktree, ['sparse-checkout', 'set', '--cone', '--stdin'],
                input=directories)
    else:
        git.run(worktree, ['sparse-checkout', 'init', '--cone'])
        git.run(worktree, ['sparse-checkout', 'set', '--stdin'],
                input=directories)
    git.run(worktree, [*config, 'checkout', '--quiet', '--force', 'HEAD'])


def cone_of(worktree: Path) -> Cone | None:
    """The cone of the sparse checkout at ``worktree``, None where it is
    not sparse in cone mode (checked only where git keeps sparse patterns
    for it)"""
    try:
        if not (git_dirs(worktree)[0] / 'info' / 'sparse-checkout'
                ).exists():
            return None
        modes = git.lines(worktree, ['config', '--bool', '--get-regexp',
                                     r'^core\.sparsecheckout(cone)?$'])
    except (OSError, CommandError):
        return None
    if set(modes) != {'core.sparsecheckout true',
                      'core.sparsecheckoutcone true'}:
        return None
    return tuple(git.lines(worktree, ['sparse-checkout', 'list']))


def checked_out(path: str, cone: Cone) -> bool:
    """Whether a sparse checkout of ``cone`` has the file ``path``: it is
    below a directory of the cone, or directly in one on the way to it"""
    parent = path.rpartition('/')[0]
    return any(_inside(path, c) or not parent or _inside(c, parent)
               for c in cone)


def cone_pathspecs(cone: Cone) -> list[str]:
    """git pathspecs of the files a sparse checkout of ``cone`` has (see
    ``checked_out``)"""
    above = {''}
    for c in cone:
        parts = c.split('/')
        above.update('/'.join(parts[:i]) for i in range(1, len(parts)))
    return [f':(literal){c}' for c in cone] + [
        ':(glob)' + ''.join('\\' + ch if ch in '\\*?[' else ch
                            for ch in (a + '/' if a else '')) + '*'
        for a in sorted(above)]


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


def _inside(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory + '/')
