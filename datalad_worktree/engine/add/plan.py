"""Plan the linked worktrees of a hierarchy (the first half of ``worktree-add``)

The request as a whole is checked first (``plan_add``: the PATH, the
branch name, the ``--sparse`` PATHs), then every dataset (``preflight``),
changing nothing, and what to do for each is decided: create, exists
already (a rerun), skip, or refuse, with why. ``make`` carries the plan
out. ``worktree-sync`` and ``worktree-get`` plan the worktrees of
subdatasets a linked worktree lacks in the same way (``plan_hierarchy``).
"""

from __future__ import annotations

from dataclasses import (
    dataclass,
    replace,
)
from enum import Enum
from pathlib import Path

from datalad_worktree.base.advice import command, flag, option
from datalad_worktree.base.outcome import Outcome, Problem, Refusal, failure
from datalad_worktree.base.paths import is_within
from datalad_worktree.engine.progress import progress
from datalad_worktree.engine.recover import live_maker, recover
from datalad_worktree.hierarchy.clones import is_separate_clone, replace_advice
from datalad_worktree.hierarchy.cones import (
    cone_at,
    cone_problem,
    in_cone,
    sparse_paths,
)
from datalad_worktree.hierarchy.walk import (
    Node,
    removed_since,
    subdataset_pointers,
    walk_hierarchy,
)
from datalad_worktree.repo.annex import has_annex_branch, uses_annex
from datalad_worktree.repo.queries import (
    adjusted_problem,
    branch_name_problem,
    branch_tip,
    head_commit,
    is_ancestor,
    is_repo_root,
    remotes,
    resolve_commit,
    revision_problem,
    toplevel,
)
from datalad_worktree.repo.records import has_commit
from datalad_worktree.repo.sparse_checkout import Cone, cone_of
from datalad_worktree.repo.store.refs import git_dirs
from datalad_worktree.repo.worktrees import (
    Worktree,
    checked_out_at,
    find_worktree,
    list_worktrees,
)
from datalad_worktree.runners import tools
from datalad_worktree.runners.locks import branch_locks, lock_message


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
    """Why it is refused, exists or is left out"""
    refusal: Refusal | None = None
    """The code of a refusal"""
    moved_from: str = ''
    """Where an existing branch that the commit to check out contains is
    (a fully merged one): it is moved forward to that commit"""
    head: str = ''
    """Commit checked out in the new worktree, which its subdatasets follow:
    the node's commit, or what an existing worktree has checked out"""
    cone: Cone | None = None
    """The directories of a sparse checkout, None for a full one"""
    made_from: str | None = None
    """The COMMIT-ISH of the top dataset asked for (None: its HEAD)"""

    @property
    def target(self) -> Path:
        """Where this dataset's new worktree goes"""
        return self.node.at(self.root)

    @property
    def keys(self) -> dict:
        """The keys of this dataset's result: ``source``, ``branch`` and
        ``commit``, and ``sparse`` for a sparse worktree"""
        keys = dict(source=str(self.node.path), branch=self.branch,
                    commit=self.head or None)
        if self.cone is not None:
            keys['sparse'] = list(self.cone)
        if self.made_from is not None:
            keys['revision'] = self.made_from
        return keys

    def outcome(self, status: str, message: str, **keys) -> Outcome:
        """The outcome for this dataset, with the keys of its result (see
        ``keys``); an 'impossible' one is this plan's refusal"""
        return Outcome(status, message, dict(self.keys, **keys),
                       self.refusal if status == 'impossible' else None)

    def reported(self, outcome: Outcome) -> Outcome:
        """``outcome`` (of making this plan's worktree) with the keys of
        this dataset's result"""
        return replace(outcome, keys=dict(self.keys, **outcome.keys))


@dataclass(frozen=True)
class AddPlan:
    """Everything ``worktree-add`` is to do, decided before anything is
    made: the plan of each dataset, or why the request as a whole cannot
    be carried out"""
    top: Path
    target: Path
    """Where the worktree of the top dataset goes"""
    plans: tuple[Plan, ...] = ()
    refusal: Outcome | None = None
    """Why nothing at all is done (reported for ``target``), if so"""
    left_out: str = ''
    """A note, for the top dataset's result, naming the installed
    subdatasets that a worktree without ``--recursive`` leaves out"""


def plan_add(top: Path, target: Path, branch: str | None,
             depth: int | None, sparse: list[str] | None,
             note_left_out: bool, revision: str | None = None) -> AddPlan:
    """The plan of making the worktree ``target`` of the dataset ``top``
    and of its subdatasets down to ``depth`` (None: all) on ``branch``
    (None: detached HEADs), sparse to the PATHs ``sparse`` where given;
    with ``note_left_out``, naming the installed subdatasets it leaves
    out. ``revision`` (a COMMIT-ISH of ``top``; None: its HEAD) is the
    state to check out: every subdataset follows what it records."""
    problem = revision_refusal(top, revision)
    if problem:
        return AddPlan(top, target, refusal=problem.outcome(dict(
            source=str(top), revision=revision)))
    head = head_commit(top) if revision is None else \
        resolve_commit(top, revision)
    cone, problems = (None, []) if sparse is None else sparse_paths(sparse)
    problem = Problem(Refusal.SPARSE_PATH, '; '.join(problems)) \
        if problems else request_problem(top, target, branch, head)
    if problem:
        return AddPlan(top, target,
                       refusal=problem.outcome(dict(source=str(top))))
    plans = plan_hierarchy(top, head, target, branch, depth, cone)
    if revision is not None:
        plans = [replace(p, made_from=revision) for p in plans]
    missing = tools.tools_problem(annex=True) \
        if any(p.annex for p in plans) else None
    if missing:
        return AddPlan(top, target, refusal=Outcome.refused(
            Refusal.TOOLS, missing, dict(source=str(top))))
    return AddPlan(top, target, tuple(plans), left_out=left_out_note(
        top, head) if note_left_out else '')


def revision_refusal(top: Path, revision: str | None) -> Problem | None:
    """Why the COMMIT-ISH ``revision`` names no commit of ``top`` to check
    out (one that looks like an option is never asked of git), or None"""
    if revision is None:
        return None
    problem = revision_problem(revision)
    if problem:
        return Problem(Refusal.BAD_REVISION, f'{problem}; nothing was done')
    if resolve_commit(top, revision) is None:
        return Problem(Refusal.UNKNOWN_REVISION, (
            f'unknown revision {revision!r}: it names no commit of {top} '
            f"(see 'git -C {top} log --oneline --all' and 'git -C {top} "
            "tag' for what it has; a commit made elsewhere must be "
            'fetched first); nothing was done'))
    return None


def request_problem(top: Path, target: Path, branch: str | None,
                    head: str | None) -> Problem | None:
    """Why the request as given cannot be carried out, or None: git does
    not take ``branch`` as a branch name (given, the command's validation
    checked it already; made from PATH, not), the place ``target``, or
    ``top`` has no commit"""
    problem = branch_name_problem(top, branch) if branch is not None \
        else None
    if problem:
        return Problem(Refusal.BAD_BRANCH, problem)
    problem = location_problem(target, top)
    if problem:
        return Problem(Refusal.BAD_PATH, problem)
    if head is None:
        return Problem(Refusal.NO_COMMIT,
                       f'{top} has no commit yet; save something first')
    return None


def left_out_note(top: Path, head: str) -> str:
    """A note naming the installed subdatasets of ``top`` that a worktree
    without --recursive leaves as empty directories, or ''"""
    installed = [p for p, sha in subdataset_pointers(top, head)
                 if sha and is_repo_root(top / p)]
    if not installed:
        return ''
    shown = ', '.join(installed[:3]) + (', ...' if len(installed) > 3
                                        else '')
    return (f'; its {len(installed)} installed subdataset(s) ({shown}) are '
            f'left out as empty directories: give {option("recursive")} to '
            'include them (running it again adds only what is missing)')


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
        return refuse(plan, Refusal.NOT_INSTALLED, (
            f'{flag("sparse")}: a directory asked for lies in the subdataset '
            f'{node.relpath}, which is not installed in the dataset; '
            f"install it first ('datalad get -n -d {node.top} "
            f"{node.relpath}')"))
    if not node.installed:
        return replace(plan, todo=Todo.SKIP, reason=not_installed_reason(
            node, target_root))
    repo = node.path
    # the one change before the plan: what a dead run of ours left there
    recover(repo)
    try:
        present = has_commit(repo, node.commit)
        tip = branch_tip(repo, branch) if branch else None
        annex = has_annex_branch(repo)
        worktrees = list_worktrees(repo)
    except Exception as e:
        return refuse(plan, Refusal.CANNOT_INSPECT,
                      failure(repo, e, f'cannot inspect {repo}').message)
    if not present:
        return refuse(plan, Refusal.MISSING_COMMIT,
                      missing_commit_message(node))
    problem = cone_problem(repo, node.commit, cone) if cone else None
    if problem:
        return refuse(plan, Refusal.SPARSE_PATH, problem)
    plan = replace(plan, annex=annex)
    if annex and not uses_annex(repo):
        return refuse(plan, Refusal.ANNEX_UNINITIALIZED, (
            f'{repo} has a git-annex branch but git-annex is not '
            f"initialized there; run 'git -C {repo} annex init' first"))
    locks = branch_locks(git_dirs(repo)[1], branch) if branch else []
    problem = lock_message(repo, locks)
    if problem:
        return refuse(plan, Refusal.LOCK_FILES, problem)
    problem = adjusted_problem(repo)
    if problem:
        return refuse(plan, Refusal.ADJUSTED_BRANCH, problem)
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
        return refuse(plan, Refusal.SEPARATE_CLONE,
                      replace_advice(target, repo, target_root))
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        return refuse(plan, Refusal.EXISTS,
                      f'{target} exists and is not an empty directory')
    if branch is None:
        return plan
    if tip is None:
        return replace(plan, new_branch=True)
    if tip != node.commit and not is_ancestor(repo, tip, node.commit):
        return refuse(plan, Refusal.UNMERGED_COMMITS, (
            f'branch {branch!r} exists in {repo} at {tip[:10]}, with commits '
            f'that the commit to check out, {node.commit[:10]}, does not '
            'contain; it is left untouched because it may hold unmerged '
            f'work: choose another {flag("branch")}, or merge or delete it '
            'first'))
    elsewhere = checked_out_at(worktrees, branch)
    if elsewhere:
        return refuse(plan, Refusal.BRANCH_IN_USE, (
            f'branch {branch!r} of {repo} is already checked out at '
            f'{elsewhere}'))
    return replace(plan, moved_from=tip if tip != node.commit else '')


def not_installed_reason(node: Node, root: Path) -> str:
    """Why the subdataset ``node`` (not installed in the dataset) is left
    as an empty mount point in the worktree ``root``, and the
    ``worktree-get`` call that gets it: it installs it in the dataset
    first, or, where the dataset no longer has it (a subdataset of a past
    state, removed since), clones it into the worktree"""
    get = command('worktree-get', str(node.at(root)), dataset=str(root))
    if not removed_since(node):
        return ('subdataset not installed in the dataset; left as an '
                f"empty mount point (get it with '{get}', which installs "
                'it in the dataset first)')
    return ('the dataset no longer has this subdataset (it was removed '
            'after this state); left as an empty mount point: '
            f"'{get}' installs it here, cloned with DataLad from the URL "
            'this state records (a separate clone, not a linked worktree)')


def missing_commit_message(node: Node) -> str:
    """Why the commit recorded for ``node`` cannot be checked out (its
    repository lacks it), and how to fetch it: from the siblings that
    repository has, by name"""
    repo = node.path
    try:
        siblings = remotes(repo)
    except Exception:
        siblings = []
    what = (f'commit {node.commit[:10]} recorded for {node.relpath} is not '
            f'present in {repo}')
    if not siblings:
        return (f'{what}, and it has no sibling to fetch it from: add the '
                "one it came from ('datalad siblings -d "
                f"{repo} add --name NAME --url URL'), fetch it "
                f"('datalad update -d {repo} --sibling NAME'), then run "
                'this again')
    name = 'origin' if 'origin' in siblings else siblings[0]
    others = [s for s in siblings if s != name]
    also = (f' (or from {", ".join(others)}, the other sibling(s) it '
            'has)') if others else ''
    return (f'{what}; it may come from its sibling {name!r}{also}: fetch '
            f"it ('datalad update -d {repo} --sibling {name}', or "
            f"'git -C {repo} fetch {name}'), then run this again")


def other_cone_problem(target: Path, cone: Cone | None) -> Problem | None:
    """Why the existing worktree at ``target`` does not have the sparse
    checkout of ``cone`` asked for (None: a full one), or None"""
    found = cone_of(target)
    if found == cone:
        return None
    have = f'sparse to {", ".join(found)}' if found is not None else 'full'
    want = f'sparse to {", ".join(cone)}' if cone is not None else 'full'
    return Problem(Refusal.EXISTS, (
        f'{target} is a worktree already, but {have}, not {want} as '
        'asked; remove it first, or ask for what it has'))


def refuse(plan: Plan, why: Problem | Refusal, reason: str = '') -> Plan:
    """``plan`` refused, with the code and message of ``why`` (a problem),
    or with the code ``why`` and the message ``reason``"""
    if isinstance(why, Problem):
        why, reason = why.refusal, why.message
    return replace(plan, todo=Todo.REFUSE, reason=reason, refusal=why)


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
    if plan.made_from is not None:
        what += (f', the state {plan.made_from}' if not plan.node.depth
                 else f', as {plan.made_from} records it')
    return f'checked out {what}' if done else f'create worktree, {what}'


def location_problem(target: Path, top: Path) -> str | None:
    """Why the top worktree cannot be made at ``target``, or None

    ``target`` must not be inside the dataset, nor inside any other git
    working tree, nor be a non-empty directory unless it is a worktree of
    ``top`` already (a rerun, checked per dataset later).
    """
    if is_within(target, top):
        return (f'{target} is inside the dataset {top}; choose a location '
                'outside of it, e.g. next to it')
    if '.git' in target.parts:
        return ('refusing to create a worktree inside a .git directory: '
                f'{target}')
    ancestor = target.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        return f'{ancestor} is not a directory'
    repo = toplevel(ancestor)
    if repo:
        return (f'{target} is inside the git working tree {repo}; '
                'choose a location outside of any dataset')
    if target.exists() and not target.is_dir():
        return f'{target} exists and is not a directory'
    return None


def existing_worktree_problem(wt: Worktree, repo: Path, target: Path,
                              branch: str | None, top: Path, root: Path
                              ) -> Problem | None:
    """Why the worktree ``wt`` of ``repo``, registered at ``target`` where
    a new one is asked for, is not the one asked for (on ``branch``, or
    detached where that is None, at whatever commit it has moved on to),
    or None; ``root`` is the worktree of the hierarchy's ``top`` dataset
    that ``target`` is part of"""
    if wt.prunable:
        missing = (f'a worktree of {repo} is registered at {target} but its '
                   'directory is missing')
        if root.exists():
            return Problem(Refusal.STALE_REGISTRATION,
                           f"{missing}; run 'git -C {repo} worktree prune'")
        return Problem(Refusal.STALE_REGISTRATION, (
            f"{missing}: {root} was moved or deleted. If it was moved, "
            're-link it with '
            f"'{command('worktree-repair', 'NEWPATH', dataset=str(top))}' "
            'and choose another PATH here; if it was deleted, run '
            f"'{command('worktree-remove', str(root), dataset=str(top), force=True)}' "
            'to prune what is left of it (it gives up commits that no '
            f'other branch or tag holds; {option("keep_branch")} keeps its '
            'branches), then run this again'))
    if wt.locked is not None:
        # git locks a worktree while creating it ('initializing'); what a
        # dead run of ours left half made was cleaned up before (see
        # engine.recover) unless it holds files git did not check out
        maker = live_maker(repo, target)
        if maker is not None:
            return Problem(Refusal.LOCKED, (
                f'the worktree of {repo} at {target} is locked '
                f'({wt.locked or "no reason given"}): {maker.name}, which is '
                'still running, is creating it; wait for it to end, then '
                'run this again'))
        return Problem(Refusal.LOCKED, (
            f'the worktree of {repo} at {target} is locked '
            f'({wt.locked or "no reason given"}), and no live run of '
            'this package is making it: a git that no run of it started '
            'locked it, or a killed run left it half made with files that '
            'git did not check out. Check that it holds nothing of yours, '
            f"then: 'git -C {repo} worktree unlock {target}', delete the "
            f"directory, 'git -C {repo} worktree prune', and run this again"))
    if wt.short_branch == branch and wt.head:
        return None
    return Problem(Refusal.EXISTS, (
        f'{target} is already a worktree of {repo}, on '
        f'{wt.short_branch or "a detached HEAD"} at '
        f'{(wt.head or "?")[:10]}, not on {branch or "a detached HEAD"} '
        'as asked'))
