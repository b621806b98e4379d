"""Bring results from a linked worktree home, subdatasets first"""

from __future__ import annotations

from dataclasses import dataclass
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
    EnsureStr,
)

from .clones import (
    clone_refusal,
    is_separate_clone,
    unique_holdings,
)
from .hierarchy import (
    Node,
    children_of,
    max_depth,
    walk_hierarchy,
)
from .integrate import (
    integrate,
    record_pointers,
    settled_subdatasets,
)
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
from .mtimes import carry_from
from .outcome import Outcome
from .paths import (
    absolute_path,
    same_path,
)
from .registry import (
    adjusted_problem,
    list_worktrees,
    lock_problem,
)
from .repo import (
    branch_name_problem,
    branch_tip,
    changed_paths,
    current_branch,
    head_commit,
    is_repo_root,
    same_repository,
)
from .settings import worker_count
from .sharedannex import repair_own_annex

ACTION = 'worktree-merge'
POINTER_MESSAGE = 'Record the subdatasets merged by worktree-merge'


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
    """

    _params_ = dict(
        source=Parameter(
            args=('source',),
            metavar='SOURCE',
            doc="""a linked worktree of DATASET (each dataset in it
            contributes its checked-out commit) or a branch name."""),
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
            source=EnsureStr(min_len=1),
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
        source_root = absolute_path(Path(source), dataset)
        branch = None if source_root.exists() else source
        problem = tools_problem(top) or \
            source_problem(top, source_root, branch)
        if problem:
            yield make_result(ACTION, top, top, Outcome('impossible', problem))
            return
        skipped, active = split_hierarchy(walk_hierarchy(
            top, head_commit(top), max_depth(recursive, recursion_limit)))
        for node in skipped:
            if node.problem:
                yield make_result(ACTION, node.path, top,
                                  Outcome('impossible', node.problem))
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
                    merged),
                ff_only, message, dry_run, mtimes)
            if outcome.status == 'ok':
                merged.add(node)
            return outcome

        for node, outcome in bottom_up(
                active, merge, worker_count(jobs),
                lambda blocker: (f'not merged, because the merge into its '
                                 f'subdataset {blocker.path} was refused or '
                                 'failed'), ACTION):
            yield make_result(ACTION, node.path, top, outcome)


def source_problem(top: Path, source_root: Path, branch: str | None
                   ) -> str | None:
    """Why SOURCE (the worktree ``source_root``, or ``branch`` where no
    such path exists) cannot be merged into ``top``, or None"""
    if branch is None:
        return worktree_source_problem(top, source_root)
    problem = branch_name_problem(top, branch)
    if problem:
        return (problem.split(';')[0] + '; and no worktree exists '
                f'at {source_root}')
    return None


def worktree_source_problem(top: Path, source_root: Path) -> str | None:
    """Why ``source_root`` is not a linked worktree of ``top``, or None"""
    if same_path(source_root, top):
        return f'{source_root} is the dataset itself; give another worktree'
    if not is_repo_root(source_root) or not same_repository(top, source_root):
        return (f'{source_root} is not a worktree of {top}; give the path of '
                'a worktree made by worktree-add, or a branch name')
    if same_path(list_worktrees(top)[0].path, source_root):
        return (f'{source_root} is the main worktree and {top} a linked '
                'worktree of it: this would merge the wrong way round. To '
                "bring the worktree's results home, run 'datalad "
                f"worktree-merge -d {source_root} {top}'; to bring the "
                "development state into the worktree, run 'datalad "
                f"worktree-sync -d {top}'")
    return None


@dataclass(frozen=True)
class MergeSource:
    """What one dataset merges, found before anything is merged"""
    name: str
    """How results name it: 'branch NAME', or the worktree's path"""
    branch: str | None = None
    """The branch merged, when SOURCE is a branch name"""
    commit: str | None = None
    """The commit to merge; None when there is nothing to merge"""
    worktree: Path | None = None
    """The dataset's place in the source worktree, when SOURCE is one"""
    nothing: tuple[str, str] | None = None
    """Status and message of the result when nothing is merged"""

    @classmethod
    def find(cls, node: Node, source_root: Path, branch: str | None
             ) -> MergeSource:
        """The source of ``node``: its ``branch``, or else its place in
        the worktree ``source_root``"""
        repo = node.path
        if branch is not None:
            tip = branch_tip(repo, branch)
            return cls(f'branch {branch}', branch, tip, nothing=(
                None if tip else ('notneeded', f'no branch {branch!r} here')))
        where = node.at(source_root)
        name = str(where)
        if not is_repo_root(where):
            return cls(name, worktree=where, nothing=(
                'notneeded', f'no worktree of it at {where}'))
        if node.depth and is_separate_clone(where, repo):
            return cls.clone(node, where)
        if not same_repository(repo, where):
            return cls(name, worktree=where, nothing=(
                'impossible',
                f'{where} is not a worktree of {repo}; nothing was merged'))
        commit = head_commit(where)
        return cls(name, commit=commit, worktree=where, nothing=(
            None if commit else ('notneeded', f'{where} has no commit')))

    @classmethod
    def clone(cls, node: Node, where: Path) -> MergeSource:
        """The source of ``node`` where the source worktree has a separate
        clone of it: its checked-out commit, if this dataset has all the
        clone's commits and annexed content already; else nothing, refused
        with what brings them here"""
        holdings = unique_holdings(where, node.path, files=False)
        if holdings:
            return cls(str(where), nothing=('impossible', clone_refusal(
                where, node.path, holdings, 'run this again')
                + '; nothing was merged'))
        return cls(f'{where} (a separate clone)', commit=head_commit(where))


def merge_dataset(node: Node, source: MergeSource,
                  settled: list[Node], ff_only: bool,
                  message: str | None, dry_run: bool,
                  mtimes: bool) -> Outcome:
    """Merge one dataset's source into it, then record merged subdatasets
    and (with ``mtimes``) carry modification times from the source's
    worktree"""
    repo = node.path
    if not node.installed:
        return Outcome(*source.nothing)
    problem = lock_problem(repo) or adjusted_problem(repo)
    if problem:
        return Outcome('impossible', problem)
    if source.nothing:
        return Outcome(*source.nothing)
    problem = adjusted_problem(source.worktree) if source.worktree \
        else None
    problem = problem or (source.worktree and
                          repair_own_annex(source.worktree, dry_run))
    if problem:
        # its annexed results would not be readable here
        return Outcome('impossible', problem)
    commit, what = source.commit, source.name
    keys = dict(source=what, detached=current_branch(repo) is None)
    outcome = integrate(
        repo, commit, what=f'{what} ({commit[:10]})', ff_only=ff_only,
        message=message or f'Merge results from {what} (worktree-merge)',
        subdatasets=settled, dry_run=dry_run,
        keep_untouched=True, keys=keys)
    if outcome.failed or dry_run:
        return outcome
    record_pointers(repo, settled, POINTER_MESSAGE, outcome, 'merged')
    if keys['detached'] and outcome.status == 'ok':
        outcome.message += ' (on a detached HEAD)'
    where = source.worktree
    if where is not None and changed_paths(where):
        outcome.message += (f'; note: {where} has uncommitted changes, '
                            'which were not merged')
    if mtimes and outcome.keys['to_commit'] != outcome.keys['from_commit']:
        note = carry_from(
            where if source.branch is None
            else branch_worktree(repo, source.branch),
            repo, outcome.keys['to_commit'])
        if note:
            outcome.message += f'; {note}'
    return outcome


def branch_worktree(repo: Path, branch: str) -> Path | None:
    """Where ``branch`` is checked out in a worktree of ``repo``, or None"""
    ref = f'refs/heads/{branch}'
    return next((w.path for w in list_worktrees(repo)
                 if w.branch == ref and not w.prunable and
                 is_repo_root(w.path)), None)
