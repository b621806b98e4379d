"""What ``worktree-list`` reports about each linked worktree of a dataset

Read only: the worktrees git registers for one dataset, and the separate
clones found where a linked worktree of a subdataset belongs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

from datalad_next.runners import CommandError

from datalad_worktree.base.advice import command
from datalad_worktree.base.outcome import Outcome, Result, failure
from datalad_worktree.engine.progress import progress
from datalad_worktree.engine.relink import moved_place
from datalad_worktree.engine.scheduler import split_hierarchy
from datalad_worktree.environment.made_from import made_from
from datalad_worktree.hierarchy.clones import is_separate_clone, unique_holdings
from datalad_worktree.hierarchy.unmerged import unmerged
from datalad_worktree.hierarchy.walk import Node, children_of, walk_hierarchy
from datalad_worktree.repo.annex import has_own_annex
from datalad_worktree.repo.links import links_broken
from datalad_worktree.repo.queries import (
    ahead_behind,
    current_branch,
    head_commit,
    worktree_changes,
)
from datalad_worktree.repo.sparse_checkout import cone_of
from datalad_worktree.repo.worktrees import Worktree, list_worktrees


def list_hierarchy(top: Path, depth: int | None) -> Iterator[Result]:
    """The results for the linked worktrees of each dataset of ``top``'s
    hierarchy, down to ``depth`` levels (None: all), and for the datasets
    that cannot be looked at"""
    skipped, active = split_hierarchy(walk_hierarchy(
        top, head_commit(top), depth))
    for node in skipped:
        if node.problem:
            yield Result(node.path, Outcome.refused(
                node.problem.refusal,
                f'{node.problem.message}; its worktrees are not listed'))
    children = children_of(skipped + active)
    with progress('worktree-list', len(active)) as done:
        for node in active:
            yield from listing(node, children[node.relpath])
            done()


def listing(node: Node, children: list[Node]) -> Iterator[Result]:
    """The results for the linked worktrees of one dataset, and for the
    separate clones in them where its subdatasets belong"""
    try:
        worktrees = list_worktrees(node.path)
        main = worktrees[0]
        for wt in worktrees[1:]:
            try:
                keys = listing_keys(wt, main, node.relpath)
                keys.update(moved_keys(wt, node, keys))
            except Exception as e:
                # this worktree only: git may refuse one that another
                # user owns, and list the others
                yield Result(wt.path, failure(
                    wt.path, e, f'cannot look at the worktree {wt.path} '
                    f'of {node.path}', dict(
                        dataset=str(node.path), branch=wt.short_branch,
                        head=wt.head)))
                continue
            yield Result(wt.path, Outcome(
                'ok', None, dict(dataset=str(node.path), **keys)))
            if not keys['stale'] and keys['linked']:
                for child in children:
                    if child.problem:
                        continue
                    place = wt.path / child.subpath
                    if is_separate_clone(place, child.path):
                        yield Result(place, Outcome(
                            'ok', None, clone_keys(place, child, keys)))
    except Exception as e:
        yield Result(node.path, failure(
            node.path, e, f'cannot list the worktrees of {node.path}'))


def clone_keys(place: Path, child: Node, parent_keys: dict) -> dict:
    """The result keys that describe the separate clone at ``place``, the
    place of the subdataset ``child`` in the worktree that
    ``parent_keys`` describes"""
    changes, untracked = worktree_changes(place)
    relpath = Path(parent_keys['relpath']) / child.subpath
    return dict(
        dataset=str(child.path), worktree_root=parent_keys['worktree_root'],
        relpath=str(relpath), branch=current_branch(place),
        head=head_commit(place), clean=not changes and not untracked,
        ahead=None, behind=None, unmerged=None, stale=False, locked=None,
        own_annex=None, clone=True, holds=unique_holdings(place, child.path, files=False),
        linked=True, moved_to=None, repair=None)


def moved_keys(wt: Worktree, node: Node, keys: dict) -> dict:
    """``moved_to``: where the worktree ``wt`` of ``node``'s dataset, whose
    directory is gone, was moved together with its main dataset, if it
    was; ``repair``: the command that re-links it, where it was moved or
    its links are broken (its main dataset was moved), else None"""
    top = node.top
    if keys['stale']:
        moved = moved_place(node.path, wt.path)
        root = Path(keys['worktree_root'])
        if moved is None:
            return dict(moved_to=None, repair=command(
                'worktree-repair', 'NEWPATH', dataset=str(top)))
        new_root = Path(*moved.parts[:len(moved.parts) - (
            len(wt.path.parts) - len(root.parts))])
        return dict(moved_to=str(moved), repair=command(
            'worktree-repair', str(new_root), dataset=str(top)))
    return dict(moved_to=None, repair=None if keys.get('linked', True)
                else command('worktree-repair', dataset=str(top)))


def listing_keys(wt: Worktree, main: Worktree, relpath) -> dict:
    """The result keys that describe one linked worktree"""
    # prunable also where the .git is a link that leads nowhere (its main
    # dataset moved): there, its links are broken, its directory is not gone
    stale = not wt.path.is_dir() or (
        wt.prunable and not os.path.lexists(wt.path / '.git'))
    linked = stale or not links_broken(wt.path, main.path)
    ahead = behind = work = None
    if wt.head and wt.head == main.head:
        ahead = behind = work = 0
    elif wt.head and main.head:
        try:
            ahead, behind = ahead_behind(main.path, main.head, wt.head)
            # the judgement of worktree-remove: commits that only record
            # subdataset states the main worktree's subdatasets contain
            # are not unmerged results
            work = len(unmerged(main.path, wt.head, [main.head]).work) \
                if ahead else 0
        except CommandError:
            pass
    clean = own_annex = cone = state = None
    if not stale and linked:
        changes, untracked = worktree_changes(wt.path)
        clean = not changes and not untracked
        own_annex = has_own_annex(wt.path)
        cone = cone_of(wt.path)
        state = made_from(wt.path)
    parts = Path(wt.path).parts
    rel = Path(*relpath.parts) if relpath.parts != ('.',) else None
    root = wt.path
    if rel and parts[-len(rel.parts):] == rel.parts:
        root = Path(*parts[:-len(rel.parts)])
        shown = str(rel)
    else:
        shown = '.'
    return dict(
        worktree_root=str(root), relpath=shown,
        branch=wt.short_branch,
        head=wt.head, clean=clean, ahead=ahead, behind=behind,
        unmerged=work, stale=stale,
        locked=wt.locked, own_annex=own_annex, clone=False,
        sparse=None if cone is None else list(cone), linked=linked,
        made_from=state,
    )
