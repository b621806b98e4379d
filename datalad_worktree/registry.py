"""The worktree registry of a repository, and the lock files git leaves

``git worktree list`` is the one source of truth about which worktrees a
repository has; this module reads it, tells main from linked worktrees,
makes one worktree and links it to the shared annex, and reports the lock
files that an interrupted git leaves behind. Lock files that other git
processes hold for a moment (jobs of a cluster that make their worktrees
of the same repository at the same time) are waited for, for a bounded
time (``settings.lock_wait``), before they are reported.
"""

from __future__ import annotations

import os
import shutil
import random
import time
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
from .settings import lock_wait
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
    # only reads: tried again while another git is making a worktree
    listed = git.retry_on_lock(lambda: git.lines(
        repo, ['worktree', 'list', '--porcelain']), lock_wait())
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
    dotgit = (admin / 'gitdir').read_text().rstrip('\n') \
        if (admin / 'gitdir').is_file() else ''
    if admin.parent == git_dirs(repo)[1] / 'worktrees' and \
            os.path.isabs(dotgit) and not os.path.lexists(dotgit) and \
            not (admin / 'locked').exists():
        shutil.rmtree(admin)
    else:
        git.run(repo, ['worktree', 'prune'])


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
    """Why lock files that git holds in ``repo`` block changing it, or None

    git holds ``index.lock``, ``HEAD.lock`` and the lock of the branch
    checked out while it changes them, and a killed git leaves them.
    Whether a git command still runs cannot be known: they are waited for
    (see ``lingering``), never removed.
    """
    gitdir, _ = git_dirs(repo)
    locks = [gitdir / 'index.lock', gitdir / 'HEAD.lock']
    head = (gitdir / 'HEAD').read_text().strip()
    if head.startswith('ref: refs/heads/'):
        locks += _branch_lock_files(repo, head[len('ref: refs/heads/'):])
    return lock_message(repo, lingering(locks))


def branch_locks(repo: Path, branch: str, packed: bool = False
                 ) -> list[Path]:
    """The lock files of ``branch`` (with ``packed``: also of the packed
    refs, which deleting a branch needs) that git holds in ``repo`` and
    still holds after waiting for them (see ``lingering``)"""
    return lingering(_branch_lock_files(repo, branch, packed))


def _branch_lock_files(repo: Path, branch: str, packed: bool = False
                       ) -> list[Path]:
    _, common = git_dirs(repo)
    found = [common / 'refs' / 'heads' / f'{branch}.lock']
    return found + [common / 'packed-refs.lock'] if packed else found


def lingering(locks: list[Path]) -> list[Path]:
    """Those of the lock files ``locks`` that are there after waiting for
    them to go away, as they do when the git process that holds one ends

    A lock file is waited for until it is gone or has been there for
    ``settings.lock_wait()`` seconds (by its modification time: one that a
    git killed long ago left is reported at once), and never for longer
    than that in all; checked again after waits that grow from 0.05 s to
    1 s, jittered.
    """
    bound = lock_wait()
    deadline = time.monotonic() + bound
    delay = 0.05
    while True:
        present, young = [], False
        for lock in locks:
            try:
                age = time.time() - lock.lstat().st_mtime
            except FileNotFoundError:
                continue
            present.append(lock)
            young = young or age < bound
        if not young or time.monotonic() >= deadline:
            return present
        time.sleep(delay * random.uniform(0.5, 1.5))
        delay = min(1.0, delay * 2)


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

    Each git command is tried again while another git process is busy in
    the same repository (``git.retry_on_lock``), as when many jobs make
    worktrees of it at the same time. Where the worktree cannot be made,
    nothing of it is left: not a branch made for it, nor what git left of
    the worktree (see ``discard_half_made``).

    Where the commit holds no unlocked annexed file (in the cone) and
    git-annex's are the only hooks, git-annex has nothing to do in the
    checkout but make its links (its filter and post-checkout hook act on
    unlocked files only): the checkout then runs without them, and the
    links are made here, which saves most of the time a worktree takes."""
    wait = lock_wait()
    if branch is not None and (new_branch or moved_from):
        problem = place_branch(repo, branch, commit, moved_from, wait)
        if problem:
            return problem
    how = ['--detach', '--', str(target), commit] if branch is None else \
        ['--', str(target), branch]
    quick = annex and not may_hold_unlocked_files(repo, commit, cone=cone) \
        and annex_checkout_work_needless(repo)
    without_annex = ['-c', f'core.hooksPath={os.devnull}',
                     *git.NO_ANNEX_FILTER] if quick else []
    later = ['--no-checkout'] if cone is not None else []
    mount_point = target.is_dir()
    failed = 'git worktree add'
    try:
        # fails before it makes anything where another git is busy
        git.retry_on_lock(lambda: git.run(
            repo, [*without_annex, '-c', 'submodule.recurse=false',
                   'worktree', 'add', '--quiet', *later, *how]), wait)
        if cone is not None:
            failed = 'sparse checkout'
            # each of its git commands does no more when run again
            git.retry_on_lock(
                lambda: check_out_cone(target, cone, without_annex), wait)
    except CommandError as e:
        left = discard_half_made(repo, target, mount_point)
        if new_branch:
            left += discard_branch(repo, branch, commit, wait)
        return f'{failed} failed: {git.error_line(e)}{left}'
    problem = link_like_annex(target) if quick else None
    return problem or (repair_annex_link(target) if annex else None)


def place_branch(repo: Path, branch: str, commit: str, moved_from: str,
                 wait: float) -> str | None:
    """Create ``branch`` at ``commit`` where it does not exist, or, with
    ``moved_from``, move it from there to ``commit``, only if it is still
    there; why that failed, or None. One ``git update-ref`` with the
    value expected before, which changes nothing when it fails, and so is
    tried again while another git process holds a lock it needs"""
    what = 'moving' if moved_from else 'creating'
    try:
        git.retry_on_lock(lambda: git.run(repo, [
            'update-ref', '-m', f'worktree-add: {what} branch',
            f'refs/heads/{branch}', commit, moved_from]), wait)
    except CommandError as e:
        return f'{what} branch {branch} failed: {git.error_line(e)}'
    return None


def discard_branch(repo: Path, branch: str, commit: str, wait: float
                   ) -> str:
    """Delete ``branch``, made at ``commit`` for a worktree that could not
    be made, only where it is still there (``git update-ref -d`` with the
    value expected, which changes nothing when it fails, and so is tried
    again while another git holds a lock); a note where it was left, or
    ''"""
    try:
        git.retry_on_lock(lambda: git.run(repo, [
            'update-ref', '-d', f'refs/heads/{branch}', commit]), wait)
    except CommandError as e:
        return (f'; the branch {branch} made for it was left: '
                f'{git.error_line(e)}')
    return ''


def discard_half_made(repo: Path, target: Path, mount_point: bool) -> str:
    """Remove what a ``git worktree add`` that failed left at ``target``:
    its registration and directory, where the directory holds no file that
    git did not check out (git removes both itself when its checkout
    fails, but not where it was killed or a hook failed after the
    checkout); the empty directory ``target`` is put back where it was one
    before (``mount_point``). A note where something was left, or ''"""
    note = ''
    if find_worktree(list_worktrees(repo), target) is not None:
        note = _remove_unused(repo, target)
    if mount_point and not note:
        target.mkdir(exist_ok=True)
    return note


def _remove_unused(repo: Path, target: Path) -> str:
    """Remove the linked worktree ``target`` of ``repo`` with ``git
    worktree remove``, where it holds no untracked or ignored file; a note
    where it was left, or ''. Where git-annex made its ``.git`` a link to
    the git directory, which ``git worktree remove`` refuses, the file git
    wrote there is put back first."""
    try:
        status = git.entries(target, [
            *git.NO_ANNEX_FILTER, 'status', '--porcelain', '-z', '--ignored',
            '--untracked-files=all', '--ignore-submodules=all'])
        if any(e.startswith(('??', '!!')) for e in status):
            return (f'; it left {target} registered, with files that it '
                    'did not check out, which were kept')
        dotgit = target / '.git'
        if dotgit.is_symlink():
            gitdir = git_dirs(target)[0]
            dotgit.unlink()
            dotgit.write_text(f'gitdir: {gitdir}\n')
        git.run(repo, ['worktree', 'remove', '--force', '--force', '--',
                       str(target)])
    except CommandError as e:
        return f'; what it left at {target} stays: {git.error_line(e)}'
    return ''


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
