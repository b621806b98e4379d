"""Create a linked worktree of a dataset and of its installed subdatasets"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from datalad_next.commands import (
    EnsureCommandParameterization,
    Parameter,
    build_doc,
    datasetmethod,
    eval_results,
    get_status_dict,
)
from datalad_next.constraints import (
    EnsureBool,
    EnsureDataset,
    EnsurePath,
    EnsureStr,
)
from datalad_next.runners import CommandError

from .core import (
    WorktreeInterface,
    record,
    HIERARCHY_PARAMS,
    HIERARCHY_VALIDATORS,
    absolute_path,
    branch_locks,
    branch_name_problem,
    Node,
    Outcome,
    Worktree,
    git_error,
    git_lines,
    git_out,
    head_commit,
    is_within,
    list_worktrees,
    lock_message,
    max_depth,
    redirected,
    run_ordered,
    same_path,
    uses_annex,
    walk_hierarchy,
    worker_count,
)
from .bindpaths import (
    ACTION as BINDPATHS_ACTION,
    BINDPATHS_PARAM,
    annex_binds,
    configure_binds,
    declared_substitutions,
    unbound_outcome,
)
from .mtimes import (
    MTIMES_PARAM,
    carrying,
)
from .envsetup import (
    ACTION as SETUP_ACTION,
    SETUP_PARAM,
    setup_outcome,
)

ACTION = 'worktree-add'


@dataclass
class Plan:
    """What to do for one dataset: the outcome of the preflight"""
    node: Node
    root: Path
    """The new worktree of the top dataset"""
    branch: str | None
    """Branch to check out in the new worktree; None for a detached HEAD"""
    todo: str = 'create'
    """'create', 'exists' (a matching worktree is there already), 'skip'
    (subdataset not installed) or 'refuse'"""
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
        ds = dataset.ds
        top = ds.pathobj
        target = absolute_path(path, dataset)
        refds = str(top)

        def result(plan_or_path, status, message, **kw):
            if isinstance(plan_or_path, Plan):
                p = plan_or_path
                kw = dict(path=str(p.target), source=str(p.node.path),
                          branch=p.branch, commit=p.head or None,
                          **kw)
            else:
                kw = dict(path=str(plan_or_path), source=refds, **kw)
            return get_status_dict(
                action=ACTION, type='dataset', refds=refds, status=status,
                message=message, **kw)

        if branch is not None and detach:
            yield result(target, 'impossible',
                         'give either --branch or --detach, not both')
            return
        if not detach:
            branch = branch or target.name
            problem = branch_name_problem(top, branch)
            if problem:
                yield result(target, 'impossible', problem)
                return
        problem = location_problem(target, top)
        if problem:
            yield result(target, 'impossible', problem)
            return
        head = head_commit(top)
        if head is None:
            yield result(target, 'impossible',
                         f'{top} has no commit yet; save something first')
            return

        depth = max_depth(recursive, recursion_limit)
        plans = {}
        for node in walk_hierarchy(top, head, depth,
                                   lambda n: plans[n.relpath].head):
            plans[node.relpath] = preflight(node, target,
                                            None if detach else branch)
        plans = list(plans.values())
        refused = [p for p in plans if p.todo == 'refuse']
        if refused:
            for p in refused:
                yield result(p, 'impossible', p.reason)
            return
        for p in plans:
            if p.todo == 'skip':
                yield result(p, 'notneeded', p.reason)
            elif p.todo == 'exists':
                yield result(p, 'notneeded', p.reason)
            elif dry_run:
                yield result(p, 'ok', f'would {describe(p)}', dry_run=True)
        if dry_run:
            return
        created = []
        for plan, error in create_worktrees(plans, worker_count(jobs),
                                            mtimes):
            if error:
                yield result(plan, 'error', error)
            else:
                created.append(plan)
                yield result(plan, 'ok', describe(plan, done=True))
        if bindpaths:
            for plan, outcome in bind_outcomes(plans, created):
                yield record(BINDPATHS_ACTION, plan.target, refds, outcome)
        # set up environments once the whole hierarchy is there
        for plan in sorted(created, key=plans.index):
            outcome = setup_outcome(plan.target, setup, lambda s: True)
            if outcome:
                yield record(SETUP_ACTION, plan.target, refds, outcome)



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
        return f'refusing to create a worktree inside a .git directory: {target}'
    ancestor = target.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        return f'{ancestor} is not a directory'
    try:
        repo = git_lines(ancestor, ['rev-parse', '--show-toplevel'])
    except CommandError:
        repo = None
    if repo and repo[0]:
        return (f'{target} is inside the git working tree {repo[0]}; '
                'choose a location outside of any dataset')
    if target.exists() and not target.is_dir():
        return f'{target} exists and is not a directory'
    return None


def preflight(node: Node, target_root: Path, branch: str | None) -> Plan:
    """Check one dataset and decide what to do, changing nothing"""
    plan = Plan(node=node, root=target_root, branch=branch, head=node.commit)
    target = plan.target
    if node.problem:
        return _refuse(plan, node.problem)
    if not node.installed:
        plan.todo = 'skip'
        plan.reason = ('subdataset not installed in the dataset; left as an '
                       'empty mount point')
        return plan
    repo = node.path
    try:
        refs = _refs(repo, node.commit, branch)
        worktrees = list_worktrees(repo)
    except CommandError as e:
        return _refuse(plan, f'cannot inspect {repo}: {git_error(e)}')
    if not refs['commit']:
        return _refuse(plan, (
            f'commit {node.commit[:10]} recorded for {node.relpath} is not '
            f'present in {repo}; update that subdataset first '
            f"(e.g. 'datalad update --how ff-only -d {repo}')"))
    plan.annex = refs['annex_branch']
    if plan.annex and not uses_annex(repo):
        return _refuse(plan, (
            f'{repo} has a git-annex branch but git-annex is not '
            f"initialized there; run 'git -C {repo} annex init' first"))
    locks = branch_locks(repo, branch) if branch else []
    if locks:
        return _refuse(plan, lock_message(repo, locks))
    existing = next((w for w in worktrees if same_path(w.path, target)), None)
    if existing is not None:
        return _check_existing(plan, existing)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        return _refuse(plan, f'{target} exists and is not an empty directory')
    if branch is None:
        return plan
    tip = refs['branch']
    if tip is None:
        plan.new_branch = True
        return plan
    if tip != node.commit:
        return _refuse(plan, (
            f'branch {branch!r} exists in {repo} at {tip[:10]}, not at the '
            f'commit to check out, {node.commit[:10]}; it is left untouched '
            'because it may hold unmerged work: choose another --branch, '
            'or merge or delete it first'))
    elsewhere = _checked_out_at(worktrees, branch)
    if elsewhere:
        return _refuse(plan, (f'branch {branch!r} of {repo} is already '
                              f'checked out at {elsewhere}'))
    return plan


def _refuse(plan: Plan, reason: str) -> Plan:
    plan.todo = 'refuse'
    plan.reason = reason
    return plan


def _refs(repo: Path, commit: str, branch: str | None) -> dict:
    """Whether the commit is present, the branch's tip (or None) and whether
    the repository has a git-annex branch (local or from a remote)"""
    names = [f'{commit}^{{commit}}', f'refs/heads/{branch or "HEAD"}']
    found = [None if line.endswith(' missing') else line
             for line in git_out(
                 repo, ['cat-file', '--batch-check=%(objectname)'],
                 input='\n'.join(names) + '\n').splitlines()]
    annex_branch = git_out(repo, [
        'for-each-ref', '--count=1', '--format=%(refname)',
        'refs/heads/git-annex', 'refs/remotes/*/git-annex']).strip()
    return dict(commit=found[0], annex_branch=bool(annex_branch),
                branch=found[1] if branch else None)


def _checked_out_at(worktrees: list[Worktree], branch: str) -> Path | None:
    ref = f'refs/heads/{branch}'
    return next((w.path for w in worktrees if w.branch == ref), None)


def _check_existing(plan: Plan, wt: Worktree) -> Plan:
    """A worktree of this dataset is registered at the target already:
    accept it if it is on the requested branch (or detached, as asked), at
    whatever commit it has moved on to"""
    want = f'refs/heads/{plan.branch}' if plan.branch else None
    repo = plan.node.path
    if wt.prunable:
        return _refuse(plan, (
            f'a worktree of {repo} is registered at {plan.target} but its '
            f"directory is missing; run 'git -C {repo} worktree prune'"))
    if wt.locked is not None:
        # git locks a worktree while creating it ('initializing'): a lock
        # left behind can mean an interrupted, incomplete checkout
        return _refuse(plan, (
            f'the worktree of {repo} at {plan.target} is locked '
            f'({wt.locked or "no reason given"}): another run may still be '
            'creating it. If an interrupted run left it half made, check '
            'that it holds nothing of yours, then: '
            f"'git -C {repo} worktree unlock {plan.target}', delete the "
            f"directory, 'git -C {repo} worktree prune', and run this again"))
    if wt.branch == want and wt.head:
        plan.todo = 'exists'
        plan.head = wt.head
        plan.reason = f'a matching worktree exists already, at {wt.head[:10]}'
        return plan
    where = wt.branch.removeprefix('refs/heads/') if wt.branch \
        else 'a detached HEAD'
    return _refuse(plan, (
        f'{plan.target} is already a worktree of {plan.node.path}, on '
        f'{where} at {(wt.head or "?")[:10]}, not on '
        f'{plan.branch or "a detached HEAD"} as asked'))


def describe(plan: Plan, done: bool = False) -> str:
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
    """Configure container bind paths in each worktree whose dataset uses
    a bind substitution, covering the worktrees of the dataset and of all
    its subdatasets; report containers that cannot use them in the
    worktrees just created"""
    new = {id(p) for p in created}
    present = [p for p in plans if id(p) in new or p.todo == 'exists']
    for plan in present:
        names, unbound = declared_substitutions(plan.target)
        if unbound and id(plan) in new:
            yield plan, unbound_outcome(unbound)
        if not names:
            continue
        here = plan.node.relpath
        binds = [b for p in present
                 if p.node.relpath == here or here in p.node.relpath.parents
                 for b in annex_binds(p.target)]
        try:
            outcome = configure_binds(plan.target, names,
                                      list(dict.fromkeys(binds)))
        except CommandError as e:
            outcome = Outcome('error', f'git failed in {plan.target}: '
                                       f'{git_error(e)}')
        if outcome:
            yield plan, outcome


def create_worktrees(plans: list[Plan], workers: int, mtimes: bool = True
                     ) -> Iterator[tuple[Plan, str | None]]:
    """Create the planned worktrees, each parent before its children

    Yields each plan that was to be created, with an error message or None.
    Up to ``workers`` worktrees are created at the same time. When a parent
    fails, its subdatasets are not attempted. With ``mtimes``, modification
    times are carried into each new worktree, alongside the creation of the
    next ones and all done when this ends.
    """
    wanted = [p for p in plans if p.todo in ('create', 'exists')]
    by_path = {p.node.relpath: p for p in wanted}

    def parent(plan):
        return [by_path[plan.node.parent]] if plan.node.depth else []

    with carrying(mtimes, workers) as carry:
        for plan, error, blocker in run_ordered(
                wanted, parent, lambda p: _create(p, carry), workers):
            if blocker:
                error = (f'not created: the worktree of {blocker.target} '
                         'could not be created')
            if plan.todo == 'create':
                yield plan, error


def _create(plan: Plan, carry=None) -> str | None:
    """Run ``git worktree add`` for one planned dataset, then hand it to
    ``carry`` (see ``mtimes.carrying``), if given; an error or None"""
    if plan.todo == 'exists':
        return None
    node, target = plan.node, plan.target
    if redirected(plan.root, node.relpath):
        return f'refusing {target}: a symbolic link on its path leads elsewhere'
    if plan.branch is None:
        how = ['--detach', '--', str(target), node.commit]
    elif plan.new_branch:
        how = ['-b', plan.branch, '--', str(target), node.commit]
    else:
        how = ['--', str(target), plan.branch]
    try:
        git_out(node.path, ['-c', 'submodule.recurse=false',
                              'worktree', 'add', '--quiet', *how])
    except CommandError as e:
        return f'git worktree add failed: {git_error(e)}'
    problem = annex_link_problem(target) if plan.annex else None
    if problem is None and carry:
        carry(node.path, target, node.commit, plan.annex)
    return problem


def annex_link_problem(worktree: Path) -> str | None:
    """Why annexed files of a new worktree would not be readable, or None

    git-annex makes a linked worktree's ``.git`` a symlink to its gitdir and
    links ``<gitdir>/annex`` to the shared annex, while checking out. This
    verifies both for a worktree of a dataset that uses git-annex.
    """
    dotgit = worktree / '.git'
    if not (dotgit.is_symlink() and (dotgit / 'annex').is_dir()):
        return (f'git-annex did not link {worktree} to the shared annex; '
                f"annexed files there are not readable. Run 'git annex init' "
                f'in {worktree} to repair it')
    return None
