"""The worktree registry of a repository

``git worktree list`` is the one source of truth about which worktrees a
repository has; this module reads it (from git's files where that is
certain, see ``store.refs``), tells the main worktree from linked ones,
also where a git directory is absorbed into a superdataset, and forgets
the registration of one worktree whose directory is gone.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import (
    dataclass,
    replace,
)
from pathlib import Path

from datalad_worktree.base.paths import same_path
from datalad_worktree.repo.store.refs import (
    git_dirs,
    read_worktrees,
    worktree_path,
)
from datalad_worktree.runners import git
from datalad_worktree.runners.locks import lock_wait, retry_on_lock
from datalad_worktree.runners.tools import version

NUL_LIST_GIT = (2, 36)
"""The first git whose ``worktree list --porcelain`` takes ``-z``: each
field ends with a NUL, so that paths (and lock reasons) with newlines come
through"""


@dataclass(frozen=True)
class Worktree:
    """One entry of ``git worktree list --porcelain``"""
    path: Path
    head: str | None
    """The commit checked out, None where there is none yet"""
    branch: str | None
    """Full ref name of the checked-out branch, None when detached"""
    locked: str | None
    """The lock reason ('' without one), None when not locked"""
    prunable: bool

    @property
    def short_branch(self) -> str | None:
        """The branch's short name, None when detached"""
        return self.branch.removeprefix('refs/heads/') if self.branch \
            else None


def list_worktrees(repo: Path) -> list[Worktree]:
    """All worktrees of ``repo``'s repository, the main worktree first
    (where it is checked out, also for a git directory absorbed into a
    superdataset, see ``repo.main_checkout``), read from git's files
    where it can be (see ``gitfiles.read_worktrees``), else from git"""
    found = _from_files(repo)
    if found is None:
        found = _from_git(repo)
    if found:
        found[0] = replace(found[0], path=main_checkout(found[0].path))
    return found


def _from_files(repo: Path) -> list[Worktree] | None:
    try:
        registered = read_worktrees(git_dirs(repo)[1])
    except OSError:
        return None
    if registered is None:
        return None
    return [Worktree(path=r.path, head=_commit(r.head.commit),
                     branch=r.head.branch,
                     locked=r.locked, prunable=r.prunable)
            for r in registered]


def _from_git(repo: Path) -> list[Worktree]:
    """``git worktree list --porcelain``, NUL-separated where git can"""
    nul = (version() or (0,)) >= NUL_LIST_GIT
    args = ['worktree', 'list', '--porcelain', *(['-z'] if nul else [])]
    # only reads: tried again while another git is making a worktree
    listed = retry_on_lock(lambda: (git.entries if nul else git.lines)(
        repo, args), lock_wait())
    found = []
    fields: dict = {}
    for line in listed + ['']:
        if not line:
            if fields:
                found.append(Worktree(
                    path=Path(fields['worktree']),
                    head=_commit(fields.get('HEAD')),
                    branch=fields.get('branch'),
                    locked=fields.get('locked'),
                    prunable='prunable' in fields,
                ))
            fields = {}
            continue
        key, _, value = line.partition(' ')
        fields[key] = value
    return found


def _commit(listed: str | None) -> str | None:
    """The commit ``git worktree list`` gives, None where it gives none or
    zeros (a branch without commits yet)"""
    return listed if listed and listed.strip('0') else None


def forget_worktree(admin: Path, repo: Path) -> None:
    """Delete ``admin``, the registration of a linked worktree of ``repo``
    whose directory is gone, as ``git worktree prune`` would, but of this
    one worktree only: a prune of all would also take the registration of
    a worktree that another process is making at that moment. Where
    ``admin`` is not one that prune would delete, prune decides."""
    path = worktree_path(admin) if (admin / 'gitdir').is_file() else None
    if admin.parent == git_dirs(repo)[1] / 'worktrees' and path and \
            not os.path.lexists(path / '.git') and \
            not (admin / 'locked').exists():
        shutil.rmtree(admin)
    else:
        git.run(repo, ['worktree', 'prune'])


def registration(repo: Path, path: Path) -> Path | None:
    """The directory below ``worktrees`` in the git directory of ``repo``
    that registers the linked worktree at ``path`` (its directory may be
    gone), or None"""
    base = git_dirs(repo)[1] / 'worktrees'
    try:
        names = sorted(os.listdir(base))
    except OSError:
        return None
    for name in names:
        recorded = worktree_path(base / name)
        if recorded and same_path(recorded, path):
            return base / name
    return None


def find_worktree(worktrees: list[Worktree], path: Path) -> Worktree | None:
    """The entry of ``worktrees`` at ``path``, or None"""
    return next((w for w in worktrees if same_path(w.path, path)), None)


def checked_out_at(worktrees: list[Worktree], branch: str) -> Path | None:
    """Where branch ``branch`` (a short name) is checked out, or None"""
    ref = f'refs/heads/{branch}'
    return next((w.path for w in worktrees if w.branch == ref), None)


def linked_worktree_problem(path: Path,
                            worktrees: list[Worktree] | None = None
                            ) -> str | None:
    """Why the working tree ``path`` is not a linked worktree, or None
    (``worktrees``: its repository's, where the caller has listed them)"""
    worktrees = worktrees or list_worktrees(path)
    if not same_path(worktrees[0].path, path):
        return None
    linked = [str(w.path) for w in worktrees[1:]]
    hint = (f"give one of its linked worktrees: {', '.join(linked)}"
            if linked else "create one with 'datalad worktree-add' first")
    return (f'{path} is the main worktree of its repository, not a linked '
            f'worktree; {hint}')


def main_checkout(listed: Path) -> Path:
    """Where the main worktree is that ``git worktree list`` names
    ``listed``: there, except where that is a git directory absorbed into a
    superdataset's ``.git/modules`` whose ``core.worktree`` git-annex unset
    (git then names the git directory): where the superdataset checks it
    out (see ``absorbed_checkout``), if that is found"""
    if not (listed / 'HEAD').is_file() or not (listed / 'objects').is_dir() \
            or os.path.lexists(listed / '.git'):
        return listed
    return absorbed_checkout(listed) or listed


def absorbed_checkout(gitdir: Path) -> Path | None:
    """Where the repository with the git directory ``gitdir``, below a
    superdataset's ``.git/modules``, is checked out: the path that the
    ``.gitmodules`` of the superdataset's checkout gives it, if its
    ``.git`` leads back to ``gitdir``; None where there is no such place"""
    modules = next((up for up in gitdir.parents if up.name == 'modules'
                    and (up.parent / 'HEAD').is_file()), None)
    if modules is None:
        return None
    parent = modules.parent.parent if modules.parent.name == '.git' \
        else absorbed_checkout(modules.parent)
    if parent is None:
        return None
    name = gitdir.relative_to(modules).as_posix()
    path = git.optional_text(parent, [
        'config', '-f', '.gitmodules', '--get', f'submodule.{name}.path'])
    where = parent / path.strip() if path else None
    if where is None or not os.path.lexists(where / '.git'):
        return None
    return where if same_path(git_dirs(where)[1], gitdir) else None


def same_repository(a: Path, b: Path) -> bool:
    """Whether two working trees belong to the same repository"""
    try:
        return os.path.realpath(git_dirs(a)[1]) == \
            os.path.realpath(git_dirs(b)[1])
    except OSError:
        return False
