"""Remove a nested worktree, with git's safety rules"""

from __future__ import annotations

import errno
import os
import shutil
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
    EnsureListOf,
    EnsurePath,
)

from . import git
from .clones import delete_clone
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
    find_worktree,
    forget_worktree,
    list_worktrees,
)
from .removal import (
    Plan,
    Removal,
    check,
    read_targets,
)
from .repo import (
    has_own_annex,
    short_log,
)
from .scheduler import (
    progress,
    run_ordered,
)
from .settings import lock_wait
from .sharedannex import link_shared_annex

ACTION = 'worktree-remove'
TRASH = 'worktree-remove-trash'
"""Where, in its own git directory, a worktree directory is moved to be
deleted (``git worktree prune`` deletes what an interruption left there)"""


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

    Several PATHs, or a pattern (``fnmatch``, matched against the paths of
    DATASET's linked worktrees, such as ``'../jobs/job-*'``; an existing
    path wins), remove several worktrees: all of them are checked before
    any is removed. A PATH that names no linked worktree (or the main
    worktree) refuses the whole command. Each worktree is then decided on
    its own: one that is refused is named, with nothing of it removed,
    and the others are removed, so that one job's unmerged work does not
    hold up the cleanup of all the others.

    One result is reported per dataset with ``action='worktree-remove'``,
    ``path`` (the worktree), ``branch``, ``branch_deleted``, and
    ``given_up`` (commits given up with --force).
    """

    _params_ = dict(
        path=Parameter(
            args=('path',),
            metavar='PATH',
            nargs='+',
            doc="""the linked worktree to remove, with everything nested in
            it; several, or a pattern (``'../jobs/job-*'``) matched against the
            paths of DATASET's linked worktrees.[PY:  A path or a list.
            PY]"""),
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
            path=EnsurePath() | EnsureListOf(EnsurePath(), min_len=1),
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
        dict(text="Remove all job worktrees below '../jobs'",
             code_py="worktree_remove('../jobs/job-*')",
             code_cmd="datalad worktree-remove '../jobs/job-*'"),
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
        given = [path] if isinstance(path, (str, Path)) else list(path)
        place = lambda text: absolute_path(Path(text), dataset)  # noqa: E731
        problem = git.tools_problem(annex=False)
        if problem:
            yield make_result(ACTION, place(str(given[0])), top,
                              Outcome('impossible', problem))
            return
        targets, problems = read_targets(top, [str(p) for p in given], place)
        if problems:
            for where, problem in problems:
                yield make_result(ACTION, where, top,
                                  Outcome('impossible', problem))
            return
        listed: dict = {}
        checked = [inspect(top, t, force, keep_branch, listed)
                   for t in targets]
        for refused, plans in checked:
            yield from refused
            if refused:
                continue
            if dry_run:
                for plan in plans:
                    yield make_result(ACTION, plan.member.path, top,
                                      planned(plan))
                continue
            yield from remove_all(top, plans)


def inspect(top: Path, target: Path, force: bool, keep_branch: bool,
            listed: dict) -> tuple[list[dict], list[Plan]]:
    """The plans of removing the worktree ``target`` of ``top``, or the
    results that refuse it (then nothing of it is removed); ``listed``:
    see ``nested.find_members``"""
    try:
        members, linked = find_members(top, target, listed)
        plans = [check(m, force, keep_branch, top) for m in members]
    except Exception as e:
        outcome = failure(target, e, 'cannot inspect the worktrees below '
                                     f'{target}')
        outcome.message += '; nothing was removed'
        return [make_result(ACTION, target, top, outcome)], []
    refused = [(Path(p), Outcome('impossible', why))
               for p, why in linked.items()]
    refused += [(p.member.path, Outcome('impossible', p.reason, p.keys))
                for p in plans if p.how is Removal.REFUSE]
    for _, outcome in refused:
        outcome.message += '; nothing was removed'
    return [make_result(ACTION, where, top, outcome)
            for where, outcome in refused], plans


def remove_all(top: Path, plans: list[Plan]):
    """Remove what ``plans`` plan, inner worktrees first; their results"""
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
        admin = None
        if plan.how is Removal.REMOVE:
            admin = git_dirs(m.path)[0]
            delete_directory(m.path)
        if plan.delete_branch and m.head:
            # by full ref name and expected tip: exact, never an option;
            # changes nothing where another git holds packed-refs.lock
            git.retry_on_lock(lambda: git.run(repo, [
                'update-ref', '-d', f'refs/heads/{m.branch}', m.head]),
                lock_wait())
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
    one of ``repo``'s, else from the list of all of its worktrees (which
    costs a look at each of them)"""
    try:
        admin, common = git_dirs(path)
        recorded = (admin / 'gitdir').read_text().rstrip('\n')
    except OSError:
        recorded = None
    if recorded is not None and admin.parent == git_dirs(repo)[1] / \
            'worktrees':
        return same_path(Path(recorded).parent, path)
    return find_worktree(list_worktrees(repo)[1:], path) is not None


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
