"""Subdatasets into a linked worktree, as worktrees, never as clones

The engine of ``worktree-get`` (``get_into``): which datasets a call asks for, the
separate clones that a linked worktree replaces, and the worktrees made
for the rest (see ``missing_subdatasets``).
"""

from __future__ import annotations

from dataclasses import (
    dataclass,
    replace,
)
from pathlib import (
    Path,
    PurePosixPath,
)
from typing import (
    Iterable,
    Iterator,
)

from datalad_worktree.base.outcome import Outcome, Refusal, Result
from datalad_worktree.base.paths import is_within
from datalad_worktree.engine.add.plan import AddPlan, Todo
from datalad_worktree.engine.missing_subdatasets import Provider
from datalad_worktree.engine.scheduler import guarded
from datalad_worktree.hierarchy.clones import (
    clone_refusal,
    delete_clone,
    is_separate_clone,
    unique_holdings,
)
from datalad_worktree.hierarchy.walk import Node, removed_since, walk_hierarchy
from datalad_worktree.repo.queries import head_commit
from datalad_worktree.repo.store.refs import git_dirs
from datalad_worktree.repo.worktrees import linked_worktree_problem

TRASH = 'worktree-get-trash'
"""Where, in the git directory of its parent's worktree, a separate clone
is moved to be deleted before a linked worktree replaces it"""


def get_into(top: Path, paths: list[Path], depth: int | None,
             dry_run: bool, mtimes: bool, setup: bool | None
             ) -> Iterator[Result | dict]:
    """Get the subdatasets at and above each of ``paths`` (and ``depth``
    levels below each, None: all) that the linked worktree ``top`` lacks,
    as worktrees of the main worktree's copies (results of 'worktree-add',
    and the records of DataLad's ``get`` where one runs), replacing
    separate clones that hold nothing of their own; a path that needs
    nothing is reported so"""
    problem = linked_worktree_problem(top)
    if problem:
        yield Result(top, Outcome.refused(Refusal.NOT_A_LINKED_WORKTREE,
                                          problem))
        return
    targets = []
    for target in paths:
        if not is_within(target, top):
            yield Result(target, Outcome.refused(
                Refusal.BAD_PATH, f'{target} is not inside the worktree '
                                  f'{top}; nothing was done'))
        else:
            targets.append(target)
    if not targets:
        return
    provider = Provider(top, dry_run, mtimes, setup)
    reported = set()
    for result in get_subdatasets(top, Wanted(top, targets, depth), provider,
                                  dry_run):
        reported.add(Path(result['path']) if isinstance(result, dict)
                     else result.path)
        yield result
    for target in targets:
        if not reported & {target, *target.parents}:
            yield Result(target, Outcome(
                'notneeded', 'nothing to get: the datasets at and above it '
                             'are installed here'))


def with_missing_got(plan: AddPlan, made: Iterable[Result],
                     depth: int | None, mtimes: bool, setup: bool | None
                     ) -> Iterator[Result | dict]:
    """The results of making ``plan`` (``made``, see ``make_worktrees``),
    a past state's, with each subdataset that the plan leaves out because
    the dataset no longer has it at all (removed since) got into the new
    worktree as ``get_into`` gets one: a clone of its own, installed with
    DataLad from the URL the checked-out state records, down to ``depth``
    levels below the top (None: all). One that the dataset has but has not
    installed stays left out, with the ``worktree-get`` call that gets it
    (which installs it in the dataset first): visiting a past state does
    not change the dataset. Where anything was refused or failed, ``made``
    as it is"""
    skipped = {p.target: p for p in plan.plans
               if p.todo is Todo.SKIP and removed_since(p.node)}
    held, failed = [], False
    for result in made:
        if result.path in skipped and result.outcome.status == 'notneeded':
            held.append(result)
            continue
        failed = failed or result.outcome.status in ('impossible', 'error')
        yield result
    if failed:
        yield from held
        return
    for result in held:
        node = skipped[result.path].node
        yield from get_into(plan.target, [result.path],
                            None if depth is None else depth - node.depth,
                            False, mtimes, setup)


@dataclass(frozen=True)
class Levels:
    """How far below a dataset that a call asks for the worktrees it gets
    go"""
    below: int | None
    """How many levels of subdatasets below it (None: all)"""


class Wanted:
    """Which datasets of the worktree a call asks for, and how many levels
    of subdatasets below each the worktrees it gets go"""

    def __init__(self, top: Path, targets: list[Path], limit: int | None):
        self.targets = [PurePosixPath(t.relative_to(top).as_posix())
                        for t in targets]
        self.limit = limit

    def levels(self, node: Node, nodes: dict[PurePosixPath, Node]
               ) -> Levels | None:
        """How many levels below ``node`` to provide with it; None where
        ``node`` is not asked for. ``nodes`` are the datasets of the
        worktree by location, ``node`` and those above it included"""
        found: int | None = None
        for t in self.targets:
            if node.relpath == t or t in node.relpath.parents:
                if self.limit is None:
                    return Levels(None)
                base = max(n.depth for p, n in nodes.items()
                           if p == t or p in t.parents)
                if node.depth - base <= self.limit:
                    found = max(found or 0,
                                self.limit - (node.depth - base))
            elif node.relpath in t.parents and found is None:
                found = 0
        return None if found is None else Levels(found)


def get_subdatasets(top: Path, wanted: Wanted, provider: Provider,
                    dry_run: bool) -> Iterator[Result | dict]:
    """Provide the wanted subdatasets that the worktree ``top`` lacks, a
    level at a time (those below become visible once their parents are
    there), until none is left or nothing more can be made"""
    reported: set[PurePosixPath] = set()
    while True:
        missing: list[Node] = []
        clones: set[PurePosixPath] = set()
        nodes = {n.relpath: n for n in walk_hierarchy(
            top, head_commit(top), None)}

        def depth(node):
            return wanted.levels(node, nodes).below

        for node in nodes.values():
            if not node.depth or wanted.levels(node, nodes) is None or \
                    clones & set(node.relpath.parents):
                # inside a separate clone: never touched from here
                continue
            if node.installed and not node.problem and (
                    not is_separate_clone(node.path, provider.main_copy(node))
                    or not provider.main_has(node)):
                # a worktree; or a clone of what the main worktree no
                # longer has, which no worktree can replace
                continue
            if node.installed and not node.problem:
                clones.add(node.relpath)
            if node.relpath in reported:
                continue
            reported.add(node.relpath)
            if node.problem:
                yield Result(node.path, node.problem.outcome())
            elif not node.installed:
                missing.append(node)
            else:
                outcome = guarded(lambda n: replace_clone(
                    n, provider.main_copy(n), top / n.parent, dry_run))(node)
                yield Result(node.path, outcome)
                if outcome.status == 'ok' and not dry_run:
                    missing.append(replace(node, installed=False))
        if not missing:
            return
        provider.created = False
        yield from provider.add(missing, depth, install=True)
        if not provider.created:
            return


def replace_clone(node: Node, main_copy: Path, parent: Path,
                  dry_run: bool) -> Outcome:
    """Delete the separate clone at ``node``'s place in its ``parent``
    dataset, so that a linked worktree of ``main_copy`` takes it, if it
    holds nothing that ``main_copy`` lacks; else why not, and what to do"""
    clone = node.path
    holdings = unique_holdings(clone, main_copy, ignored=True)
    if holdings:
        return Outcome.refused(Refusal.SEPARATE_CLONE, clone_refusal(
            clone, main_copy, holdings, 'run this again'))
    if dry_run:
        return Outcome('ok', 'would replace the separate clone, which holds '
                       f'nothing that {main_copy} lacks, with a linked '
                       'worktree', dict(dry_run=True))
    delete_clone(clone, git_dirs(parent)[0] / TRASH)
    return Outcome('ok', 'deleted the separate clone, which held nothing '
                   f'that {main_copy} lacks, to replace it with a linked '
                   'worktree')
