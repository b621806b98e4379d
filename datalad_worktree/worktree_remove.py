"""Remove a nested worktree, with git's safety rules"""

from __future__ import annotations

import errno
import os
import shutil
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from datalad_next.commands import (
    EnsureCommandParameterization,
    Parameter,
    build_doc,
    datasetmethod,
    eval_results,
)
from datalad_next.constraints import (
    EnsureBool,
    EnsureDataset,
    EnsurePath,
)

from . import git
from .clones import (
    clone_refusal,
    delete_clone,
    unique_holdings,
)
from .gitfiles import git_dirs
from .interface import (
    WorktreeInterface,
    bars_for_people,
    make_result,
)
from .outcome import (
    Outcome,
    failure,
)
from .nested import (
    Member,
    find_members,
    link_refusal,
)
from .paths import (
    absolute_path,
    nested_within,
    redirected,
    same_path,
)
from .registry import (
    branch_locks,
    find_worktree,
    list_worktrees,
    lock_message,
)
from .repo import (
    commits_only_in,
    short_log,
    has_own_annex,
    worktree_changes,
)
from .scheduler import (
    progress,
    run_ordered,
)
from .settings import lock_wait
from .sharedannex import (
    link_shared_annex,
    own_annex_problem,
)

ACTION = 'worktree-remove'
TRASH = 'worktree-remove-trash'
"""Where, in its own git directory, a worktree directory is moved to be
deleted (``git worktree prune`` deletes what an interruption left there)"""


class Removal(Enum):
    """How a member's worktree goes"""
    REMOVE = 'remove'
    """Delete its directory, then prune its registration"""
    DELETE_CLONE = 'delete the separate clone'
    """A separate clone holding nothing the main worktree lacks: delete it"""
    PRUNE = 'prune the registration of'
    """Its directory is gone already: only prune its registration"""
    REFUSE = 'refuse'
    """It must stay: nothing is removed"""


@dataclass(frozen=True)
class Plan:
    """What removing one member does, decided before anything is removed"""
    member: Member
    how: Removal
    delete_branch: bool = False
    given_up: tuple[str, ...] = ()
    """Commits given up with --force"""
    reason: str = ''
    """Why it is refused"""

    @property
    def keys(self) -> dict:
        """The result keys of this member"""
        keys = dict(branch=self.member.branch,
                    branch_deleted=self.delete_branch)
        if self.given_up:
            keys['given_up'] = list(self.given_up)
        return keys


@build_doc
class WorktreeRemove(WorktreeInterface):
    """Remove a nested worktree: subdatasets first, then their parents

    PATH is a linked worktree of DATASET, normally one made by
    ``worktree-add``. The worktrees of the subdatasets inside it are removed
    first, deepest first, then their parents; each dataset's registration is
    pruned, and its branch is deleted unless [CMD: --keep-branch CMD][PY:
    keep_branch=True PY] is given.

    Nothing is removed in any dataset if any of them has uncommitted
    changes, untracked files that are not ignored, or commits that would be
    lost: commits that neither the main worktree's HEAD nor another branch
    contains (with [CMD: --keep-branch CMD][PY: keep_branch=True PY], the
    worktree's own branch counts as keeping them). [CMD: --force CMD][PY:
    force=True PY] lifts only that last refusal, and the result names the
    commits given up; uncommitted changes always block removal, so commit or
    discard them by hand. Ignored files, such as a ``.venv``, do not block
    removal and are removed with the worktree. A locked worktree (``git
    worktree lock``) is refused with its lock reason, and one whose
    directory was deleted by hand is pruned.

    Nothing is removed either if a symbolic link on the way to a
    subdataset's place in the worktree leads elsewhere: nothing is ever
    deleted or followed through one; nor, also with [CMD: --force CMD][PY:
    force=True PY], if a separate clone sits where a subdataset belongs
    (from a ``datalad get -n`` in the worktree) and holds commits, annexed
    content, uncommitted changes or untracked files that the main
    worktree's copy lacks: the message says how to bring them home. A
    separate clone that holds nothing of that is deleted with the worktree.

    Annexed content is never dropped: it lives in the shared annex and stays
    readable from the main worktree. Only directories that git lists as
    linked worktrees of the hierarchy are removed, never a main worktree.
    Each dataset's directory goes first, then its branch, then its
    registration, so running the command again after an interruption
    finishes the removal.

    One result is reported per dataset with ``action='worktree-remove'``,
    ``path`` (the worktree), ``branch``, ``branch_deleted``, and
    ``given_up`` (commits given up with --force).
    """

    _params_ = dict(
        path=Parameter(
            args=('path',),
            metavar='PATH',
            doc="""the linked worktree to remove, with everything nested in
            it."""),
        dataset=Parameter(
            args=('-d', '--dataset'),
            metavar='DATASET',
            doc="""dataset that PATH is a worktree of. If not given, the
            dataset that contains the current directory."""),
        force=Parameter(
            args=('--force',),
            action='store_true',
            doc="""remove also where commits would be lost (they are named
            in the result). Uncommitted changes still block removal."""),
        keep_branch=Parameter(
            args=('--keep-branch',),
            action='store_true',
            doc="""keep each worktree's branch instead of deleting it."""),
        dry_run=Parameter(
            args=('--dry-run',),
            action='store_true',
            doc="""check everything and report what would be removed, but
            remove nothing."""),
    )

    _validator_ = EnsureCommandParameterization(
        dict(
            path=EnsurePath(),
            dataset=EnsureDataset(installed=True,
                                  purpose='remove a worktree of it'),
            force=EnsureBool(),
            keep_branch=EnsureBool(),
            dry_run=EnsureBool(),
        ),
        validate_defaults=('dataset',),
    )

    _examples_ = [
        dict(text="Remove the nested worktree '../runs' after merging it",
             code_py="worktree_remove('../runs')",
             code_cmd="datalad worktree-remove ../runs"),
        dict(text="Remove it but keep its branches",
             code_py="worktree_remove('../runs', keep_branch=True)",
             code_cmd="datalad worktree-remove --keep-branch ../runs"),
    ]

    @staticmethod
    @datasetmethod(name='worktree_remove')
    @bars_for_people
    @eval_results
    def __call__(path, *, dataset=None, force=False, keep_branch=False,
                 dry_run=False):
        top = dataset.ds.pathobj
        target = absolute_path(path, dataset)
        problem = git.tools_problem(annex=False) or \
            target_problem(top, target)
        if problem:
            yield make_result(ACTION, target, top,
                              Outcome('impossible', problem))
            return
        try:
            members, linked = find_members(top, target)
            plans = [check(m, force, keep_branch, top) for m in members]
        except Exception as e:
            outcome = failure(target, e, 'cannot inspect the worktrees below '
                                         f'{target}')
            outcome.message += '; nothing was removed'
            yield make_result(ACTION, target, top, outcome)
            return
        refused = [(Path(p), Outcome('impossible', why))
                   for p, why in linked.items()]
        refused += [(p.member.path, Outcome('impossible', p.reason, p.keys))
                    for p in plans if p.how is Removal.REFUSE]
        if refused:
            for where, outcome in refused:
                outcome.message += '; nothing was removed'
                yield make_result(ACTION, where, top, outcome)
            return
        if dry_run:
            for plan in plans:
                yield make_result(ACTION, plan.member.path, top,
                                  planned(plan))
            return

        inside = nested_within(plans, lambda p: p.member.path)
        with progress(ACTION, len(plans)) as done:
            for plan, outcome, blocker in run_ordered(
                    plans, inside.__getitem__, remove, 1,
                    failed=lambda o: o.failed):
                done()
                if blocker:
                    outcome = Outcome('impossible', (
                        f'not removed, because {blocker.member.path} inside '
                        'it could not be removed'))
                yield make_result(ACTION, plan.member.path, top, outcome)


def target_problem(top: Path, target: Path) -> str | None:
    """Why ``target`` is not a linked worktree of ``top`` to remove"""
    worktrees = list_worktrees(top)
    if same_path(worktrees[0].path, target):
        return f'{target} is the main worktree of {top}; it is never removed'
    if not find_worktree(worktrees[1:], target):
        linked = ', '.join(str(w.path) for w in worktrees[1:]) or 'none'
        return (f'{target} is not a linked worktree of {top} (its linked '
                f'worktrees: {linked}); nothing was removed')
    return None


def check(m: Member, force: bool, keep_branch: bool, top: Path) -> Plan:
    """What removing one member (of a worktree of ``top``) would do, or
    why it must not happen: every reason at once"""
    if same_path(m.main.path, m.path):
        return check_clone(m, top / m.relpath)
    problems = []
    if m.entry.locked is not None:
        reason = f' ({m.entry.locked})' if m.entry.locked else ''
        problems.append(f'{m.path} is locked{reason}; unlock it with '
                        f"'git -C {m.main.path} worktree unlock {m.path}' "
                        'first')
    stale = m.entry.prunable or not m.path.is_dir()
    if not stale:
        problems += local_files_problems(m.path)
    delete = bool(m.branch) and not keep_branch
    if delete:
        problems += filter(None, [branch_lock_problem(m)])
    lost = []
    if m.head and m.main.head and m.head != m.main.head:
        lost = commits_only_in(m.main.path, m.head, [m.main.head],
                               None if keep_branch else m.branch)
    if lost and not force:
        problems.append(
            f'{m.path} has {len(lost)} commit(s) that neither the main '
            'worktree nor another branch contains '
            f'({short_log(m.main.path, lost)}); merge them first '
            '(datalad worktree-merge), keep the branch (--keep-branch), or '
            'give --force to give them up')
    if problems:
        return Plan(m, Removal.REFUSE, reason='; '.join(problems))
    return Plan(m, Removal.PRUNE if stale else Removal.REMOVE, delete,
                tuple(lost))


def check_clone(m: Member, main_copy: Path) -> Plan:
    """What removing a member that is a separate clone would do: delete
    it, where it holds nothing that ``main_copy`` lacks, else refuse"""
    holdings = unique_holdings(m.path, main_copy)
    if holdings:
        return Plan(m, Removal.REFUSE, reason=clone_refusal(
            m.path, main_copy, holdings,
            'run this again'))
    return Plan(m, Removal.DELETE_CLONE)


def planned(plan: Plan) -> Outcome:
    """The dry-run outcome of ``plan``"""
    return Outcome('ok', f'would {plan.how.value} {plan.member.path}'
                         f'{branch_note(plan, False)}'
                         f'{given_up_note(plan, False)}',
                   dict(plan.keys, dry_run=True,
                        stale=plan.how is Removal.PRUNE))


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


def branch_lock_problem(m: Member) -> str | None:
    """Why lock files that a killed git left keep the member's branch from
    being deleted, or None"""
    return lock_message(m.main.path,
                        branch_locks(m.main.path, m.branch, packed=True))


def local_files_problems(path: Path) -> list[str]:
    """Why files in the worktree at ``path`` would be lost by removing it"""
    changed, untracked = worktree_changes(path)
    problems = []
    if changed:
        problems.append(f'uncommitted changes in {path}: '
                        f'{", ".join(changed)}; commit or discard them by '
                        'hand first')
    if untracked:
        problems.append(f'untracked files in {path}: {", ".join(untracked)}'
                        '; save, move or delete them first (ignored files '
                        'do not block)')
    return problems + list(filter(None, [own_annex_problem(path)]))


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
        problem = no_longer_removable(m)
        if problem:
            return Outcome('error', problem, keys)
        if plan.how is Removal.REMOVE and has_own_annex(m.path):
            # nothing unique in it (see check): link it, so that nothing
            # git-annex made read-only is left for git to delete
            problem = link_shared_annex(m.path)
            if problem:
                return Outcome('error', problem, keys)
        if plan.how is Removal.REMOVE:
            delete_directory(m.path)
        if plan.delete_branch and m.head:
            # by full ref name and expected tip: exact, never an option;
            # changes nothing where another git holds packed-refs.lock
            git.retry_on_lock(lambda: git.run(repo, [
                'update-ref', '-d', f'refs/heads/{m.branch}', m.head]),
                lock_wait())
        git.run(repo, ['worktree', 'prune'])
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
    if not find_worktree(list_worktrees(repo)[1:], m.path):
        return (f'{m.path} is no longer listed as a worktree of {repo}; it '
                'was left alone')
    if redirected(m.root, m.relpath):
        return link_refusal(m.path, m.root, m.relpath) + \
            '; it was left alone'
    return None


def delete_directory(path: Path) -> None:
    """Delete the worktree directory ``path`` so that an interruption
    leaves it complete or gone: it is first moved, in one step, into its
    own git directory, which ``git worktree prune`` deletes with whatever
    is left there (on another file system, it is deleted where it is)"""
    trash = git_dirs(path)[0] / TRASH
    try:
        os.rename(path, trash)
    except OSError as e:
        if e.errno != errno.EXDEV:
            raise
        trash = path
    shutil.rmtree(trash)
