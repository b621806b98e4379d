"""Bring results from a linked worktree home, subdatasets first"""

from __future__ import annotations

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
from datalad_next.runners import CommandError

from .mtimes import (
    MTIMES_PARAM,
    carry_from,
)
from .core import (
    WorktreeInterface,
    record,
    HIERARCHY_PARAMS,
    HIERARCHY_VALIDATORS,
    Node,
    Outcome,
    absolute_path,
    branch_name_problem,
    changed_paths,
    current_branch,
    git_error,
    git_lines,
    head_commit,
    integrate,
    lock_problem,
    is_repo_root,
    list_worktrees,
    max_depth,
    record_subdatasets,
    run_ordered,
    same_path,
    walk_hierarchy,
    worker_count,
)

ACTION = 'worktree-merge'
RECORD_MESSAGE = 'Record the subdatasets merged by worktree-merge'


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
    merged commits of its subdatasets. Where possible a dataset is
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

    One result is reported per dataset, with ``action='worktree-merge'``,
    ``path`` (the dataset merged into), ``source`` (the worktree dataset or
    branch merged), ``from_commit`` and ``to_commit``, ``how``
    ('fast-forward' or 'merge'), ``detached`` (True when merged onto a
    detached HEAD), and ``conflicts`` (paths) for refused merges.
    """

    _action_ = ACTION
    _summary_ = {
        'ok': 'merged',
        'notneeded': 'with nothing new',
        'impossible': 'refused',
        'error': 'failed',
    }
    _dry_run_ok_ = 'would be merged'

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

        def result(path, outcome: Outcome):
            return record(ACTION, path, top, outcome)

        source_root = absolute_path(Path(source), dataset)
        if source_root.exists():
            branch = None
            problem = worktree_source_problem(top, source_root)
        else:
            branch = source
            problem = branch_name_problem(top, branch)
            if problem:
                problem = (problem.split(';')[0] + '; and no worktree exists '
                           f'at {source_root}')
        if problem:
            yield result(top, Outcome('impossible', problem))
            return

        nodes = [n for n in walk_hierarchy(
            top, head_commit(top), max_depth(recursive, recursion_limit))]
        active = []
        for node in nodes:
            if node.problem:
                yield result(node.path, Outcome('impossible', node.problem))
            elif node.installed:
                active.append(node)
        tips = {n.relpath: branch_tip(n.path, branch)
                for n in active} if branch is not None else {}
        if branch is not None and not any(tips.values()):
            yield result(top, Outcome('impossible', (
                f'no dataset here has a branch {branch!r}, and no worktree '
                f'exists at {source_root}; give the path of a worktree or '
                'the name of a branch')))
            return
        children = {n.relpath: [] for n in active}
        for n in active:
            if n.depth and n.parent in children:
                children[n.parent].append(n)
        merged: set = set()

        def merge(node):
            where = node.at(source_root) if branch is None else None
            outcome = merge_dataset(
                node, where, branch, tips.get(node.relpath),
                [c for c in children[node.relpath] if c.relpath in merged],
                ff_only, message, dry_run, mtimes)
            if outcome.status == 'ok':
                merged.add(node.relpath)
            return outcome

        for node, outcome, blocker in run_ordered(
                active, lambda n: children[n.relpath], merge,
                worker_count(jobs), failed=lambda o: o.failed):
            if blocker:
                outcome = Outcome('impossible', (
                    f'not merged, because the merge into its subdataset '
                    f'{blocker.path} was refused or failed'))
            yield result(node.path, outcome)


def worktree_source_problem(top: Path, source_root: Path) -> str | None:
    """Why ``source_root`` is not a linked worktree of ``top``, or None"""
    if same_path(source_root, top):
        return f'{source_root} is the dataset itself; give another worktree'
    if not is_repo_root(source_root) or not same_repository(top, source_root):
        return (f'{source_root} is not a worktree of {top}; give the path of '
                'a worktree made by worktree-add, or a branch name')
    return None


def same_repository(a: Path, b: Path) -> bool:
    """Whether two working trees belong to the same repository"""
    def common(p):
        return git_lines(p, ['rev-parse', '--path-format=absolute',
                             '--git-common-dir'])[0]
    try:
        return same_path(Path(common(a)), Path(common(b)))
    except CommandError:
        return False


def merge_dataset(node: Node, where: Path | None, branch: str | None,
                  tip: str | None,
                  merged_children: list[Node], ff_only: bool,
                  message: str | None, dry_run: bool,
                  mtimes: bool = True) -> Outcome:
    """Merge one dataset's source into it, then record merged subdatasets
    and (with ``mtimes``) carry modification times from the source's
    worktree"""
    repo = node.path
    try:
        problem = lock_problem(repo)
        if problem:
            return Outcome('impossible', problem)
        found = source_of(repo, where, branch, tip)
        if isinstance(found, Outcome):
            return found
        commit, what = found
        keys = dict(source=what, detached=current_branch(repo) is None)
        outcome = integrate(
            repo, commit, what=f'{what} ({commit[:10]})', ff_only=ff_only,
            message=message or f'Merge results from {what} (worktree-merge)',
            subdatasets=merged_children, dry_run=dry_run,
            keep_untouched=True, keys=keys)
        if outcome.failed or dry_run:
            return outcome
        recorded = record_subdatasets(repo, merged_children, RECORD_MESSAGE)
        if recorded:
            outcome.keys['recorded'] = recorded
            outcome.keys['to_commit'] = head_commit(repo)
            outcome.message += ('; recorded the merged state of '
                                + ', '.join(recorded))
            outcome.status = 'ok'
        if keys['detached'] and outcome.status == 'ok':
            outcome.message += ' (on a detached HEAD)'
        if where is not None and changed_paths(where):
            outcome.message += (f'; note: {where} has uncommitted changes, '
                                'which were not merged')
        if mtimes:
            note = carry_from(where if branch is None
                              else branch_worktree(repo, branch), repo,
                              outcome.keys['to_commit'])
            if note:
                outcome.message += f'; {note}'
        return outcome
    except CommandError as e:
        return Outcome('error', f'git failed in {repo}: {git_error(e)}')


def source_of(repo: Path, where: Path | None, branch: str | None,
              tip: str | None
              ) -> tuple[str, str] | Outcome:
    """The commit to merge into ``repo`` and how to name it, or why none;
    ``tip`` is what ``branch``, if one is merged, points at in ``repo``"""
    if branch is not None:
        if tip is None:
            return Outcome('notneeded', f'no branch {branch!r} here')
        return tip, f'branch {branch}'
    if not is_repo_root(where):
        return Outcome('notneeded', f'no worktree of it at {where}')
    if not same_repository(repo, where):
        return Outcome('impossible', (
            f'{where} is not a worktree of {repo}; nothing was merged'))
    commit = head_commit(where)
    if commit is None:
        return Outcome('notneeded', f'{where} has no commit')
    return commit, str(where)


def branch_worktree(repo: Path, branch: str) -> Path | None:
    """Where ``branch`` is checked out in a worktree of ``repo``, or None"""
    ref = f'refs/heads/{branch}'
    return next((w.path for w in list_worktrees(repo)
                 if w.branch == ref and not w.prunable and
                 is_repo_root(w.path)), None)


def branch_tip(repo: Path, branch: str) -> str | None:
    """The commit of branch ``branch`` in ``repo``, or None if it has none"""
    try:
        return git_lines(repo, ['rev-parse', '--verify', '-q',
                                f'refs/heads/{branch}^{{commit}}'])[0]
    except CommandError:
        return None
