"""Merge into one dataset: every source that has new commits there, in one step

``merge_into`` merges, in one dataset, every source that has new commits
there in one step: a fast-forward or a merge commit where one source alone
has any (``integrate``, as git merges one commit), else one merge commit
with all of them as parents, built with ``octopus.build_merge`` and
brought into the checkout as a fast-forward (``integrate``: every check of
local work first, nothing overwritten). A source that conflicts, or that
was refused in a subdataset, is left out and reported; the others are
merged. One SOURCE is this with a list of one, reported in the shape of
its own (see ``Options.one``).
"""

from __future__ import annotations

from dataclasses import (
    dataclass,
    field,
    replace,
)
from pathlib import Path
from typing import Callable

from datalad_worktree.base.advice import option
from datalad_worktree.base.outcome import Outcome, Refusal
from datalad_worktree.engine.integrate import (
    integrate,
    record_pointers,
    settled_subdatasets,
)
from datalad_worktree.engine.merge.octopus import build_merge, commit_tree
from datalad_worktree.engine.merge.sources import MergeSource, branch_worktrees
from datalad_worktree.engine.recover import recover
from datalad_worktree.environment.mtimes import (
    Carried,
    carry_brought,
    carry_from,
    combined,
)
from datalad_worktree.hierarchy.cones import restored_outside
from datalad_worktree.hierarchy.walk import Node
from datalad_worktree.repo.annex import repair_own_annex
from datalad_worktree.repo.queries import (
    adjusted_problem,
    changed_paths,
    current_branch,
    head_commit,
    refused_as_not_owned,
)
from datalad_worktree.repo.records import contained_in, gitlinks
from datalad_worktree.repo.store.refs import git_dirs
from datalad_worktree.runners import journal
from datalad_worktree.runners.locks import lock_problem

POINTER_MESSAGE = 'Record the subdatasets merged by worktree-merge'


SHOWN = 3
"""How many source names a message lists"""


@dataclass(frozen=True)
class Report:
    """What merging the sources did to one dataset"""
    outcome: Outcome
    """The dataset's own result: what was merged, or that nothing was
    (for one SOURCE: also why it was refused)"""
    refused: dict[str, Outcome] = field(default_factory=dict)
    """Per source key: why it was not merged here (several SOURCEs only)"""


@dataclass(frozen=True)
class Options:
    """The command's switches that each dataset's merge follows"""
    ff_only: bool
    message: str | None
    dry_run: bool
    mtimes: bool
    one: bool = False
    """Whether one SOURCE was given (not a pattern): then each dataset
    has one result, in the shape a single source's merge always had (the
    source's refusal is the dataset's, ``source`` rather than
    ``sources``); else one per refused source and one of the dataset,
    with ``sources`` and ``already``"""


@dataclass(frozen=True)
class Merged:
    """What ``integrate`` brought into the dataset"""
    outcome: Outcome
    sources: list[MergeSource]
    carry: Callable[[], Carried]
    """Carries modification times from the sources' worktrees"""


def names(sources: list[MergeSource]) -> str:
    """The names of ``sources`` for a message, the first few of many"""
    shown = ', '.join(s.name for s in sources[:SHOWN])
    more = len(sources) - SHOWN
    return shown + (f' and {more} more' if more > 0 else '')


def merge_into(node: Node, sources: list[tuple[str, MergeSource]],
               blocked: dict[str, str], children: list[Node],
               merged_children: set[Node], opts: Options) -> Report:
    """Merge ``sources`` (key, source) into the dataset ``node``; those
    whose key is in ``blocked`` are refused with that reason.
    ``children`` are its installed subdatasets, ``merged_children`` those
    merged in this run. Then record the merged subdatasets, and (with
    ``opts.mtimes``) carry modification times from the sources'
    worktrees"""
    repo = node.path
    if not node.installed:
        # a separate clone in a source, of a subdataset not installed here
        fates = {key: s.nothing.with_keys(source=s.name)
                 for key, s in sources if s.nothing}
        if opts.one:
            return Report(next(iter(fates.values()), Outcome(
                'notneeded', 'not installed here')))
        return Report(Outcome('notneeded', 'not installed here'), fates)
    # what a dead run of ours left there, before the checks
    recover(repo)
    problem = lock_problem(repo, *git_dirs(repo))
    if problem:
        return Report(Outcome.refused(Refusal.LOCK_FILES, problem))
    problem = adjusted_problem(repo)
    if problem:
        return Report(Outcome.refused(Refusal.ADJUSTED_BRANCH, problem))
    if not opts.dry_run:
        journal.enter(git_dirs(repo)[1])
    # why each source that is not merged here is not: refused, or nothing
    # to merge
    fates: dict[str, Outcome] = {}
    places = branch_worktrees(repo)
    todo = usable(sources, blocked, opts.dry_run, fates)
    head = head_commit(repo)
    detached = current_branch(repo) is None
    contained = contained_in(repo, list({s.commit for _, s in todo}), head)
    already = [s for _, s in todo if s.commit in contained]
    for key, s in todo:
        if s.commit in contained:
            fates[key] = Outcome('notneeded', (
                f'already contains {s.name} ({s.commit[:10]})'), dict(
                source=s.name, detached=detached, from_commit=head,
                to_commit=head, how=None))
    notes: dict[str, str] = {}
    todo = kept_whole(repo, head, [(k, s) for k, s in todo
                                   if s.commit not in contained],
                      places, fates, notes)
    commits = {s.commit for _, s in todo} | {s.commit for s in already}
    settled = settled_subdatasets(
        repo, next(iter(commits)) if len(commits) == 1 else None,
        children, merged_children)
    merged = None
    if len(todo) == 1:
        merged = merge_one(repo, *todo[0], settled, opts, detached, places,
                           fates)
    elif todo and opts.ff_only:
        for key, s in todo:
            fates[key] = Outcome.refused(Refusal.NOT_FAST_FORWARD, (
                f'{s.name}: with {option("ff_only")}, several sources with '
                'new '
                'commits cannot be merged: a merge commit would be needed'),
                dict(source=s.name))
    elif todo:
        merged = merge_several(repo, head, todo, children, settled, opts,
                               detached, places, fates)
    if merged:
        merged = replace(merged, outcome=merged.outcome.noted(restored_note(
            [notes[k] for k, s in todo if k in notes and s in merged.sources]
        )))
    if opts.one:
        outcome = merged.outcome if merged else next(iter(fates.values()))
        refused = {}
    else:
        outcome = dataset_outcome(merged, already, head, detached)
        refused = {k: o for k, o in fates.items() if o.failed}
    if not outcome.failed and not opts.dry_run:
        outcome = finish(repo, outcome, settled, detached, merged, opts,
                         lambda: carry_found(repo, head, already, places))
    return Report(outcome, refused)


def dataset_outcome(merged: Merged | None, already: list[MergeSource],
                    head: str, detached: bool) -> Outcome:
    """The dataset's own outcome, where several sources were given:
    what was merged, or that nothing was, with ``sources`` (those merged)
    and ``already`` (those contained already)"""
    keys = dict(sources=[s.name for s in merged.sources] if merged else [],
                already=[s.name for s in already])
    if merged:
        return merged.outcome.with_keys(**keys)
    return Outcome('notneeded', (
        f'already contains {names(already)}' if already
        else 'nothing to merge here'), dict(
        detached=detached, from_commit=head, to_commit=head, how=None,
        **keys))


def finish(repo: Path, outcome: Outcome, settled: list[Node],
           detached: bool, merged: Merged | None, opts: Options,
           found: Callable[[], Carried]) -> Outcome:
    """``outcome`` after recording the merged subdatasets, with a note
    where merged sources have uncommitted changes, and after carrying
    modification times (with ``opts.mtimes``) from the sources merged,
    or where none was, from those found contained already (``found``)"""
    outcome = record_pointers(repo, settled, POINTER_MESSAGE, outcome,
                              'merged')
    if detached and outcome.status == 'ok':
        outcome = outcome.noted('(on a detached HEAD)', sep=' ')
    if merged is None:
        return found().onto(outcome) if opts.mtimes else outcome
    outcome = note_uncommitted(outcome, merged.sources)
    return merged.carry().onto(outcome) if opts.mtimes else outcome


def carry_found(repo: Path, head: str, already: list[MergeSource],
                places: dict[str, Path]) -> Carried:
    """Carry modification times from the worktrees of the sources that
    ``repo``, at ``head`` before the subdatasets were recorded, was found
    to contain already (see ``mtimes.up_to_date``: only newer times, only
    where earned)"""
    if not already:
        return Carried()
    commit = head_commit(repo)
    return combined([carry_from(s.checked_out_at(places), repo, commit,
                                before=head) for s in already])


def usable(sources: list[tuple[str, MergeSource]], blocked: dict[str, str],
           dry_run: bool, fates: dict[str, Outcome]
           ) -> list[tuple[str, MergeSource]]:
    """Those of ``sources`` with a commit to merge; why each other one is
    not merged goes into ``fates``"""
    found = []
    for key, s in sources:
        if key in blocked:
            fates[key] = Outcome.refused(Refusal.BLOCKED, (
                f'{s.name} not merged: {blocked[key]}'), dict(source=s.name))
            continue
        if s.nothing:
            fates[key] = s.nothing.with_keys(source=s.name)
            continue
        if s.worktree is not None:
            owned = refused_as_not_owned(s.worktree)
            if owned:
                # its uncommitted changes and times cannot be read
                fates[key] = owned.outcome(f'{s.name} not merged',
                                           dict(source=s.name))
                continue
            problem = adjusted_problem(s.worktree)
            if problem:
                fates[key] = Outcome.refused(
                    Refusal.ADJUSTED_BRANCH, problem, dict(source=s.name))
                continue
            problem = repair_own_annex(s.worktree, dry_run)
            if problem:
                # its annexed results would not be readable here
                fates[key] = Outcome.refused(
                    Refusal.OWN_ANNEX, problem, dict(source=s.name))
                continue
        found.append((key, s))
    return found


def kept_whole(repo: Path, head: str, todo: list[tuple[str, MergeSource]],
               places: dict[str, Path], fates: dict[str, Outcome],
               notes: dict[str, str]) -> list[tuple[str, MergeSource]]:
    """``todo``, each source whose commits delete files that its sparse
    worktree left out (DataLad's save records them as deleted,
    datalad/datalad#7815) with the commit that restores them on top of
    its own instead (see ``restored_outside``), its key with how many in
    ``notes``; a source where that cannot be done is refused in
    ``fates``"""
    found = []
    for key, s in todo:
        restored = restored_outside(repo, head, s.commit, s.name,
                                    s.checked_out_at(places))
        if restored.problem:
            fates[key] = Outcome.refused(Refusal.SPARSE_DELETIONS,
                                         restored.problem,
                                         dict(source=s.name))
            continue
        if restored.files:
            notes[key] = (f'{s.name}: {restored.files}, restored by '
                          f'{restored.commit[:10]}')
            s = replace(s, commit=restored.commit)
        found.append((key, s))
    return found


def restored_note(notes: list[str]) -> str | None:
    """What the merge says about the files outside sparse checkouts it
    kept (``notes``, one per source), or None where there were none"""
    if not notes:
        return None
    more = len(notes) - SHOWN
    return ('kept the files outside the sparse checkout that DataLad '
            'recorded as deleted (' + '; '.join(notes[:SHOWN]) +
            (f'; and {more} more sources' if more > 0 else '') + ')')


def merge_one(repo: Path, key: str, source: MergeSource,
              settled: list[Node], opts: Options, detached: bool,
              places: dict[str, Path], fates: dict[str, Outcome]
              ) -> Merged | None:
    """Merge the one source with new commits as git merges one commit:
    a fast-forward where possible, else a merge commit; where it is
    refused, why goes into ``fates``"""
    outcome = integrate(
        repo, source.commit, what=f'{source.name} ({source.commit[:10]})',
        ff_only=opts.ff_only, message=opts.message or
        f'Merge results from {source.name} (worktree-merge)',
        subdatasets=settled, dry_run=opts.dry_run, keep_untouched=True,
        keys=dict(source=source.name, detached=detached))
    if outcome.failed:
        fates[key] = outcome
        return None

    def carry():
        return carry_from(source.checked_out_at(places), repo,
                          head_commit(repo), outcome.keys['from_commit'])

    return Merged(outcome, [source], carry)


def merge_several(repo: Path, head: str,
                  todo: list[tuple[str, MergeSource]], children: list[Node],
                  settled: list[Node], opts: Options, detached: bool,
                  places: dict[str, Path], fates: dict[str, Outcome]
                  ) -> Merged | None:
    """Merge the sources ``todo``, each with new commits, in one merge
    commit; why each that conflicts is left out goes into ``fates``"""
    by_commit: dict[str, list[tuple[str, MergeSource]]] = {}
    for key, s in todo:
        by_commit.setdefault(s.commit, []).append((key, s))
    heads = subheads(repo, head, children, settled)
    # a dry run merged nothing in the subdatasets; a real run would have
    # merged there every source that reaches this dataset
    merged_below = {c.subpath for c in settled} if opts.dry_run else set()

    def contained(path: str, commits: set[str]) -> set[str]:
        if path in merged_below:
            return set(commits)
        return contained_in(repo / path, sorted(commits), heads[path])

    built = build_merge(repo, head, list(by_commit), heads, contained)
    for commit, conflicts in built.refused.items():
        for key, s in by_commit[commit]:
            fates[key] = Outcome.refused(Refusal.CONFLICTS, (
                f'merging {s.name} ({commit[:10]}) conflicts in '
                f'{", ".join(conflicts)}, with {head[:10]} or a source '
                'merged before it; it was left out'),
                dict(source=s.name, conflicts=conflicts))
    for commit, why in built.unmergeable.items():
        for key, s in by_commit[commit]:
            fates[key] = Outcome.refused(Refusal.TOOLS, (
                f'{s.name} ({commit[:10]}) was left out: {why}'),
                dict(source=s.name))
    merged = [s for c in built.merged for _, s in by_commit[c]]
    if not merged:
        return None
    message = opts.message or ('Merge results from ' + names(merged) +
                               ' (worktree-merge)')
    commit = commit_tree(repo, built.tree, [head, *built.merged], message)
    outcome = integrate(repo, commit, what=f'the merge of {len(merged)} '
                        f'sources ({commit[:10]})', ff_only=False,
                        message=message, subdatasets=[], dry_run=opts.dry_run,
                        keep_untouched=True, keys=dict(detached=detached))
    if outcome.failed:
        for key, s in todo:
            fates.setdefault(key, replace(outcome, keys=dict(source=s.name)))
        return None
    verb = 'would merge' if opts.dry_run else 'merged'
    outcome = replace(outcome, message=(
        f'{verb} {len(merged)} sources ({names(merged)}) from {head[:10]} '
        f'to {commit[:10]} in one commit')).with_keys(how='merge')

    def carry():
        return carry_brought(repo, commit, brought_from(
            merged, built.brought, places))

    return Merged(outcome, merged, carry)


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


def note_uncommitted(outcome: Outcome, sources: list[MergeSource]
                     ) -> Outcome:
    """``outcome``, its message saying which source worktrees have
    uncommitted changes (which were not merged)"""
    dirty = [s.worktree for s in sources
             if s.worktree is not None and changed_paths(s.worktree)]
    if not dirty:
        return outcome
    shown = ', '.join(map(str, dirty[:SHOWN]))
    more = f' and {len(dirty) - SHOWN} more' if len(dirty) > SHOWN else ''
    return outcome.noted(f'note: {shown}{more} has uncommitted changes, '
                         'which were not merged')
