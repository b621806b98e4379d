"""Create a linked worktree of a dataset and of its installed subdatasets"""

from __future__ import annotations

from dataclasses import (
    dataclass,
    replace,
)
from enum import Enum
from pathlib import Path
from typing import Iterator

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
    EnsurePath,
    EnsureStr,
)
from datalad_next.runners import CommandError

from . import git
from .bindpaths import (
    ACTION as BINDPATHS_ACTION,
    bind_hierarchy,
)
from .envsetup import (
    ACTION as SETUP_ACTION,
    setup_outcome,
)
from .hierarchy import (
    Node,
    max_depth,
    walk_hierarchy,
)
from .interface import (
    BINDPATHS_PARAM,
    HIERARCHY_PARAMS,
    HIERARCHY_VALIDATORS,
    MTIMES_PARAM,
    SETUP_PARAM,
    WorktreeInterface,
    make_result,
)
from .mtimes import carrying
from .outcome import Outcome
from .paths import (
    absolute_path,
    redirected,
)
from .registry import (
    add_worktree,
    branch_locks,
    checked_out_at,
    existing_worktree_problem,
    find_worktree,
    list_worktrees,
    location_problem,
    lock_message,
)
from .repo import (
    branch_name_problem,
    has_annex_branch,
    head_commit,
    object_ids,
    uses_annex,
)
from .scheduler import run_ordered
from .settings import worker_count
from .sharedannex import repair_own_annex

ACTION = 'worktree-add'


class Todo(Enum):
    """What worktree-add does for one dataset"""
    CREATE = 'create'
    EXISTS = 'exists'
    """A matching worktree is there already (a rerun)"""
    SKIP = 'skip'
    """The subdataset is not installed"""
    REFUSE = 'refuse'


@dataclass(frozen=True)
class Plan:
    """What to do for one dataset: the outcome of the preflight"""
    node: Node
    root: Path
    """The new worktree of the top dataset"""
    branch: str | None
    """Branch to check out in the new worktree; None for a detached HEAD"""
    todo: Todo = Todo.CREATE
    new_branch: bool = False
    annex: bool = False
    """Whether the dataset uses git-annex (it has an initialized annex)"""
    reason: str = ''
    head: str = ''
    """Commit checked out in the new worktree, which its subdatasets follow:
    the node's commit, or what an existing worktree has checked out"""

    @property
    def target(self) -> Path:
        """Where this dataset's new worktree goes"""
        return self.node.at(self.root)

    def result(self, status: str, message: str, refds: Path, **keys) -> dict:
        """The result record of this dataset"""
        return make_result(ACTION, self.target, refds, Outcome(
            status, message, dict(source=str(self.node.path),
                                  branch=self.branch,
                                  commit=self.head or None, **keys)))


@build_doc
class WorktreeAdd(WorktreeInterface):
    """Create a linked worktree of a dataset and of its subdatasets

    A linked git worktree is a second working tree of the same repository:
    it shares all history and, for git-annex datasets, all annexed content
    with the dataset, but has a checkout, branch and index of its own.
    ``git worktree add`` makes one for a single repository and leaves any
    subdataset in it an empty directory. This command makes one for the
    dataset at PATH and, with [CMD: --recursive CMD][PY: recursive=True PY],
    one for every installed subdataset at the same relative location inside
    PATH, so the whole hierarchy can be used there at once: ``datalad run``,
    ``save`` and ``rerun`` work in it, and annexed files are readable without
    any ``datalad get``, because their content is shared.

    Each subdataset's worktree checks out the commit that its parent's new
    worktree records for it, exactly as a fresh ``datalad get`` would, not
    whatever the subdataset has checked out right now. Subdatasets that are
    not installed in the dataset are reported and left as empty mount points,
    as they are in the dataset itself.

    Every dataset's worktree is on the same branch: the one given with
    [CMD: --branch CMD][PY: branch PY], or, like git does, a branch named
    after PATH's last component. A missing branch is created at the commit
    to be checked out. An existing branch is used only if it points at that
    commit already: it may hold results that are not merged anywhere, so it
    is never moved. [CMD: --detach CMD][PY: detach=True PY] checks out
    detached HEADs instead.

    Before anything is created, every dataset is checked: PATH must not
    exist or be an empty directory, and must not lie inside a dataset's or
    any git working tree; the branch name must be valid and not be checked
    out in another worktree; an existing branch must point at the commit to
    be checked out; the commit must be present; git-annex must be
    initialized where a dataset uses it. If any check fails, nothing is
    created and every problem is reported. Running the same command again
    after an interruption creates only what is missing and reports matching
    worktrees that exist already as 'notneeded'.

    Where a dataset's containers use a bind substitution in their
    ``cmdexec`` ('{{worktree-binds-bwrap}}' or
    '{{worktree-binds-apptainer}}', with an empty default committed in
    '.datalad/config'), its new worktree gets that substitution set in its
    own git configuration: read-only bind mounts of the repository
    locations that the annexed files of the dataset and its subdatasets
    link to, so that ``datalad containers-run`` works there, while run
    records keep the placeholder and stay rerunnable anywhere. These are
    reported with ``action='worktree-bindpaths'``;
    [CMD: --no-bindpaths CMD][PY: bindpaths=False PY] turns this off.

    One result is reported per dataset, with ``action='worktree-add'``,
    ``type='dataset'``, ``path`` (the new worktree), ``source`` (the
    dataset it is a worktree of), ``branch`` (None when detached) and
    ``commit`` (the commit checked out).
    """

    _action_ = ACTION
    _summary_ = {
        'ok': 'created',
        'notneeded': 'not needed (present already or not installed)',
        'impossible': 'refused',
        'error': 'failed',
    }
    _dry_run_ok_ = 'would be created'

    _params_ = dict(
        **HIERARCHY_PARAMS,
        path=Parameter(
            args=('path',),
            metavar='PATH',
            doc="""where to create the worktree of the dataset: a location
            outside of any dataset that either does not exist or is an empty
            directory."""),
        dataset=Parameter(
            args=('-d', '--dataset'),
            metavar='DATASET',
            doc="""dataset to create a worktree of. If not given, the
            dataset that contains the current directory."""),
        branch=Parameter(
            args=('-b', '--branch'),
            metavar='BRANCH',
            doc="""branch to check out in every dataset's worktree. It is
            created where it does not exist, at the commit to be checked
            out. Default: the last component of PATH."""),
        detach=Parameter(
            args=('--detach',),
            action='store_true',
            doc="""check out detached HEADs instead of a branch."""),
        dry_run=Parameter(
            args=('--dry-run',),
            action='store_true',
            doc="""check everything and report what would be created, but
            create nothing."""),
        mtimes=MTIMES_PARAM,
        setup=SETUP_PARAM,
        bindpaths=BINDPATHS_PARAM,
    )

    _validator_ = EnsureCommandParameterization(
        dict(
            path=EnsurePath(),
            dataset=EnsureDataset(installed=True,
                                  purpose='create a worktree of it'),
            branch=EnsureStr(min_len=1),
            detach=EnsureBool(),
            **HIERARCHY_VALIDATORS,
            dry_run=EnsureBool(),
            mtimes=EnsureBool(),
            setup=EnsureBool(),
            bindpaths=EnsureBool(),
        ),
        validate_defaults=('dataset',),
    )

    _examples_ = [
        dict(text="Create a worktree of the current dataset and all its "
                  "installed subdatasets on a new branch 'runs'",
             code_py="worktree_add('../runs', recursive=True)",
             code_cmd="datalad worktree-add -r ../runs"),
        dict(text="Check what would be created, on a branch named 'batch1'",
             code_py="worktree_add('../wt', branch='batch1', recursive=True, "
                     "dry_run=True)",
             code_cmd="datalad worktree-add -r -b batch1 --dry-run ../wt"),
        dict(text="Use four parallel jobs for a large hierarchy",
             code_py="worktree_add('../runs', recursive=True, jobs=4)",
             code_cmd="datalad worktree-add -r -J 4 ../runs"),
    ]

    @staticmethod
    @datasetmethod(name='worktree_add')
    @eval_results
    def __call__(
            path,
            *,
            dataset=None,
            branch=None,
            detach=False,
            recursive=False,
            recursion_limit=None,
            jobs=None,
            dry_run=False,
            mtimes=True,
            setup=None,
            bindpaths=True,
    ):
        top = dataset.ds.pathobj
        target = absolute_path(path, dataset)
        if not detach:
            branch = branch or target.name
        head = head_commit(top)
        problem = request_problem(top, target, branch, detach, head)
        if problem:
            yield make_result(ACTION, target, top, Outcome(
                'impossible', problem, dict(source=str(top))))
            return
        plans = plan_hierarchy(top, head, target, branch,
                               max_depth(recursive, recursion_limit))
        refused = [p for p in plans if p.todo is Todo.REFUSE]
        for p in refused or plans:
            if p.todo is not Todo.CREATE:
                yield p.result('impossible' if refused else 'notneeded',
                               p.reason, top)
            elif dry_run:
                yield p.result('ok', f'would {checkout_phrase(p)}', top,
                               dry_run=True)
        if refused or dry_run:
            return
        created = []
        for plan, error in create_worktrees(plans, worker_count(jobs),
                                            mtimes):
            if not error:
                created.append(plan)
            yield plan.result('error', error, top) if error else \
                plan.result('ok', checkout_phrase(plan, done=True), top)
        if bindpaths:
            for plan, outcome in bind_outcomes(plans, created):
                yield make_result(BINDPATHS_ACTION, plan.target, top, outcome)
        # set up environments once the whole hierarchy is there
        for plan in sorted(created, key=plans.index):
            outcome = setup_outcome(plan.target, setup, lambda s: True)
            if outcome:
                yield make_result(SETUP_ACTION, plan.target, top, outcome)


def request_problem(top: Path, target: Path, branch: str | None,
                    detach: bool, head: str | None) -> str | None:
    """Why the request as given cannot be carried out, or None"""
    if branch is not None and detach:
        return 'give either --branch or --detach, not both'
    problem = (branch is not None and branch_name_problem(top, branch)) or \
        location_problem(target, top)
    if problem or head:
        return problem
    return f'{top} has no commit yet; save something first'


def plan_hierarchy(top: Path, head: str, target: Path, branch: str | None,
                   depth: int | None) -> list[Plan]:
    """The preflight of every dataset, parents first; a subdataset follows
    the commit its parent's worktree will have checked out"""
    plans: dict = {}
    for node in walk_hierarchy(top, head, depth,
                               lambda n: plans[n.relpath].head):
        plans[node.relpath] = preflight(node, target, branch)
    return list(plans.values())


def preflight(node: Node, target_root: Path, branch: str | None) -> Plan:
    """Check one dataset and decide what to do, changing nothing"""
    plan = Plan(node=node, root=target_root, branch=branch, head=node.commit)
    if node.problem:
        return refuse(plan, node.problem)
    if not node.installed:
        return replace(plan, todo=Todo.SKIP, reason=(
            'subdataset not installed in the dataset; left as an empty '
            'mount point'))
    repo = node.path
    try:
        commit, tip = object_ids(repo, [f'{node.commit}^{{commit}}',
                                        f'refs/heads/{branch or "HEAD"}'])
        annex = has_annex_branch(repo)
        worktrees = list_worktrees(repo)
    except CommandError as e:
        return refuse(plan, f'cannot inspect {repo}: {git.error_line(e)}')
    if not commit:
        return refuse(plan, (
            f'commit {node.commit[:10]} recorded for {node.relpath} is not '
            f'present in {repo}; update that subdataset first '
            f"(e.g. 'datalad update --how ff-only -d {repo}')"))
    plan = replace(plan, annex=annex)
    if annex and not uses_annex(repo):
        return refuse(plan, (
            f'{repo} has a git-annex branch but git-annex is not '
            f"initialized there; run 'git -C {repo} annex init' first"))
    locks = branch_locks(repo, branch) if branch else []
    if locks:
        return refuse(plan, lock_message(repo, locks))
    target = plan.target
    existing = find_worktree(worktrees, target)
    if existing is not None:
        problem = existing_worktree_problem(existing, repo, target, branch)
        return refuse(plan, problem) if problem else replace(
            plan, todo=Todo.EXISTS, head=existing.head, reason=(
                'a matching worktree exists already, at '
                f'{existing.head[:10]}'))
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        return refuse(plan, f'{target} exists and is not an empty directory')
    if branch is None:
        return plan
    if tip is None:
        return replace(plan, new_branch=True)
    if tip != node.commit:
        return refuse(plan, (
            f'branch {branch!r} exists in {repo} at {tip[:10]}, not at the '
            f'commit to check out, {node.commit[:10]}; it is left untouched '
            'because it may hold unmerged work: choose another --branch, '
            'or merge or delete it first'))
    elsewhere = checked_out_at(worktrees, branch)
    if elsewhere:
        return refuse(plan, (f'branch {branch!r} of {repo} is already '
                             f'checked out at {elsewhere}'))
    return plan


def refuse(plan: Plan, reason: str) -> Plan:
    return replace(plan, todo=Todo.REFUSE, reason=reason)


def checkout_phrase(plan: Plan, done: bool = False) -> str:
    """One phrase saying what is (or would be) checked out"""
    commit = plan.node.commit[:10]
    if plan.branch is None:
        what = f'detached HEAD at {commit}'
    elif plan.new_branch:
        what = f'new branch {plan.branch} at {commit}'
    else:
        what = f'branch {plan.branch} at {commit}'
    return f'checked out {what}' if done else f'create worktree, {what}'


def bind_outcomes(plans: list[Plan], created: list[Plan]
                  ) -> Iterator[tuple[Plan, Outcome]]:
    """Configure container bind paths in the worktrees that are there now
    (see ``bindpaths.bind_hierarchy``); report containers that cannot use
    them in the worktrees just created"""
    present = {p.node.relpath: p for p in plans
               if p in created or p.todo is Todo.EXISTS}
    for relpath, outcome in bind_hierarchy(
            {rel: p.target for rel, p in present.items()},
            {p.node.relpath for p in created}):
        yield present[relpath], outcome


def create_worktrees(plans: list[Plan], workers: int, mtimes: bool = True
                     ) -> Iterator[tuple[Plan, str | None]]:
    """Create the planned worktrees, each parent before its children, up
    to ``workers`` at the same time; yields each plan to create, and each
    existing worktree whose annex link failed to be repaired, with an error
    or None. When a parent fails, its subdatasets are not attempted. With
    ``mtimes``, modification times are carried into each new worktree."""
    wanted = [p for p in plans if p.todo in (Todo.CREATE, Todo.EXISTS)]
    by_path = {p.node.relpath: p for p in wanted}

    def parent(plan):
        return [by_path[plan.node.parent]] if plan.node.depth else []

    with carrying(mtimes, workers) as carry:
        for plan, error, blocker in run_ordered(
                wanted, parent, lambda p: create(p, carry), workers):
            if blocker:
                error = (f'not created: the worktree of {blocker.target} '
                         'could not be created')
            if plan.todo is Todo.CREATE or (error and not blocker):
                yield plan, error


def create(plan: Plan, carry=None) -> str | None:
    """Make one planned worktree and hand it to ``carry`` (see
    ``mtimes.carrying``), or repair an existing one's annex; error or None"""
    if plan.todo is Todo.EXISTS:
        return repair_own_annex(plan.target) if plan.annex else None
    node, target = plan.node, plan.target
    if redirected(plan.root, node.relpath):
        return (f'refusing {target}: a symbolic link on its path leads '
                'elsewhere')
    problem = add_worktree(node.path, target, node.commit, plan.branch,
                           plan.new_branch, plan.annex)
    if problem is None and carry:
        carry(node.path, target, node.commit, plan.annex)
    return problem
