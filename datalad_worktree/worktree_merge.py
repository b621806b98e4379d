"""Bring results from a linked worktree home, subdatasets first"""

from __future__ import annotations

from fnmatch import fnmatchcase
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
    EnsureStr,
)

from .hierarchy import (
    Node,
    children_of,
    max_depth,
    walk_hierarchy,
)
from .integrate import settled_subdatasets
from .interface import (
    HIERARCHY_PARAMS,
    HIERARCHY_VALIDATORS,
    MTIMES_PARAM,
    WorktreeInterface,
    bars_for_people,
    bottom_up,
    make_result,
    split_hierarchy,
    tools_problem,
)
from .mergemany import (
    Options,
    Report,
    merge_dataset,
    merge_many,
)
from .mergesources import (
    MergeSource,
    Spec,
    is_pattern,
    node_sources,
    read_specs,
    source_problem,
)
from .outcome import Outcome
from .paths import absolute_path
from .repo import (
    head_commit,
    is_repo_root,
)
from .settings import worker_count

ACTION = 'worktree-merge'


@build_doc
class WorktreeMerge(WorktreeInterface):
    """Merge results from a linked worktree back, subdatasets first

    After a batch of ``datalad run`` calls in a linked worktree made by
    ``worktree-add``, this brings its commits (run records and annexed
    outputs) into each dataset of DATASET, normally the main worktree.
    SOURCE is either the path of that linked worktree, and then each dataset
    there contributes the commit it has checked out (also a detached HEAD),
    or a branch name, merged in every dataset that has such a branch.

    Subdatasets are merged before their parents, so each parent records the
    merged commits of its subdatasets, also of those merged before (by
    hand, or by an earlier, interrupted run): where a subdataset's
    checked-out commit contains what both sides record for it. Where possible a dataset is
    fast-forwarded; otherwise a merge commit is made, with the message given
    by [CMD: --message CMD][PY: message PY] or one naming the source.
    Conflicts that are only on subdataset pointers are resolved to the
    commit the subdataset's merge just produced.

    Everything is checked before a dataset is touched. Any other conflict
    leaves that dataset exactly as it was and lists the conflicting paths;
    its parents are not merged, while subdatasets merged already stay
    merged. Uncommitted changes to files that the merge would change, and
    untracked or ignored files that it would overwrite, are refused in the
    same way; local changes to other files are kept. When DATASET has a
    detached HEAD (as Jujutsu leaves it), the merge lands on that detached
    HEAD, and the result says so.

    Annexed outputs need no transfer: the annex is shared, so they are
    readable after the merge, and ``datalad rerun`` of a merged run record
    works in DATASET.

    A separate clone in the source where a subdataset's worktree belongs
    (from a ``datalad get -n`` in the worktree) has commits and annexed
    content of its own: while DATASET lacks any of them, that subdataset and
    its parents are refused, with the commands that bring them over, so
    that DATASET never records a commit it cannot reach. Once DATASET has
    them, the clone's checked-out commit is merged like a worktree's.

    One result is reported per dataset, with ``action='worktree-merge'``,
    ``path`` (the dataset merged into), ``source`` (the worktree dataset or
    branch merged), ``from_commit`` and ``to_commit``, ``how``
    ('fast-forward' or 'merge'), ``detached`` (True when merged onto a
    detached HEAD), and ``conflicts`` (paths) for refused merges.

    Several SOURCEs, or a pattern, merge many sources in one step, such as
    the branches of hundreds of cluster jobs: ``'job-*'`` (quoted, so that
    the shell leaves it alone). A SOURCE that is an existing path is a
    worktree; else a SOURCE with ``*``, ``?`` or ``[`` is a pattern
    (``fnmatch``; ``*`` also matches '/'), matched in each dataset against
    its branch names, leaving out the branch that dataset has checked out
    and git-annex's own branches (``git-annex``, ``synced/*``,
    ``adjusted/*``), and, if it contains a '/', against the paths of
    DATASET's linked worktrees; anything else is a branch name. A SOURCE
    that names nothing (a pattern or branch that no dataset has, a path that
    is not a linked worktree, DATASET itself, a name that looks like an
    option) refuses the whole command before anything is merged. In each
    dataset, all sources with new commits there become one merge commit,
    with HEAD and each of them as parents (a fast-forward where only one
    source has new commits and HEAD has none of its own); its tree is built
    without touching the working tree, which is then brought up to it in one
    step, with all the checks above. A source that conflicts, with HEAD or
    with a source merged before it (in the order given; a pattern's branches
    in name order), is left out and reported with the conflicting paths; so
    is a source refused in a subdataset, in every dataset above it. The
    other sources are merged. With [CMD: --ff-only CMD][PY: ff_only=True
    PY], a dataset where more than one source has new commits refuses them
    all. Running the same command again merges nothing more.

    With several sources, each dataset reports one result per refused
    source (status 'impossible', its ``source``, and ``conflicts`` where
    it conflicts), and then one result of its own: 'ok' with ``sources``
    (the names merged, all of them; the message names the first few),
    ``how``, ``from_commit``, ``to_commit``, ``detached`` and, where
    parents recorded merged subdatasets, ``recorded``; or 'notneeded'.
    ``already`` lists the sources it contained already.
    """

    _params_ = dict(
        source=Parameter(
            args=('source',),
            metavar='SOURCE',
            nargs='+',
            doc="""one or more sources: a linked worktree of DATASET (each
            dataset in it contributes its checked-out commit), a branch
            name, or a pattern (``'job-*'``) of branch names and, with a '/',
            of linked worktree paths.[PY:  A string or a list. PY]"""),
        dataset=Parameter(
            args=('-d', '--dataset'),
            metavar='DATASET',
            doc="""dataset to merge into, normally the main worktree. If not
            given, the dataset that contains the current directory."""),
        **HIERARCHY_PARAMS,
        ff_only=Parameter(
            args=('--ff-only',),
            action='store_true',
            doc="""refuse where a fast-forward is not possible."""),
        message=Parameter(
            args=('-m', '--message'),
            metavar='MESSAGE',
            doc="""message of the merge commits. Default: one naming the
            source."""),
        dry_run=Parameter(
            args=('--dry-run',),
            action='store_true',
            doc="""report what would be merged, change nothing."""),
        mtimes=MTIMES_PARAM,
    )

    _validator_ = EnsureCommandParameterization(
        dict(
            source=EnsureStr(min_len=1) |
            EnsureListOf(EnsureStr(min_len=1), min_len=1),
            dataset=EnsureDataset(installed=True, purpose='merge into it'),
            **HIERARCHY_VALIDATORS,
            ff_only=EnsureBool(),
            message=EnsureStr(min_len=1),
            dry_run=EnsureBool(),
            mtimes=EnsureBool(),
        ),
        validate_defaults=('dataset',),
    )

    _examples_ = [
        dict(text="Merge the results of the worktree '../runs' into the "
                  "current dataset and all its subdatasets",
             code_py="worktree_merge('../runs', recursive=True)",
             code_cmd="datalad worktree-merge -r ../runs"),
        dict(text="Merge the branches of all cluster jobs, one merge "
                  "commit per dataset",
             code_py="worktree_merge('job-*', recursive=True)",
             code_cmd="datalad worktree-merge -r 'job-*'"),
        dict(text="Merge the branch 'runs' wherever it exists, "
                  "fast-forwards only",
             code_py="worktree_merge('runs', recursive=True, ff_only=True)",
             code_cmd="datalad worktree-merge -r --ff-only runs"),
    ]

    @staticmethod
    @datasetmethod(name='worktree_merge')
    @bars_for_people
    @eval_results
    def __call__(
            source,
            *,
            dataset=None,
            recursive=False,
            recursion_limit=None,
            jobs=None,
            ff_only=False,
            message=None,
            dry_run=False,
            mtimes=True,
    ):
        top = dataset.ds.pathobj
        source = [source] if isinstance(source, str) else list(source)
        opts = Options(ff_only, message, dry_run, mtimes)
        depth = max_depth(recursive, recursion_limit)
        problem = tools_problem(top)
        if problem:
            yield make_result(ACTION, top, top, Outcome('impossible', problem))
            return
        place = lambda text: absolute_path(Path(text), dataset)  # noqa: E731
        if len(source) == 1 and (not is_pattern(source[0]) or
                                 place(source[0]).exists()):
            yield from merge_one_source(top, source[0], place(source[0]),
                                        depth, worker_count(jobs), opts)
        else:
            yield from merge_sources(top, source, place, depth,
                                     worker_count(jobs), opts)


def merge_one_source(top: Path, source: str, source_root: Path,
                     depth: int | None, workers: int, opts: Options):
    """The results of merging the one SOURCE ``source`` into ``top``"""
    branch = None if source_root.exists() else source
    problem = source_problem(top, source_root, branch)
    if problem:
        yield make_result(ACTION, top, top, Outcome('impossible', problem))
        return
    skipped, active = split_hierarchy(walk_hierarchy(
        top, head_commit(top), depth))
    yield from skipped_results(top, skipped)
    if branch is None:
        # a clone where the source has a subdataset this dataset has
        # not installed: refused, so that no parent records its commit
        active += [n for n in skipped if not n.problem and
                   is_repo_root(n.at(source_root))]
    sources = {n: MergeSource.find(n, source_root, branch)
               for n in active}
    if branch is not None and \
            not any(s.commit for s in sources.values()):
        yield make_result(ACTION, top, top, Outcome('impossible', (
            f'no dataset here has a branch {branch!r}, and no worktree '
            f'exists at {source_root}; give the path of a worktree or '
            'the name of a branch')))
        return
    children = children_of(active)
    merged: set[Node] = set()

    def merge(node):
        outcome = merge_dataset(
            node, sources[node], settled_subdatasets(
                node.path, sources[node].commit, children[node.relpath],
                merged), opts)
        if outcome.status == 'ok':
            merged.add(node)
        return outcome

    for node, outcome in bottom_up(active, merge, workers, blocked_by,
                                   ACTION):
        yield make_result(ACTION, node.path, top, outcome)


def merge_sources(top: Path, given: list[str], place, depth: int | None,
                  workers: int, opts: Options):
    """The results of merging several SOURCEs ``given`` (or a pattern)
    into ``top``: per dataset, one record per refused source, then one for
    the dataset (see the command's documentation)"""
    specs, problems = read_specs(top, given, place)
    skipped, active = split_hierarchy(walk_hierarchy(
        top, head_commit(top), depth)) if not problems else ([], [])
    if any(s.root for s in specs):
        # clones where a source has a subdataset not installed here
        active += [n for n in skipped if not n.problem and any(
            is_repo_root(n.at(s.root)) for s in specs if s.root)]
    sources = {n: node_sources(n, specs) for n in active}
    problems = problems or unmatched(specs, sources, place)
    if problems:
        for text, problem in problems:
            yield make_result(ACTION, top, top, Outcome(
                'impossible', problem + '; nothing was merged',
                dict(source=text)))
        return
    yield from skipped_results(top, skipped)
    children = children_of(active)
    merged: set[Node] = set()
    refused: dict[Node, set[str]] = {}
    reports: dict[Node, Report] = {}

    def merge(node):
        mine = children[node.relpath]
        blocked = {key: f'it was refused in the subdataset {c.path}'
                   for c in mine for key in refused.get(c, ())}
        report = merge_many(node, sources[node], blocked,
                            [c for c in mine if c.installed], merged, opts)
        reports[node] = report
        refused[node] = set(report.refused)
        if report.outcome.status == 'ok':
            merged.add(node)
        return report.outcome

    for node, outcome in bottom_up(active, merge, workers, blocked_by,
                                   ACTION):
        report = reports.pop(node, None)
        for rejected in (report.refused.values() if report else ()):
            yield make_result(ACTION, node.path, top, rejected)
        yield make_result(ACTION, node.path, top, outcome)


def unmatched(specs: list[Spec], sources: dict, place
              ) -> list[tuple[str, str]]:
    """The branch names and patterns among ``specs`` that name nothing in
    any dataset, each with why"""
    found = {key for pairs in sources.values() for key, s in pairs
             if s.commit or (s.nothing and s.nothing[0] != 'notneeded')}
    roots = {s.given for s in specs if s.root}
    problems = []
    for spec in specs:
        if spec.branch and spec.key not in found:
            problems.append((spec.given, (
                f'no dataset here has a branch {spec.branch!r}, and no '
                f'worktree exists at {place(spec.given)}')))
        elif spec.pattern and spec.given not in roots and not any(
                key.startswith('branch ') and
                fnmatchcase(key[len('branch '):], spec.pattern)
                for key in found):
            problems.append((spec.given, (
                f'the pattern {spec.pattern!r} matches no branch of any '
                'dataset here' + (' and no linked worktree'
                                  if '/' in spec.pattern else ''))))
    return problems


def skipped_results(top: Path, skipped: list[Node]):
    """The results of the datasets that cannot be merged into"""
    for node in skipped:
        if node.problem:
            yield make_result(ACTION, node.path, top,
                              Outcome('impossible', node.problem))


def blocked_by(blocker: Node) -> str:
    return (f'not merged, because the merge into its subdataset '
            f'{blocker.path} was refused or failed')
