"""The worktree registry of a repository, and the lock files git leaves

``git worktree list`` is the one source of truth about which worktrees a
repository has; this module reads it, tells main from linked worktrees,
makes one worktree and links it to the shared annex, and reports the lock
files that an interrupted git leaves behind.
"""

from __future__ import annotations

import os
from dataclasses import (
    dataclass,
    replace,
)
from pathlib import Path

from datalad_next.runners import CommandError

from . import git
from .gitfiles import (
    git_dirs,
    read_worktrees,
)
from .paths import (
    is_within,
    same_path,
)
from .repo import (
    main_checkout,
    toplevel,
)
from .records import may_hold_unlocked_files
from .sharedannex import (
    annex_checkout_work_needless,
    link_like_annex,
    repair_annex_link,
)
from .sparse import (
    Cone,
    check_out_cone,
)


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
    return [Worktree(path=r.path, head=r.head.commit, branch=r.head.branch,
                     locked=r.locked, prunable=r.prunable)
            for r in registered]


def _from_git(repo: Path) -> list[Worktree]:
    found = []
    fields: dict = {}
    for line in git.lines(repo, ['worktree', 'list', '--porcelain']) + ['']:
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


def lock_problem(repo: Path) -> str | None:
    """Why lock files that git left in ``repo`` block changing it, or None

    git holds ``index.lock``, ``HEAD.lock`` and the lock of the branch
    checked out while it changes them, and a killed git leaves them.
    Whether a git command still runs cannot be known, so they are reported,
    never removed.
    """
    gitdir, _ = git_dirs(repo)
    locks = [p for p in (gitdir / 'index.lock', gitdir / 'HEAD.lock')
             if p.exists()]
    head = (gitdir / 'HEAD').read_text().strip()
    if head.startswith('ref: refs/heads/'):
        locks += branch_locks(repo, head[len('ref: refs/heads/'):])
    return lock_message(repo, locks)


def branch_locks(repo: Path, branch: str, packed: bool = False
                 ) -> list[Path]:
    """The lock files of ``branch`` (with ``packed``: also of the packed
    refs, which deleting a branch needs) that git left in ``repo``"""
    _, common = git_dirs(repo)
    candidates = [common / 'refs' / 'heads' / f'{branch}.lock']
    if packed:
        candidates.append(common / 'packed-refs.lock')
    return [c for c in candidates if c.exists()]


def lock_message(repo: Path, locks: list[Path]) -> str | None:
    """What to do about lock files a git command left in ``repo``, or None
    if there are none"""
    if not locks:
        return None
    return (f'git left {" and ".join(map(str, locks))} in {repo}: a git '
            'command there is still running, or was interrupted. If none '
            'is running, delete the lock file and run the command again')


def location_problem(target: Path, top: Path) -> str | None:
    """Why the top worktree cannot be made at ``target``, or None

    ``target`` must not be inside the dataset, nor inside any other git
    working tree, nor be a non-empty directory unless it is a worktree of
    ``top`` already (a rerun, checked per dataset later).
    """
    if is_within(target, top):
        return (f'{target} is inside the dataset {top}; choose a location '
                'outside of it, e.g. next to it')
    if '.git' in target.parts:
        return ('refusing to create a worktree inside a .git directory: '
                f'{target}')
    ancestor = target.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        return f'{ancestor} is not a directory'
    repo = toplevel(ancestor)
    if repo:
        return (f'{target} is inside the git working tree {repo}; '
                'choose a location outside of any dataset')
    if target.exists() and not target.is_dir():
        return f'{target} exists and is not a directory'
    return None


def add_worktree(repo: Path, target: Path, commit: str, branch: str | None,
                 new_branch: bool, annex: bool, moved_from: str = '',
                 cone: Cone | None = None) -> str | None:
    """Make a linked worktree of ``repo`` at ``target``: ``branch`` (made
    at ``commit`` with ``new_branch``; moved from ``moved_from`` to
    ``commit`` first, where given, only if it is still there), or a
    detached HEAD at ``commit`` where ``branch`` is None; why that failed,
    or None. With ``annex`` (the repository uses git-annex), the worktree
    must come out linked to the shared annex. With ``cone``, it is a
    sparse checkout of those directories (see ``sparse``).

    Where the commit holds no unlocked annexed file (in the cone) and
    git-annex's are the only hooks, git-annex has nothing to do in the
    checkout but make its links (its filter and post-checkout hook act on
    unlocked files only): the checkout then runs without them, and the
    links are made here, which saves most of the time a worktree takes."""
    if branch is not None and moved_from:
        try:
            git.run(repo, ['update-ref', '-m', 'worktree-add: move forward',
                           f'refs/heads/{branch}', commit, moved_from])
        except CommandError as e:
            return f'moving branch {branch} failed: {git.error_line(e)}'

    if branch is None:
        how = ['--detach', '--', str(target), commit]
    elif new_branch:
        how = ['-b', branch, '--', str(target), commit]
    else:
        how = ['--', str(target), branch]
    quick = annex and not may_hold_unlocked_files(repo, commit, cone=cone) \
        and annex_checkout_work_needless(repo)
    without_annex = ['-c', f'core.hooksPath={os.devnull}',
                     *git.NO_ANNEX_FILTER] if quick else []
    later = ['--no-checkout'] if cone is not None else []
    try:
        git.run(repo, [*without_annex, '-c', 'submodule.recurse=false',
                       'worktree', 'add', '--quiet', *later, *how])
    except CommandError as e:
        return f'git worktree add failed: {git.error_line(e)}'
    if cone is not None:
        try:
            check_out_cone(target, cone, without_annex)
        except CommandError as e:
            return f'sparse checkout failed: {git.error_line(e)}'
    problem = link_like_annex(target) if quick else None
    return problem or (repair_annex_link(target) if annex else None)


def existing_worktree_problem(wt: Worktree, repo: Path, target: Path,
                              branch: str | None, top: Path, root: Path
                              ) -> str | None:
    """Why the worktree ``wt`` of ``repo``, registered at ``target`` where
    a new one is asked for, is not the one asked for (on ``branch``, or
    detached where that is None, at whatever commit it has moved on to),
    or None; ``root`` is the worktree of the hierarchy's ``top`` dataset
    that ``target`` is part of"""
    if wt.prunable:
        missing = (f'a worktree of {repo} is registered at {target} but its '
                   'directory is missing')
        if root.exists():
            return f"{missing}; run 'git -C {repo} worktree prune'"
        return (f"{missing}: {root} was deleted. Run 'datalad worktree-remove "
                f"-d {top} {root}' to prune what is left of it (it deletes "
                'its branches where that loses no commit; --keep-branch '
                'keeps them), then run this again')
    if wt.locked is not None:
        # git locks a worktree while creating it ('initializing'): a lock
        # left behind can mean an interrupted, incomplete checkout
        return (
            f'the worktree of {repo} at {target} is locked '
            f'({wt.locked or "no reason given"}): another run may still be '
            'creating it. If an interrupted run left it half made, check '
            'that it holds nothing of yours, then: '
            f"'git -C {repo} worktree unlock {target}', delete the "
            f"directory, 'git -C {repo} worktree prune', and run this again")
    if wt.short_branch == branch and wt.head:
        return None
    return (f'{target} is already a worktree of {repo}, on '
            f'{wt.short_branch or "a detached HEAD"} at '
            f'{(wt.head or "?")[:10]}, not on {branch or "a detached HEAD"} '
            'as asked')


def adjusted_problem(repo: Path) -> str | None:
    """Why the checkout in ``repo`` cannot take part: it is on an adjusted
    branch of git-annex (``git annex adjust``), whose commits are not the
    ones a parent dataset records; or None"""
    head = (git_dirs(repo)[0] / 'HEAD').read_text().strip()
    if not head.startswith('ref: refs/heads/adjusted/'):
        return None
    adjusted = head[len('ref: refs/heads/'):]
    original = adjusted[len('adjusted/'):].split('(', 1)[0]
    return (f'{repo} has the adjusted branch {adjusted} checked out (git '
            'annex adjust), which the worktree commands do not support: its '
            'commits are not the ones datasets record. Carry its commits to '
            f"{original} ('git annex sync --no-content --no-push "
            f"--no-pull'), check that out ('git checkout {original}'), then "
            'run this again')
