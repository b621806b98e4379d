"""Provisioning: plan and make the linked worktrees of a hierarchy

``worktree-add`` makes a nested worktree with this, and ``worktree-sync``
adds the worktrees of subdatasets that were installed after the worktree
was made. Every dataset is checked first (``preflight``), changing
nothing; worktrees are then made parents first.
"""

from __future__ import annotations

from dataclasses import (
    dataclass,
    replace,
)
from enum import Enum
from pathlib import Path
from typing import Iterator

from .clones import (
    is_separate_clone,
    replace_advice,
)
from .hierarchy import (
    Node,
    walk_hierarchy,
)
from .mtimes import carrying
from .outcome import (
    Outcome,
    failure,
)
from .paths import redirected
from .registry import (
    add_worktree,
    adjusted_problem,
    branch_locks,
    checked_out_at,
    existing_worktree_problem,
    find_worktree,
    list_worktrees,
    lock_message,
)
from .records import has_commit
from .repo import (
    branch_tip,
    has_annex_branch,
    is_ancestor,
    uses_annex,
)
from .scheduler import (
    progress,
    run_ordered,
)
from .sharedannex import repair_own_annex
from .sparse import (
    Cone,
    cone_at,
    cone_of,
    cone_problem,
    in_cone,
)


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
    moved_from: str = ''
    """Where an existing branch that the commit to check out contains is
    (a fully merged one): it is moved forward to that commit"""
    head: str = ''
    """Commit checked out in the new worktree, which its subdatasets follow:
    the node's commit, or what an existing worktree has checked out"""
    cone: Cone | None = None
    """The directories of a sparse checkout, None for a full one"""

    @property
    def target(self) -> Path:
        """Where this dataset's new worktree goes"""
        return self.node.at(self.root)

    def outcome(self, status: str, message: str, **keys) -> Outcome:
        """The outcome for this dataset, with the keys of its result:
        ``source``, ``branch`` and ``commit``"""
        if self.cone is not None:
            keys['sparse'] = list(self.cone)
        return Outcome(status, message, dict(
            source=str(self.node.path), branch=self.branch,
            commit=self.head or None, **keys))


def plan_hierarchy(top: Path, head: str, target: Path, branch: str | None,
                   depth: int | None, cone: Cone | None = None
                   ) -> list[Plan]:
    """The preflight of every dataset, parents first; a subdataset follows
    the commit its parent's worktree will have checked out. With ``cone``
    (of the top dataset), only the datasets that hold or lie in its
    directories are planned (see ``sparse``)."""
    plans: dict = {}
    with progress('checking datasets', None) as done:
        for node in walk_hierarchy(
                top, head, depth, lambda n: plans[n.relpath].head,
                lambda relpath: in_cone(relpath.as_posix(), cone)):
            plans[node.relpath] = preflight(
                node, target, branch, cone_at(node.relpath, cone))
            done()
    return list(plans.values())


def preflight(node: Node, target_root: Path, branch: str | None,
              cone: Cone | None = None) -> Plan:
    """Check one dataset and decide what to do, changing nothing"""
    plan = Plan(node=node, root=target_root, branch=branch, head=node.commit,
                cone=cone)
    if node.problem:
        return refuse(plan, node.problem)
    if not node.installed and cone is not None:
        return refuse(plan, (
            f'--sparse: a directory asked for lies in the subdataset '
            f'{node.relpath}, which is not installed in the dataset; '
            f"install it first ('datalad get -n -d {node.top} "
            f"{node.relpath}')"))
    if not node.installed:
        return replace(plan, todo=Todo.SKIP, reason=(
            'subdataset not installed in the dataset; left as an empty '
            'mount point'))
    repo = node.path
    try:
        present = has_commit(repo, node.commit)
        tip = branch_tip(repo, branch) if branch else None
        annex = has_annex_branch(repo)
        worktrees = list_worktrees(repo)
    except Exception as e:
        return refuse(plan, failure(repo, e, f'cannot inspect {repo}').message)
    if not present:
        return refuse(plan, (
            f'commit {node.commit[:10]} recorded for {node.relpath} is not '
            f'present in {repo}; update that subdataset first '
            f"(e.g. 'datalad update --how ff-only -d {repo}')"))
    problem = cone and cone_problem(repo, node.commit, cone)
    if problem:
        return refuse(plan, problem)
    plan = replace(plan, annex=annex)
    if annex and not uses_annex(repo):
        return refuse(plan, (
            f'{repo} has a git-annex branch but git-annex is not '
            f"initialized there; run 'git -C {repo} annex init' first"))
    locks = branch_locks(repo, branch) if branch else []
    problem = lock_message(repo, locks) or adjusted_problem(repo)
    if problem:
        return refuse(plan, problem)
    target = plan.target
    existing = find_worktree(worktrees, target)
    if existing is not None:
        problem = existing_worktree_problem(existing, repo, target, branch,
                                            node.top, target_root) or \
            other_cone_problem(target, cone)
        return refuse(plan, problem) if problem else replace(
            plan, todo=Todo.EXISTS, head=existing.head, reason=(
                'a matching worktree exists already, at '
                f'{existing.head[:10]}'))
    if node.depth and is_separate_clone(target, repo):
        return refuse(plan, replace_advice(target, repo, target_root))
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        return refuse(plan, f'{target} exists and is not an empty directory')
    if branch is None:
        return plan
    if tip is None:
        return replace(plan, new_branch=True)
    if tip != node.commit and not is_ancestor(repo, tip, node.commit):
        return refuse(plan, (
            f'branch {branch!r} exists in {repo} at {tip[:10]}, with commits '
            f'that the commit to check out, {node.commit[:10]}, does not '
            'contain; it is left untouched because it may hold unmerged '
            'work: choose another --branch, or merge or delete it first'))
    elsewhere = checked_out_at(worktrees, branch)
    if elsewhere:
        return refuse(plan, (f'branch {branch!r} of {repo} is already '
                             f'checked out at {elsewhere}'))
    return replace(plan, moved_from=tip if tip != node.commit else '')


def other_cone_problem(target: Path, cone: Cone | None) -> str | None:
    """Why the existing worktree at ``target`` does not have the sparse
    checkout of ``cone`` asked for (None: a full one), or None"""
    found = cone_of(target)
    if found == cone:
        return None
    have = f'sparse to {", ".join(found)}' if found is not None else 'full'
    want = f'sparse to {", ".join(cone)}' if cone is not None else 'full'
    return (f'{target} is a worktree already, but {have}, not {want} as '
            'asked; remove it first, or ask for what it has')


def refuse(plan: Plan, reason: str) -> Plan:
    return replace(plan, todo=Todo.REFUSE, reason=reason)


def checkout_phrase(plan: Plan, done: bool = False) -> str:
    """One phrase saying what is (or would be) checked out"""
    commit = plan.node.commit[:10]
    if plan.branch is None:
        what = f'detached HEAD at {commit}'
    elif plan.new_branch:
        what = f'new branch {plan.branch} at {commit}'
    elif plan.moved_from:
        what = (f'branch {plan.branch} at {commit}, '
                f'{"moved" if done else "moving"} it forward from '
                f'{plan.moved_from[:10]}')
    else:
        what = f'branch {plan.branch} at {commit}'
    if plan.cone is not None:
        what += f', sparse to {", ".join(plan.cone)}'
    return f'checked out {what}' if done else f'create worktree, {what}'


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

    def guarded_create(plan):
        try:
            return create(plan, carry)
        except Exception as e:
            return failure(plan.target, e).message

    with carrying(mtimes, workers) as carry, progress(
            'creating worktrees', len(wanted)) as done:
        for plan, error, blocker in run_ordered(
                wanted, parent, guarded_create, workers):
            done()
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
                           plan.new_branch, plan.annex, plan.moved_from,
                           plan.cone)
    if problem is None and carry:
        carry(node.path, target, node.commit, plan.annex, plan.cone)
    return problem
