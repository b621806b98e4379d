"""Bring a linked worktree of a hierarchy to its development state

The engine of ``worktree-sync`` (``sync_hierarchy``): subdatasets before
their parents, each dataset's checkout is moved to what its
main worktree has checked out (see ``integrate``, or a reset), a stale
checkout is repaired first (see ``stale``), the subdatasets' new commits
are recorded, modification times are carried, and setup commands whose
inputs changed run again.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import (
    Any,
    Callable,
    Iterator,
    Mapping,
)

from datalad_worktree.base.advice import option
from datalad_worktree.base.outcome import Outcome, Refusal, Result
from datalad_worktree.engine.integrate import (
    integrate,
    local_work_problem,
    record_pointers,
    staged_kept,
)
from datalad_worktree.engine.missing_subdatasets import Provider
from datalad_worktree.engine.recover import recover
from datalad_worktree.engine.scheduler import bottom_up, split_hierarchy
from datalad_worktree.engine.stale import inspect_checkout, update_stale_checkout
from datalad_worktree.environment.mtimes import carry_from
from datalad_worktree.environment.setup_command import ACTION as SETUP_ACTION
from datalad_worktree.environment.setup_command import inputs_changed, setup_outcome
from datalad_worktree.hierarchy.clones import is_separate_clone, replace_advice
from datalad_worktree.hierarchy.walk import (
    Node,
    children_of,
    subdataset_pointers,
    walk_hierarchy,
)
from datalad_worktree.repo.annex import repair_own_annex
from datalad_worktree.repo.queries import (
    adjusted_problem,
    commits_only_in,
    current_branch,
    head_commit,
    is_ancestor,
    is_repo_root,
)
from datalad_worktree.repo.store.refs import git_dirs
from datalad_worktree.repo.worktrees import linked_worktree_problem, list_worktrees
from datalad_worktree.runners import git, journal
from datalad_worktree.runners.locks import lock_problem

POINTER_MESSAGE = 'Record the subdatasets updated by worktree-sync'


def sync_hierarchy(top: Path, depth: int | None, how: str, force: bool,
                   dry_run: bool, mtimes: bool, setup: bool | None,
                   workers: int) -> Iterator[Result | dict]:
    """Bring the datasets of the linked worktree ``top``, down to
    ``depth`` levels (None: all), to their development state as ``how``
    says, subdatasets first, ``workers`` at the same time; subdatasets the
    worktree lacks but its main worktree has get worktrees (results of
    'worktree-add', and the records of DataLad's ``get`` where one runs),
    and setup commands whose inputs changed run again"""
    problem = linked_worktree_problem(top)
    if problem:
        yield Result(top, Outcome.refused(Refusal.NOT_A_LINKED_WORKTREE,
                                          problem))
        return
    skipped, active = split_hierarchy(
        walk_hierarchy(top, head_commit(top), depth))
    new = Provider(top, dry_run, mtimes, setup)

    def below(node):
        return None if depth is None else depth - node.depth

    yield from new.add([n for n in skipped if not n.problem], below)
    if new.created:
        skipped, active = split_hierarchy(
            walk_hierarchy(top, head_commit(top), depth))
    for node in skipped:
        if node.problem:
            yield Result(node.path, node.problem.outcome())
    children = children_of(active)
    synced = []
    for node, outcome in bottom_up(
            active,
            lambda n: sync_dataset(n, children[n.relpath], how, force,
                                   dry_run, mtimes, new.main_copy(n), top),
            workers,
            lambda blocker: (f'not updated, because its subdataset '
                             f'{blocker.path} could not be'),
            'worktree-sync'):
        yield Result(node.path, outcome)
        if not outcome.failed and not dry_run and \
                (depth is None or node.depth < depth):
            yield from new.add(new_subdatasets(node, outcome), below)
        if not outcome.failed:
            synced.append((node, outcome))
    if not dry_run:
        yield from setups(synced, setup)


def setups(synced: list[tuple[Node, Outcome]], wanted: bool | None):
    """Rerun the environment setups whose inputs changed, parents first"""
    for node, outcome in sorted(synced, key=lambda x: x[0].depth):
        before = outcome.keys.get('repaired_from') or \
            outcome.keys.get('from_commit')
        after = outcome.keys.get('to_commit')
        if wanted is None and before == after:
            continue
        done = setup_outcome(
            node.path, wanted,
            lambda s: inputs_changed(node.path, s, before, after))
        if done:
            yield Result(node.path, done, SETUP_ACTION)


def sync_dataset(node: Node, children: list[Node], how: str, force: bool,
                 dry_run: bool, mtimes: bool, main_copy: Path,
                 top: Path) -> Outcome:
    """Update one dataset of the worktree ``top`` (whose main worktree's
    copy is ``main_copy``), then record its subdatasets and (with
    ``mtimes``) carry modification times from the main worktree"""
    repo = node.path
    if node.depth and is_separate_clone(repo, main_copy):
        return Outcome.refused(Refusal.SEPARATE_CLONE,
                               replace_advice(repo, main_copy, top))
    # what a dead run of ours left there, before the checks
    recover(repo)
    worktrees = list_worktrees(repo)
    refusal = first_refusal(
        (Refusal.NOT_A_LINKED_WORKTREE,
         lambda: linked_worktree_problem(repo, worktrees)),
        (Refusal.LOCK_FILES, lambda: lock_problem(repo, *git_dirs(repo))),
        (Refusal.ADJUSTED_BRANCH, lambda: adjusted_problem(repo)),
        (Refusal.OWN_ANNEX, lambda: repair_own_annex(repo, dry_run)))
    if refusal:
        return refusal
    if not dry_run:
        journal.enter(git_dirs(repo)[1])
    source_wt = worktrees[0]
    problem = adjusted_problem(source_wt.path)
    if problem:
        return Outcome.refused(Refusal.ADJUSTED_BRANCH, problem)
    keys: dict[str, Any] = dict(source=str(source_wt.path))
    if not source_wt.head:
        return Outcome.refused(Refusal.NO_COMMIT,
                               f'{source_wt.path} has no commit yet', keys)
    checkout = inspect_checkout(repo, source_wt.head)
    if checkout.problem:
        return checkout.problem.outcome(keys)
    stale = checkout.stale
    if stale:
        keys['repaired_from'] = stale
        if dry_run:
            return Outcome('ok', (
                f'would update a stale checkout from {stale[:10]} to '
                'its branch tip, then bring it to the development state'),
                dict(keys, dry_run=True))
        update_stale_checkout(repo, stale, checkout.head)
    outcome = move_to(repo, checkout.head, source_wt.head, how, force,
                      dry_run, keys, children)
    if stale:
        outcome = replace(outcome, message=(
            f'updated a stale checkout from {stale[:10]}; {outcome.message}'))
    if outcome.failed or dry_run:
        return outcome
    outcome = record_pointers(repo, children, POINTER_MESSAGE, outcome, 'new')
    if stale:
        outcome = replace(outcome, status='ok')
    if mtimes:
        # also where it was up to date: newer times, where earned
        outcome = carry_from(
            source_wt.path, repo, outcome.keys['to_commit'],
            stale or outcome.keys['from_commit']).onto(outcome)
    return outcome


def first_refusal(*checks: tuple[Refusal, Callable[[], str | None]]
                  ) -> Outcome | None:
    """The refusal of the first of ``checks`` (code, check) whose check
    finds a problem, with that code; None where none does"""
    for refusal, check in checks:
        problem = check()
        if problem:
            return Outcome.refused(refusal, problem)
    return None


def move_to(repo: Path, head: str, source: str, how: str, force: bool,
            dry_run: bool, keys: Mapping[str, Any], children: list[Node]
            ) -> Outcome:
    """Bring the checkout in ``repo``, at ``head``, to ``source`` as ``how``
    says"""
    if how == 'reset' and head != source \
            and not is_ancestor(repo, head, source) \
            and not is_ancestor(repo, source, head):
        return reset_to(repo, head, source, force, dry_run, keys)
    return integrate(
        repo, source, what=f'the development state {source[:10]}',
        ff_only=how == 'ff-only',
        message=f'Merge the development state {source[:10]} (worktree-sync)',
        subdatasets=children, dry_run=dry_run, keep_untouched=True,
        keys=keys, head=head)


def reset_to(repo: Path, head: str, source: str, force: bool, dry_run: bool,
             keys: Mapping[str, Any]) -> Outcome:
    """Move a diverged checkout to ``source``, unless that loses commits
    (the outcome has ``keys``, and ``from_commit``, ``to_commit``,
    ``how``)"""
    keys = dict(keys, from_commit=head, to_commit=head, how=None)
    problem = local_work_problem(repo, head, source, keep_untouched=True)
    if problem:
        return problem.outcome(keys)
    orphans = commits_only_in(repo, 'HEAD', [source], current_branch(repo))
    if orphans and not force:
        return Outcome.refused(Refusal.UNMERGED_COMMITS, (
            f'resetting {repo} to {source[:10]} would leave '
            f'{len(orphans)} commit(s) that no other branch contains '
            f'({", ".join(c[:10] for c in orphans[:5])}); merge them '
            f'elsewhere first, or give {option("force")} to give them up'),
            keys)
    if orphans:
        keys['orphaned'] = orphans
    keys['how'] = 'reset'
    if dry_run:
        return Outcome('ok', f'would reset from {head[:10]} to {source[:10]}',
                       dict(keys, dry_run=True))
    with staged_kept(repo):
        # --keep keeps the uncommitted changes, which touch no file that
        # differs between the two commits
        git.run(repo, ['reset', '--quiet', '--keep', source])
    keys['to_commit'] = source
    return Outcome('ok', f'reset from {head[:10]} to {source[:10]}', keys)


def new_subdatasets(node: Node, outcome: Outcome) -> list[Node]:
    """Subdatasets that the checkout updated as ``outcome`` says records,
    but the commit it was updated from did not, and that have no worktree
    here"""
    before, after = outcome.keys['from_commit'], outcome.keys['to_commit']
    if after == before:
        return []
    known = {path for path, _ in subdataset_pointers(node.path, before)}
    found = []
    for path, sha in subdataset_pointers(node.path, 'HEAD'):
        relpath = node.relpath / path
        where = node.path / path
        if sha and path not in known and not is_repo_root(where):
            found.append(Node(path=where, relpath=relpath, commit=sha,
                              depth=node.depth + 1, parent=node.relpath,
                              installed=False))
    return found
