"""Carry out the planned removal of nested worktrees (see ``plan``)

``execute`` reports what the plan refuses and removes the rest.
Each dataset's worktree goes in an order that running the command again
after an interruption can finish: its directory (moved aside in one step),
then its branch, then its registration; inner worktrees before outer ones.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path
from typing import Iterator

from datalad_worktree.base.advice import command
from datalad_worktree.base.outcome import Outcome, Refusal, Result, failure
from datalad_worktree.base.paths import nested_within, redirected, same_path
from datalad_worktree.engine.progress import progress
from datalad_worktree.engine.remove.plan import TRASH, Plan, Removal, RemovalPlan
from datalad_worktree.engine.scheduler import run_ordered
from datalad_worktree.hierarchy.clones import delete_clone
from datalad_worktree.hierarchy.nested import Member, link_refusal
from datalad_worktree.repo.annex import has_own_annex, link_shared_annex
from datalad_worktree.repo.queries import short_log
from datalad_worktree.repo.store.refs import git_dirs, worktree_path
from datalad_worktree.repo.worktrees import (
    find_worktree,
    forget_worktree,
    list_worktrees,
    registration,
)
from datalad_worktree.runners import git, journal
from datalad_worktree.runners.locks import lock_wait, retry_on_lock

"""Where, in its own git directory, a worktree directory is moved to be
deleted (``git worktree prune`` deletes what an interruption left there)"""


def execute(plan: RemovalPlan, dry_run: bool) -> Iterator[Result]:
    """Carry out ``plan``: where it refuses the PATHs, report that and
    remove nothing; else, per worktree, report why it stays, or remove it
    (with ``dry_run``: report what would be removed)"""
    if plan.refused:
        yield from plan.refused
        return
    for target in plan.targets:
        if target.refused:
            yield from target.refused
        elif dry_run:
            for member in target.plans:
                yield Result(member.member.path, planned(member))
        else:
            yield from remove_all(list(target.plans))


def remove_all(plans: list[Plan]) -> Iterator[Result]:
    """Remove what ``plans`` plan, inner worktrees first; their results"""
    inside = nested_within(plans, lambda p: p.member.path)
    with progress('worktree-remove', len(plans)) as done:
        for plan, outcome, blocker in run_ordered(
                plans, inside.__getitem__, remove, 1,
                failed=lambda o: o.failed):
            done()
            if blocker:
                outcome = Outcome.refused(Refusal.BLOCKED, (
                    f'not removed, because {blocker.member.path} inside '
                    'it could not be removed'))
            yield Result(plan.member.path, outcome)


def planned(plan: Plan) -> Outcome:
    """The dry-run outcome of ``plan``"""
    return Outcome('ok', f'would {plan.how.value} {plan.member.path}'
                         f'{branch_note(plan, False)}'
                         f'{given_up_note(plan, False)}{gone_note(plan)}',
                   dict(plan.keys, dry_run=True,
                        stale=plan.how is Removal.PRUNE))


def gone_note(plan: Plan) -> str:
    """For a member whose directory is gone: how to re-link it instead,
    if it was moved, as the end of a message"""
    if plan.how is not Removal.PRUNE:
        return ''
    return ('; its directory is gone: if it was moved rather than deleted, '
            're-link it instead with '
            f'{command("worktree-repair", "NEWPATH", dataset=str(plan.member.main.path))}')


def branch_note(plan: Plan, done: bool) -> str:
    """What happens to the member's branch, as the end of a message"""
    m = plan.member
    if not m.branch or plan.how is Removal.DELETE_CLONE:
        return ''
    if not m.head:
        return f', branch {m.branch} was already gone'
    if plan.delete_branch:
        return f', {"deleted" if done else "delete"} branch {m.branch}'
    return f', {"kept" if done else "keep"} branch {m.branch}'


def given_up_note(plan: Plan, done: bool) -> str:
    """Which commits are given up with --force, as the end of a message"""
    if not plan.given_up:
        return ''
    return (f', {"gave" if done else "give"} up {len(plan.given_up)} '
            f'commit(s): {short_log(plan.member.main.path, plan.given_up)}')


def remove(plan: Plan) -> Outcome:
    """Remove one member: its directory, then its branch, then its
    registration

    In this order, a run that was interrupted at any point leaves the
    member registered (with its directory gone) until all else is done, so
    that running the command again finds it and finishes: the directory
    goes in one step, and a branch that is gone already is skipped.
    """
    m, keys = plan.member, plan.keys
    if plan.how is Removal.DELETE_CLONE:
        return remove_clone(m, keys)
    repo = m.main.path
    try:
        journal.enter(git_dirs(repo)[1])
        problem = no_longer_removable(m)
        if problem:
            return Outcome('error', problem, keys)
        if plan.how is Removal.REMOVE and has_own_annex(m.path):
            # nothing unique in it (see check): link it, so that nothing
            # git-annex made read-only is left for git to delete
            problem = link_shared_annex(m.path)
            if problem:
                return Outcome('error', problem, keys)
        admin = trash = None
        if plan.how is Removal.REMOVE:
            admin = git_dirs(m.path)[0]
            trash = delete_directory(m.path)
        if plan.delete_branch and m.head:
            # by full ref name and expected tip: exact, never an option;
            # changes nothing where another git holds packed-refs.lock
            retry_on_lock(lambda: git.run(repo, [
                'update-ref', '-d', f'refs/heads/{m.branch}', m.head]),
                lock_wait())
        if admin is None:
            # its directory is gone: this registration only, not every
            # one that a prune would take
            admin = registration(repo, m.path)
        if trash is not None and os.path.lexists(trash):
            # until here it says that this removal is ours (see
            # plan.check); a run killed while deleting it leaves the rest
            shutil.rmtree(trash)
        if admin is None:
            git.run(repo, ['worktree', 'prune'])
        else:
            forget_worktree(admin, repo)
    except Exception as e:
        return failure(m.path, e, f'removing {m.path} failed', keys)
    done = ('removed' if plan.how is Removal.REMOVE else
            'directory was already gone; pruned its registration')
    done += branch_note(plan, True) + given_up_note(plan, True)
    return Outcome('ok', done, keys)


def remove_clone(m: Member, keys: dict) -> Outcome:
    """Delete the member ``m``, a separate clone found to hold nothing
    that the main worktree lacks"""
    if redirected(m.root, m.relpath):
        return Outcome('error', link_refusal(m.path, m.root, m.relpath) +
                       '; it was left alone', keys)
    try:
        delete_clone(m.path, git_dirs(m.root)[0] / f'{TRASH}-clone')
    except Exception as e:
        return failure(m.path, e, f'deleting {m.path} failed', keys)
    return Outcome('ok', 'deleted this separate clone, which held nothing '
                   'that the main worktree lacks', keys)


def no_longer_removable(m: Member) -> str | None:
    """Why the member must be left alone after all, checked right before it
    is removed: it is no longer registered, or a symbolic link now leads
    elsewhere on its path"""
    repo = m.main.path
    if not still_registered(repo, m.path):
        return (f'{m.path} is no longer listed as a worktree of {repo}; it '
                'was left alone')
    if redirected(m.root, m.relpath):
        return link_refusal(m.path, m.root, m.relpath) + \
            '; it was left alone'
    return None


def still_registered(repo: Path, path: Path) -> bool:
    """Whether a linked worktree of ``repo`` is registered at ``path``:
    read from the one registration that ``path/.git`` names, where that is
    one of ``repo``'s (its ``gitdir`` file, also a relative one, see
    ``store.refs.worktree_path``), else from the list of all of its
    worktrees (which costs a look at each of them)"""
    try:
        admin, _ = git_dirs(path)
        recorded = worktree_path(admin)
    except OSError:
        recorded = None
    if recorded and admin.parent == git_dirs(repo)[1] / 'worktrees':
        return same_path(recorded, path)
    return find_worktree(list_worktrees(repo)[1:], path) is not None


def delete_directory(path: Path) -> Path | None:
    """Take the worktree directory ``path`` away so that an interruption
    leaves it complete or gone: it is moved, in one step, into its own git
    directory (``TRASH``), where it stays, as the sign that a run of ours
    is removing it, until the caller deletes it with the registration
    (which ``git worktree prune`` would delete with it as well); that
    place is returned. On another file system it is deleted where it is
    (None)."""
    trash = git_dirs(path)[0] / TRASH
    try:
        os.rename(path, trash)
    except OSError as e:
        if e.errno != errno.EXDEV:
            raise
        shutil.rmtree(path)
        return None
    return trash
