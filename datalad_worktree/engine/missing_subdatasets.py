"""Worktrees for the subdatasets a linked worktree lacks

``worktree-sync`` gives a linked worktree the subdatasets that the main
worktree installed after it was made, and ``worktree-get`` gets the ones
asked for: each becomes a linked worktree of the main worktree's copy, at
the commit the linked worktree records, never a clone of its own.
"""

from __future__ import annotations

from pathlib import (
    Path,
    PurePosixPath,
)
from typing import (
    Callable,
    Iterator,
)

from datalad_worktree.base.advice import flag
from datalad_worktree.base.outcome import Outcome, Refusal, Result, failure
from datalad_worktree.engine.add.make import create_worktrees
from datalad_worktree.engine.add.plan import Plan, Todo, checkout_phrase, plan_hierarchy
from datalad_worktree.environment.setup_command import ACTION as SETUP_ACTION
from datalad_worktree.environment.setup_command import setup_outcome
from datalad_worktree.hierarchy.cones import cone_at, in_cone
from datalad_worktree.hierarchy.walk import Node, recorded_now
from datalad_worktree.repo.queries import (
    current_branch,
    is_repo_root,
    recorded_url,
    remote_url,
)
from datalad_worktree.repo.sparse_checkout import cone_of
from datalad_worktree.repo.worktrees import list_worktrees

ADD_ACTION = 'worktree-add'


class Provider:
    """Makes the worktrees of subdatasets that a linked worktree (``top``)
    has not installed, of the main worktree's copies: at the commits the
    linked worktree records, on the branch its top dataset has checked out
    (detached where that is detached). Results are reported with
    ``action='worktree-add'``."""

    def __init__(self, top: Path, dry_run: bool, mtimes: bool,
                 setup: bool | None):
        self.top = top
        self.main_top = list_worktrees(top)[0].path
        self.branch = current_branch(top)
        self.dry_run = dry_run
        self.mtimes = mtimes
        self.setup = setup
        self.created = False

    def main_copy(self, node: Node) -> Path:
        """Where the main worktree has the subdataset ``node``"""
        return self.main_top / node.relpath

    def add(self, missing: list[Node],
            depth: Callable[[Node], int | None], install: bool = False
            ) -> Iterator[Result | dict]:
        """Make the worktrees of ``missing`` (subdatasets without a
        worktree here) and of their installed subdatasets down to
        ``depth(node)`` levels below each (None: all), where the main
        worktree has them (with ``install``: after installing them there,
        from the source their parent records); their results (for the
        others: that there is nothing to do). In a sparse worktree, those
        outside their parent's cone are left out (with ``install``:
        refused), and the others get their part of it (see ``sparse``)."""
        cones: dict = {}
        for node in missing:
            parent = self.top / node.parent
            if parent not in cones:
                cones[parent] = cone_of(parent)
            if not in_cone(node.subpath, cones[parent]):
                if install:
                    yield Result(node.path, Outcome.refused(
                        Refusal.OUTSIDE_CONE, (
                            f'{node.relpath} lies outside the sparse '
                            f'checkout of {parent} '
                            f'({", ".join(cones[parent])}); make a worktree '
                            f'with {flag("sparse")} for it instead')))
                continue
            if install and not self.main_has(node):
                yield from self.install_here(node)
                continue
            if not is_repo_root(self.main_copy(node)):
                if not install:
                    yield Result(node.path, Outcome('notneeded', (
                        'subdataset not installed in the main worktree '
                        'either; nothing to update')))
                    continue
                installed = yield from self.install_in_main(node)
                if not installed:
                    continue
            yield from self._make(plan_hierarchy(
                self.main_copy(node), node.commit, node.path, self.branch,
                depth(node), cone_at(PurePosixPath(node.subpath),
                                     cones[parent])))

    def main_has(self, node: Node) -> bool:
        """Whether the main worktree's copy of ``node``'s parent records
        ``node`` (it does not where the worktree has a past state that
        recorded a subdataset removed since)"""
        return node.subpath in recorded_now(self.main_top / node.parent)

    def install_here(self, node: Node) -> Iterator[Result | dict]:
        """Install the subdataset ``node``, which the main worktree no
        longer has, in the worktree itself with DataLad's ``get -n``: a
        clone from the URL its parent here records (no copy to make a
        linked worktree of); yields its results and one saying where from"""
        where = node.path
        url = recorded_url(self.top / node.parent, node.subpath)
        if self.dry_run:
            yield Result(where, Outcome('ok', (
                'would install it here, cloned from '
                f'{url or "the URL its parent records"}: the main worktree '
                'no longer has it'), dict(dry_run=True, source_url=url)))
            return
        from datalad.api import get
        try:
            yield from get(str(where), dataset=str(self.top / node.parent),
                           get_data=False, result_renderer='disabled',
                           on_failure='ignore', return_type='generator')
        except Exception as e:
            yield Result(where, failure(where, e, f'installing {where} '
                                                  'failed'))
            return
        if is_repo_root(where):
            url = remote_url(where) or url
            yield Result(where, Outcome('ok', (
                'the main worktree no longer has this subdataset: installed '
                f'it here with DataLad, cloned from {url} (a separate clone, '
                'not a linked worktree)'), dict(source_url=url)))

    def install_in_main(self, node: Node) -> Iterator[Result | dict]:
        """Install the subdataset ``node`` in the main worktree, from the
        source its parent there records, with DataLad's ``get -n``; yields
        its results and returns whether it is installed"""
        where = self.main_copy(node)
        if self.dry_run:
            yield Result(where, Outcome(
                'ok', 'would install it in the main worktree first',
                dict(dry_run=True)))
            return False
        # datalad.api loads this package's commands: import it only here
        from datalad.api import get
        try:
            yield from get(str(where), dataset=str(self.main_top),
                           get_data=False, result_renderer='disabled',
                           on_failure='ignore', return_type='generator')
        except Exception as e:
            yield Result(where, failure(
                where, e, f'installing {where} failed'))
        return is_repo_root(where)

    def _make(self, plans: list[Plan]) -> Iterator[Result]:
        refused = [p for p in plans if p.todo is Todo.REFUSE]
        todo = [p for p in plans if p.todo is Todo.CREATE]
        if refused or self.dry_run:
            for p in refused or todo:
                yield Result(p.target, p.outcome(
                    'impossible', p.reason) if refused else p.outcome(
                    'ok', f'would {checkout_phrase(p)}', dry_run=True), ADD_ACTION)
            return
        for plan, error in create_worktrees(plans, 1, self.mtimes):
            self.created = self.created or error is None
            yield Result(plan.target, plan.reported(error)
                         if error is not None else
                         plan.outcome('ok', checkout_phrase(plan, done=True)),
                         ADD_ACTION)
            done = None if error is not None else setup_outcome(
                plan.target, self.setup, lambda s: True)
            if done:
                yield Result(plan.target, done, SETUP_ACTION)
