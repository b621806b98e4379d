"""git's sparse checkout in cone mode, for one worktree

Making a worktree sparse (``git sparse-checkout set --cone``), reading the
cone of an existing one, and which files such a checkout has. A cone is a
tuple of directories relative to the dataset; None stands for a full
checkout. The algebra of cones across dataset boundaries is in
``hierarchy.cones``.
"""

from __future__ import annotations

from pathlib import (
    Path,
)

from datalad_next.runners import CommandError

from datalad_worktree.repo.store.refs import git_dirs
from datalad_worktree.runners import git
from datalad_worktree.runners.tools import version

Cone = tuple[str, ...]


CONE_SET_GIT = (2, 35)
"""The first git whose ``sparse-checkout set`` takes ``--cone``"""


def check_out_cone(worktree: Path, cone: Cone, config: list[str]) -> None:
    """Make the worktree just made with ``--no-checkout`` at ``worktree``
    sparse to ``cone``, then check out its HEAD there (with the git
    options ``config``); raises ``CommandError`` where git fails.
    ``checkout -f`` is safe here: the worktree holds nothing but its
    ``.git`` file, and it runs the post-checkout hook like ``worktree
    add`` does."""
    directories = ''.join(f'{c}\n' for c in cone)
    if (version() or (0,)) >= CONE_SET_GIT:
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
    return any(inside(path, c) or not parent or inside(c, parent)
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


def inside(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory + '/')
