"""Merge into one dataset: one source, or several in one merge commit

``merge_dataset`` merges the one SOURCE of ``worktree-merge`` into a
dataset. With several sources (or a pattern), ``merge_many`` merges, in each
dataset, every source that has new commits there in one step: a
fast-forward where one source alone has any, else one merge commit with
all of them as parents, built with ``octopus.build_merge`` and brought into
the checkout as a fast-forward (``integrate``: every check of local work
first, nothing overwritten). A source that conflicts, or that was refused
in a subdataset, is left out and reported; the others are merged.
"""

from __future__ import annotations

from dataclasses import (
    dataclass,
    field,
)
from pathlib import Path

from datalad_worktree.base.outcome import Outcome
from datalad_worktree.engine.integrate import integrate, record_pointers
from datalad_worktree.engine.merge.octopus import build_merge
from datalad_worktree.engine.merge.sources import MergeSource, branch_worktrees
from datalad_worktree.environment.mtimes import carry_brought, carry_from
from datalad_worktree.hierarchy.cones import sparse_deletion_problem
from datalad_worktree.hierarchy.walk import Node
from datalad_worktree.repo.annex import repair_own_annex
from datalad_worktree.repo.queries import (
    adjusted_problem,
    changed_paths,
    current_branch,
    head_commit,
)
from datalad_worktree.repo.records import contained_in, gitlinks
from datalad_worktree.repo.store.refs import git_dirs
from datalad_worktree.runners import git
from datalad_worktree.runners.locks import lock_problem

POINTER_MESSAGE = 'Record the subdatasets merged by worktree-merge'


SHOWN = 3
"""How many source names a message lists"""


@dataclass
class Report:
    """What merging several sources did to one dataset"""
    outcome: Outcome
    """The dataset's own result: what was merged, or that nothing was"""
    refused: dict[str, Outcome] = field(default_factory=dict)
    """Per source key: why it was not merged here"""


@dataclass(frozen=True)
class Options:
    """The command's switches that each dataset's merge follows"""
    ff_only: bool
    message: str | None
    dry_run: bool
    mtimes: bool


def names(sources: list[MergeSource]) -> str:
    """The names of ``sources`` for a message, the first few of many"""
    shown = ', '.join(s.name for s in sources[:SHOWN])
    more = len(sources) - SHOWN
    return shown + (f' and {more} more' if more > 0 else '')


def merge_many(node: Node, sources: list[tuple[str, MergeSource]],
               blocked: dict[str, str], children: list[Node],
               merged_children: set[Node], opts: Options) -> Report:
    """Merge ``sources`` (key, source) into the dataset ``node``; those
    whose key is in ``blocked`` are refused with that reason.
    ``children`` are its installed subdatasets, ``merged_children`` those
    merged in this run"""
    repo = node.path
    if not node.installed:
        # a separate clone in a source, of a subdataset not installed here
        return Report(Outcome('notneeded', 'not installed here'), {
            key: Outcome(*s.nothing, dict(source=s.name))
            for key, s in sources if s.nothing and s.nothing[0] != 'ok'})
    problem = lock_problem(repo, *git_dirs(repo)) or adjusted_problem(repo)
    if problem:
        return Report(Outcome('impossible', problem))
    report = Report(Outcome('notneeded', None))
    places = branch_worktrees(repo)
    todo = usable(sources, blocked, opts.dry_run, report)
    head = head_commit(repo)
    keys = dict(sources=[], detached=current_branch(repo) is None,
                from_commit=head, to_commit=head, how=None)
    contained = contained_in(repo, list({s.commit for _, s in todo}), head)
    already = [s for _, s in todo if s.commit in contained]
    todo = [(k, s) for k, s in todo if s.commit not in contained]
    report.outcome = Outcome('notneeded', (
        f'already contains {names(already)}' if already
        else 'nothing to merge here'), dict(keys, already=[
            s.name for s in already]))
    todo = kept_whole(repo, head, todo, places, report)
    settled = [c for c in children if c in merged_children]
    if len(todo) == 1:
        merge_one(repo, *todo[0], settled, opts, report, keys, places)
    elif todo and opts.ff_only:
        for key, s in todo:
            report.refused[key] = Outcome('impossible', (
                f'{s.name}: with --ff-only, several sources with new '
                'commits cannot be merged: a merge commit would be needed'),
                dict(source=s.name))
    elif todo:
        merge_several(repo, todo, children, settled, opts, report, keys,
                      places)
    if not opts.dry_run and not report.outcome.failed:
        record_pointers(repo, settled, POINTER_MESSAGE, report.outcome,
                        'merged')
    if keys['detached'] and report.outcome.status == 'ok':
        report.outcome.message += ' (on a detached HEAD)'
    return report


def usable(sources: list[tuple[str, MergeSource]], blocked: dict[str, str],
           dry_run: bool, report: Report) -> list[tuple[str, MergeSource]]:
    """Those of ``sources`` with a commit to merge; the others that must
    be refused go into ``report``"""
    found = []
    for key, s in sources:
        if key in blocked:
            report.refused[key] = Outcome('impossible', (
                f'{s.name} not merged: {blocked[key]}'), dict(source=s.name))
            continue
        if s.nothing:
            if s.nothing[0] != 'notneeded':
                report.refused[key] = Outcome(*s.nothing,
                                              dict(source=s.name))
            continue
        problem = s.worktree and (adjusted_problem(s.worktree) or
                                  repair_own_annex(s.worktree, dry_run))
        if problem:
            report.refused[key] = Outcome('impossible', problem,
                                          dict(source=s.name))
            continue
        found.append((key, s))
    return found


def kept_whole(repo: Path, head: str, todo: list[tuple[str, MergeSource]],
               places: dict[str, Path], report: Report
               ) -> list[tuple[str, MergeSource]]:
    """Those of ``todo`` that delete no file their sparse worktree left
    out; the others are refused in ``report`` (see ``sparse``)"""
    found = []
    for key, s in todo:
        problem = sparse_deletion_problem(repo, head, s.commit, s.name,
                                          s.checked_out_at(places))
        if problem:
            report.refused[key] = Outcome('impossible', problem,
                                          dict(source=s.name))
        else:
            found.append((key, s))
    return found


def merge_one(repo: Path, key: str, source: MergeSource,
              settled: list[Node], opts: Options, report: Report,
              keys: dict, places: dict[str, Path]) -> None:
    """Merge the one source with new commits, as a single source is"""
    outcome = integrate(
        repo, source.commit, what=f'{source.name} ({source.commit[:10]})',
        ff_only=opts.ff_only, message=opts.message or
        f'Merge results from {source.name} (worktree-merge)',
        subdatasets=settled, dry_run=opts.dry_run, keep_untouched=True,
        keys=dict(keys, source=source.name))
    if outcome.failed:
        report.refused[key] = outcome
        return
    outcome.keys.update(sources=[source.name],
                        already=report.outcome.keys['already'])
    report.outcome = outcome
    if opts.dry_run:
        return
    note_uncommitted(outcome, [source])
    if opts.mtimes:
        note = carry_from(source.checked_out_at(places), repo,
                          outcome.keys['to_commit'])
        if note:
            outcome.message += f'; {note}'


def merge_several(repo: Path, todo: list[tuple[str, MergeSource]],
                  children: list[Node], settled: list[Node], opts: Options,
                  report: Report, keys: dict, places: dict[str, Path]
                  ) -> None:
    """Merge the sources ``todo``, each with new commits, in one merge
    commit; those that conflict are refused"""
    head = keys['from_commit']
    by_commit: dict[str, list[tuple[str, MergeSource]]] = {}
    for key, s in todo:
        by_commit.setdefault(s.commit, []).append((key, s))
    heads = subheads(repo, head, children, settled)
    built = build_merge(repo, head, list(by_commit), heads,
                        lambda path, commits: contained_in(
                            repo / path, sorted(commits), heads[path]))
    for commit, conflicts in built.refused.items():
        for key, s in by_commit[commit]:
            report.refused[key] = Outcome('impossible', (
                f'merging {s.name} ({commit[:10]}) conflicts in '
                f'{", ".join(conflicts)}, with {head[:10]} or a source '
                'merged before it; it was left out'),
                dict(source=s.name, conflicts=conflicts))
    for commit, why in built.unmergeable.items():
        for key, s in by_commit[commit]:
            report.refused[key] = Outcome('impossible', (
                f'{s.name} ({commit[:10]}) was left out: {why}'),
                dict(source=s.name))
    merged = [s for c in built.merged for _, s in by_commit[c]]
    if not merged:
        return
    message = opts.message or ('Merge results from ' + names(merged) +
                               ' (worktree-merge)')
    commit = git.text(repo, [
        'commit-tree', *[a for p in [head, *built.merged] for a in ('-p', p)],
        '-m', message, built.tree]).strip()
    outcome = integrate(repo, commit, what=f'the merge of {len(merged)} '
                        f'sources ({commit[:10]})', ff_only=False,
                        message=message, subdatasets=[], dry_run=opts.dry_run,
                        keep_untouched=True, keys=dict(keys))
    if outcome.failed:
        for key, s in todo:
            report.refused.setdefault(key, Outcome(
                outcome.status, outcome.message, dict(source=s.name)))
        return
    outcome.keys.update(how='merge', sources=[s.name for s in merged],
                        already=report.outcome.keys['already'])
    verb = 'would merge' if opts.dry_run else 'merged'
    outcome.message = (f'{verb} {len(merged)} sources ({names(merged)}) '
                       f'from {head[:10]} to {commit[:10]} in one commit')
    report.outcome = outcome
    if opts.dry_run:
        return
    note_uncommitted(outcome, merged)
    if opts.mtimes:
        note = carry_brought(repo, commit, brought_from(
            merged, built.brought, places))
        if note:
            outcome.message += f'; {note}'


def subheads(repo: Path, head: str, children: list[Node],
             settled: list[Node]) -> dict[str, str]:
    """The checked-out commits of those ``children`` that the merge may
    record, by path: the ``settled`` ones (merged in this run), and those
    that contain what ``head`` records for them"""
    found = {}
    recorded = gitlinks(repo, head, [c.subpath for c in children])
    for child in children:
        current = head_commit(child.path)
        mine = recorded.get(child.subpath)
        if current and (child in settled or not mine or mine in contained_in(
                child.path, [mine], current)):
            found[child.subpath] = current
    return found


def brought_from(merged: list[MergeSource],
                 brought: dict[str, dict[str, str]], places: dict[str, Path]
                 ) -> list[tuple[Path, dict[str, str]]]:
    """Each merged source's worktree with the files it brought"""
    found = []
    for s in merged:
        where = s.checked_out_at(places)
        if where is not None and s.commit in brought:
            found.append((where, brought[s.commit]))
    return found


def note_uncommitted(outcome: Outcome, sources: list[MergeSource]) -> None:
    """Add to ``outcome``'s message which source worktrees have uncommitted
    changes (which were not merged)"""
    dirty = [s.worktree for s in sources
             if s.worktree is not None and changed_paths(s.worktree)]
    if dirty:
        shown = ', '.join(map(str, dirty[:SHOWN]))
        more = f' and {len(dirty) - SHOWN} more' if len(dirty) > SHOWN else ''
        outcome.message += (f'; note: {shown}{more} has uncommitted changes, '
                            'which were not merged')


def merge_dataset(node: Node, source: MergeSource,
                  settled: list[Node], opts: Options) -> Outcome:
    """Merge one dataset's source into it, then record merged subdatasets
    and (with ``mtimes``) carry modification times from the source's
    worktree"""
    repo = node.path
    if not node.installed:
        return Outcome(*source.nothing)
    problem = lock_problem(repo, *git_dirs(repo)) or adjusted_problem(repo)
    if problem:
        return Outcome('impossible', problem)
    if source.nothing:
        return Outcome(*source.nothing)
    problem = adjusted_problem(source.worktree) if source.worktree \
        else None
    problem = problem or (source.worktree and
                          repair_own_annex(source.worktree, opts.dry_run))
    if problem:
        # its annexed results would not be readable here
        return Outcome('impossible', problem)
    commit, what = source.commit, source.name
    checkout = source.checked_out_at(branch_worktrees(repo))
    problem = sparse_deletion_problem(repo, head_commit(repo), commit, what,
                                      checkout)
    if problem:
        return Outcome('impossible', problem)
    keys = dict(source=what, detached=current_branch(repo) is None)
    outcome = integrate(
        repo, commit, what=f'{what} ({commit[:10]})', ff_only=opts.ff_only,
        message=opts.message or f'Merge results from {what} (worktree-merge)',
        subdatasets=settled, dry_run=opts.dry_run,
        keep_untouched=True, keys=keys)
    if outcome.failed or opts.dry_run:
        return outcome
    record_pointers(repo, settled, POINTER_MESSAGE, outcome, 'merged')
    if keys['detached'] and outcome.status == 'ok':
        outcome.message += ' (on a detached HEAD)'
    note_uncommitted(outcome, [source])
    if opts.mtimes and \
            outcome.keys['to_commit'] != outcome.keys['from_commit']:
        note = carry_from(checkout, repo, outcome.keys['to_commit'])
        if note:
            outcome.message += f'; {note}'
    return outcome
