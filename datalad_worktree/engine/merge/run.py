"""The merge of one or more SOURCEs into a hierarchy, subdatasets first

Resolves the sources per dataset (see ``sources``), then merges each
dataset bottom-up (see ``dataset``), so that each parent records the
merged commits of its subdatasets. One SOURCE is merged as a list of one.
"""

from __future__ import annotations

from dataclasses import replace
from fnmatch import fnmatchcase
from pathlib import Path
from typing import (
    Callable,
    Iterator,
)

from datalad_worktree.base.outcome import Outcome, Problem, Refusal, Result
from datalad_worktree.engine.merge.dataset import (
    Options,
    Report,
    merge_into,
)
from datalad_worktree.engine.merge.sources import (
    Spec,
    node_sources,
    read_specs,
)
from datalad_worktree.engine.named import named
from datalad_worktree.engine.scheduler import bottom_up, split_hierarchy
from datalad_worktree.hierarchy.walk import Node, children_of, walk_hierarchy
from datalad_worktree.repo.queries import head_commit, is_repo_root


def merge_hierarchy(top: Path, given: list[str], place: Callable[[str], Path],
                    depth: int | None, workers: int, opts: Options
                    ) -> Iterator[Result]:
    """The results of merging the SOURCEs ``given`` (or a pattern) into
    ``top`` and its subdatasets down to ``depth`` (None: all), ``workers``
    at the same time (``place(text)``: the absolute path a text names).
    One SOURCE that is not a pattern is merged as a list of one, and
    reported in its own shape (see ``Options.one``): per dataset, one
    record; else, per dataset, one record per refused source, then one
    for the dataset (see the command's documentation)"""
    opts = replace(opts, one=len(given) == 1 and
                   not named(given[0], place).pattern)
    specs, problems = read_specs(top, given, place)
    skipped, active = split_hierarchy(walk_hierarchy(
        top, head_commit(top), depth)) if not problems else ([], [])
    if any(s.root for s in specs):
        # clones where a source has a subdataset not installed here:
        # refused, so that no parent records its commit
        active += [n for n in skipped if not n.problem and any(
            is_repo_root(n.at(s.root)) for s in specs if s.root)]
    sources = {n: node_sources(n, specs) for n in active}
    problems = problems or unmatched(specs, sources, place)
    if problems:
        for text, problem in problems:
            yield Result(top, problem.outcome() if opts.one else
                         Outcome.refused(problem.refusal,
                                         problem.message + '; nothing was '
                                                           'merged',
                                         dict(source=text)))
        return
    yield from skipped_results(skipped)
    children = children_of(active)
    merged: set[Node] = set()
    refused: dict[Node, set[str]] = {}
    reports: dict[Node, Report] = {}

    def merge(node):
        mine = children[node.relpath]
        blocked = {key: f'it was refused in the subdataset {c.path}'
                   for c in mine for key in refused.get(c, ())}
        report = merge_into(node, sources[node], blocked,
                            [c for c in mine if c.installed], merged, opts)
        reports[node] = report
        refused[node] = set(report.refused)
        if report.outcome.status == 'ok':
            merged.add(node)
        return report.outcome

    for node, outcome in bottom_up(active, merge, workers, blocked_by,
                                   'worktree-merge'):
        report = reports.pop(node, None)
        for rejected in (report.refused.values() if report else ()):
            yield Result(node.path, rejected)
        yield Result(node.path, outcome)


def unmatched(specs: list[Spec], sources: dict, place
              ) -> list[tuple[str, Problem]]:
    """The branch names and patterns among ``specs`` that name nothing in
    any dataset, each with why"""
    found = {key for pairs in sources.values() for key, s in pairs
             if s.commit or (s.nothing and s.nothing.failed)}
    roots = {s.given for s in specs if s.root}
    problems = []
    for spec in specs:
        if spec.branch and spec.key not in found:
            problems.append((spec.given, Problem(Refusal.NO_MATCH, (
                f'no dataset here has a branch {spec.branch!r}, and no '
                f'worktree exists at {place(spec.given)}; give the path of '
                'a worktree or the name of a branch'))))
        elif spec.pattern and spec.given not in roots and not any(
                key.startswith('branch ') and
                fnmatchcase(key[len('branch '):], spec.pattern)
                for key in found):
            problems.append((spec.given, Problem(Refusal.NO_MATCH, (
                f'the pattern {spec.pattern!r} matches no branch of any '
                'dataset here' + (' and no linked worktree'
                                  if '/' in spec.pattern else '')))))
    return problems


def skipped_results(skipped: list[Node]) -> Iterator[Result]:
    """The results of the datasets that cannot be merged into"""
    for node in skipped:
        if node.problem:
            yield Result(node.path, node.problem.outcome())


def blocked_by(blocker: Node) -> str:
    return (f'not merged, because the merge into its subdataset '
            f'{blocker.path} was refused or failed')
