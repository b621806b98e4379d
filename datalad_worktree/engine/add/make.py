"""Make the planned linked worktrees (the second half of ``worktree-add``)

``make_worktrees`` carries out what ``plan.plan_add`` decided: nothing
where it refused anything, else each worktree to make, then the container
bind paths and setup commands of the new worktrees. Each worktree is made by ``git worktree add`` (sparse where planned), on a
branch placed for it or detached, and linked to the shared annex; parents
are made before their subdatasets. Where making one fails, nothing of it
is left: not its registration, its directory or a branch made for it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

from datalad_next.exceptions import CapturedException
from datalad_next.runners import CommandError

from datalad_worktree.base.outcome import (
    Outcome,
    Result,
    error_line,
    failure,
)
from datalad_worktree.base.paths import redirected
from datalad_worktree.engine.add.plan import (
    AddPlan,
    Plan,
    Todo,
    checkout_phrase,
)
from datalad_worktree.engine.progress import progress
from datalad_worktree.engine.scheduler import run_ordered
from datalad_worktree.environment.bindpaths import ACTION as BINDPATHS_ACTION
from datalad_worktree.environment.bindpaths import bind_hierarchy
from datalad_worktree.environment.made_from import record_made_from
from datalad_worktree.environment.mtimes import carrying
from datalad_worktree.environment.setup_command import ACTION as SETUP_ACTION
from datalad_worktree.environment.setup_command import setup_outcome
from datalad_worktree.repo.annex import (
    annex_checkout_work_needless,
    link_like_annex,
    repair_annex_link,
    repair_own_annex,
)
from datalad_worktree.repo.links import make_gitfile_relative
from datalad_worktree.repo.records import may_hold_unlocked_files
from datalad_worktree.repo.sparse_checkout import Cone, check_out_cone
from datalad_worktree.repo.store.refs import git_dirs
from datalad_worktree.repo.worktrees import find_worktree, list_worktrees
from datalad_worktree.runners import git, journal
from datalad_worktree.runners.locks import lock_wait, retry_on_lock


def make_worktrees(plan: AddPlan, dry_run: bool, workers: int,
                   mtimes: bool, setup: bool | None, bindpaths: bool
                   ) -> Iterator[Result]:
    """Carry out ``plan``: where it refuses anything, report that and make
    nothing; else report what exists already or is left out, and make
    the rest (with ``dry_run``: report what would be made), ``workers``
    at the same time; then configure container bind paths (with
    ``bindpaths``) and run setup commands (see ``setup_command``,
    ``setup``) in the new worktrees"""
    if plan.refusal is not None:
        yield Result(plan.target, plan.refusal)
        return
    plans = list(plan.plans)
    refused = [p for p in plans if p.todo is Todo.REFUSE]
    for p in refused or plans:
        if p.todo is not Todo.CREATE:
            yield Result(p.target, p.outcome(
                'impossible' if refused else 'notneeded', p.reason))
        elif dry_run:
            yield Result(p.target, p.outcome(
                'ok', f'would {checkout_phrase(p)}', dry_run=True))
    if refused or dry_run:
        return
    created = []
    for made, error in create_worktrees(plans, workers, mtimes):
        if error is None:
            created.append(made)
        yield Result(made.target, made.reported(error) if error is not None
                     else
                     made.outcome('ok', checkout_phrase(made, done=True)
                                  + plan.left_out))
    if bindpaths:
        for bound, outcome in bind_outcomes(plans, created):
            yield Result(bound.target, outcome, BINDPATHS_ACTION)
    # set up environments once the whole hierarchy is there
    for made in sorted(created, key=plans.index):
        outcome = setup_outcome(made.target, setup, lambda s: True)
        if outcome:
            yield Result(made.target, outcome, SETUP_ACTION)


def bind_outcomes(plans: list[Plan], created: list[Plan]
                  ) -> Iterator[tuple[Plan, Outcome]]:
    """Configure container bind paths in the worktrees that are there now
    (see ``bindpaths.bind_hierarchy``)"""
    present = {p.node.relpath: p for p in plans
               if p in created or p.todo is Todo.EXISTS}
    for relpath, outcome in bind_hierarchy(
            {rel: p.target for rel, p in present.items()}):
        yield present[relpath], outcome


def create_worktrees(plans: list[Plan], workers: int, mtimes: bool = True
                     ) -> Iterator[tuple[Plan, Outcome | None]]:
    """Create the planned worktrees, each parent before its children, up
    to ``workers`` at the same time; yields each plan to create, and each
    existing worktree whose annex link failed to be repaired, with the
    'error' outcome of that (with the exception, where one was raised), or
    None. When a parent fails, its subdatasets are not attempted. With
    ``mtimes``, modification times are carried into each new worktree."""
    wanted = [p for p in plans if p.todo in (Todo.CREATE, Todo.EXISTS)]
    by_path = {p.node.relpath: p for p in wanted}

    def parent(plan):
        return [by_path[plan.node.parent]] if plan.node.depth else []

    def guarded_create(plan):
        try:
            return create(plan, carry)
        except Exception as e:
            return failure(plan.target, e)

    with carrying(mtimes, workers) as carry, progress(
            'creating worktrees', len(wanted)) as done:
        for plan, error, blocker in run_ordered(
                wanted, parent, guarded_create, workers,
                failed=lambda error: error is not None):
            done()
            if blocker:
                error = Outcome('error', (
                    f'not created: the worktree of {blocker.target} could '
                    'not be created'))
            if plan.todo is Todo.CREATE or (error is not None and
                                            not blocker):
                yield plan, error


def create(plan: Plan, carry=None) -> Outcome | None:
    """Make one planned worktree and hand it to ``carry`` (see
    ``mtimes.carrying``), or repair an existing one's annex; the 'error'
    outcome where that failed, or None"""
    if plan.todo is Todo.EXISTS:
        problem = repair_own_annex(plan.target) if plan.annex else None
        return Outcome('error', problem) if problem else None
    node, target = plan.node, plan.target
    if redirected(plan.root, node.relpath):
        return Outcome('error', f'refusing {target}: a symbolic link on its '
                                'path leads elsewhere')
    # asked once: for the checkout, and for carrying times (a worktree
    # without unlocked files needs no check of its files for pointers)
    unlocked = plan.annex and may_hold_unlocked_files(node.path, node.commit,
                                                      cone=plan.cone)
    error = add_worktree(node.path, target, node.commit, plan.branch,
                         plan.new_branch, plan.annex, plan.moved_from,
                         plan.cone, unlocked)
    if error is None and plan.made_from is not None:
        problem = record_made_from(target, plan.made_from, node.commit)
        if problem:
            return Outcome('error', f'{problem}; which state it was made '
                                    'from was not kept')
    if error is None and carry:
        carry(node.path, target, node.commit, unlocked, plan.cone)
    return error


def add_worktree(repo: Path, target: Path, commit: str, branch: str | None,
                 new_branch: bool, annex: bool, moved_from: str = '',
                 cone: Cone | None = None, unlocked: bool | None = None
                 ) -> Outcome | None:
    """Make a linked worktree of ``repo`` at ``target``: ``branch`` (made
    at ``commit`` with ``new_branch``; moved from ``moved_from`` to
    ``commit`` first, where given, only if it is still there), or a
    detached HEAD at ``commit`` where ``branch`` is None; the 'error'
    outcome where that failed (with git's error), or None. With ``annex`` (the repository uses git-annex), the worktree
    must come out linked to the shared annex. With ``cone``, it is a
    sparse checkout of those directories (see ``sparse``).

    Each git command is tried again while another git process is busy in
    the same repository (``retry_on_lock``), as when many jobs make
    worktrees of it at the same time. Where the worktree cannot be made,
    nothing of it is left: not a branch made for it, nor what git left of
    the worktree (see ``discard_half_made``).

    Where the commit holds no unlocked annexed file (in the cone) and
    git-annex's are the only hooks, git-annex has nothing to do in the
    checkout but make its links (its filter and post-checkout hook act on
    unlocked files only): the checkout then runs without them, and the
    links are made here, which saves most of the time a worktree takes.
    ``unlocked`` is whether the commit may hold an unlocked file (in the
    cone), where the caller asked already (``may_hold_unlocked_files``),
    at any number of files."""
    wait = lock_wait()
    common = git_dirs(repo)[1]
    # journaled before the first change, for a later run to clean up
    # after this one, should it die (see ``engine.recover``)
    entry = journal.note(common, kind='worktree', repo=str(repo),
                         target=str(target),
                         branch=branch, new_branch=new_branch,
                         commit=commit, mount_point=target.is_dir())
    if branch is not None and (new_branch or moved_from):
        error = place_branch(repo, branch, commit, moved_from, wait)
        if error:
            journal.done(common, entry)
            return error
    how = ['--detach', '--', str(target), commit] if branch is None else \
        ['--', str(target), branch]
    if unlocked is None and annex:
        unlocked = may_hold_unlocked_files(repo, commit, cone=cone)
    quick = annex and not unlocked and annex_checkout_work_needless(repo)
    without_annex = ['-c', f'core.hooksPath={os.devnull}',
                     *git.NO_ANNEX_FILTER] if quick else []
    later = ['--no-checkout'] if cone is not None else []
    mount_point = target.is_dir()
    failed = 'git worktree add'
    try:
        # fails before it makes anything where another git is busy
        retry_on_lock(lambda: git.run(
            repo, [*without_annex, '-c', 'submodule.recurse=false',
                   'worktree', 'add', '--quiet', *later, *how]), wait)
        if cone is not None:
            failed = 'sparse checkout'
            # each of its git commands does no more when run again
            retry_on_lock(
                lambda: check_out_cone(target, cone, without_annex), wait)
    except CommandError as e:
        left = discard_half_made(repo, target, mount_point)
        if new_branch:
            left += discard_branch(repo, branch, commit, wait)
        journal.done(common, entry)
        return Outcome('error', f'{failed} failed: {error_line(e)}{left}',
                       dict(exception=CapturedException(e)))
    problem = link_like_annex(target) if quick else None
    problem = problem or (repair_annex_link(target) if annex else None)
    if problem:
        return Outcome('error', problem)
    if not annex:
        # git-annex's link is relative already: both survive moving the
        # main dataset and its worktrees together
        make_gitfile_relative(target, repo)
    journal.done(common, entry)
    return None


def place_branch(repo: Path, branch: str, commit: str, moved_from: str,
                 wait: float) -> Outcome | None:
    """Create ``branch`` at ``commit`` where it does not exist, or, with
    ``moved_from``, move it from there to ``commit``, only if it is still
    there; the 'error' outcome where that failed, or None. One ``git update-ref`` with the
    value expected before, which changes nothing when it fails, and so is
    tried again while another git process holds a lock it needs"""
    what = 'moving' if moved_from else 'creating'
    try:
        retry_on_lock(lambda: git.run(repo, [
            'update-ref', '-m', f'worktree-add: {what} branch',
            f'refs/heads/{branch}', commit, moved_from]), wait)
    except CommandError as e:
        return Outcome('error', f'{what} branch {branch} failed: '
                                f'{error_line(e)}',
                       dict(exception=CapturedException(e)))
    return None


def discard_branch(repo: Path, branch: str, commit: str, wait: float
                   ) -> str:
    """Delete ``branch``, made at ``commit`` for a worktree that could not
    be made, only where it is still there (``git update-ref -d`` with the
    value expected, which changes nothing when it fails, and so is tried
    again while another git holds a lock); a note where it was left, or
    '' (also where it was never made: a run killed before it made it)"""
    try:
        retry_on_lock(lambda: git.run(repo, [
            'update-ref', '-d', f'refs/heads/{branch}', commit]), wait)
    except CommandError as e:
        try:
            git.run(repo, ['rev-parse', '--verify', '--quiet',
                           f'refs/heads/{branch}'])
        except CommandError:
            return ''  # not there: nothing was left
        return (f'; the branch {branch} made for it was left: '
                f'{error_line(e)}')
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
        return f'; what it left at {target} stays: {error_line(e)}'
    return ''
