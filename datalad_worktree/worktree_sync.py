"""Bring a linked worktree of a dataset hierarchy up to the development state"""

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
    EnsureChoice,
    EnsureDataset,
)
from datalad_next.runners import CommandError

from .core import (
    WorktreeInterface,
    record,
    HIERARCHY_PARAMS,
    HIERARCHY_VALIDATORS,
    Node,
    Outcome,
    changed_paths,
    commits_only_in,
    current_branch,
    git_error,
    git_lines,
    git_out,
    git_records,
    head_commit,
    integrate,
    is_ancestor,
    is_repo_root,
    list_worktrees,
    max_depth,
    local_work_problem,
    lock_problem,
    overwritten_paths,
    record_subdatasets,
    recorded_subdatasets,
    run_ordered,
    same_path,
    walk_hierarchy,
    worker_count,
)
from .mtimes import (
    MTIMES_PARAM,
    carry_from,
)
from .envsetup import (
    ACTION as SETUP_ACTION,
    SETUP_PARAM,
    inputs_changed,
    setup_outcome,
)

ACTION = 'worktree-sync'
RECORD_MESSAGE = 'Record the subdatasets updated by worktree-sync'


@build_doc
class WorktreeSync(WorktreeInterface):
    """Bring a linked worktree up to the development state of the main one

    A linked worktree made by ``worktree-add`` stays at the state it was made
    from while development goes on in the main worktree. This command brings
    each of its datasets to what is checked out in that dataset's main
    worktree: its HEAD commit, also when HEAD is detached, as Jujutsu always
    leaves it.

    How a dataset's checked-out branch (or detached HEAD) gets there is
    chosen with [CMD: --how CMD][PY: how PY]: 'merge' (default) fast-forwards
    where possible and otherwise merges the development state into it, so
    results committed in the worktree are kept; 'ff-only' refuses where a
    fast-forward is not possible; 'reset' moves it to the development state,
    but refuses where that would leave commits behind that no other branch
    contains, unless [CMD: --force CMD][PY: force=True PY] is given (the
    record then names them).

    A checkout whose branch was moved by another tool while it was checked
    out here (``jj bookmark set``, a ``jj squash`` that rewrote it, a
    ``git update-ref``) shows phantom staged changes. When index and files
    still match an earlier position of the branch, the checkout is updated
    to the branch's tip first, as ``jj workspace update-stale`` would; with
    real local changes on top it is refused.

    Subdatasets are handled before their parents. Afterwards each parent
    records the new commits of its subdatasets in one commit of its own, so
    the worktree hierarchy is clean for ``datalad status`` and ``datalad
    run``. Subdatasets that the development state has, but that have no
    worktree here yet, are reported with the command that adds them.

    Nothing is lost: a dataset with uncommitted changes to tracked files is
    refused and left as it is; untracked and ignored files (a ``.venv``,
    scratch outputs) are never touched, and a change that would overwrite
    one is refused. Annexed content needs no transfer, as the annex is
    shared.

    One result is reported per dataset, with ``action='worktree-sync'``,
    ``path`` (the dataset in the worktree), ``source`` (its main worktree),
    ``from_commit`` and ``to_commit``, ``how`` ('fast-forward', 'merge',
    'reset' or None), and, where they apply, ``repaired_from`` (the stale
    position a checkout was updated from), ``recorded`` (subdatasets
    recorded), ``orphaned`` (commits given up with [CMD: --force CMD][PY:
    force=True PY]) and ``conflicts`` (the paths of a refused merge).
    """

    _action_ = ACTION
    _summary_ = {
        'ok': 'updated',
        'notneeded': 'already up to date',
        'impossible': 'refused',
        'error': 'failed',
    }
    _dry_run_ok_ = 'would be updated'

    _params_ = dict(
        **HIERARCHY_PARAMS,
        dataset=Parameter(
            args=('-d', '--dataset'),
            metavar='WORKTREE',
            doc="""linked worktree to update. If not given, the dataset
            that contains the current directory."""),
        how=Parameter(
            args=('--how',),
            doc="""how to bring each dataset to its development state:
            'merge' (fast-forward, else a merge commit), 'ff-only' (refuse
            where no fast-forward is possible) or 'reset'."""),
        force=Parameter(
            args=('--force',),
            action='store_true',
            doc="""with [CMD: --how reset CMD][PY: how='reset' PY]: move also where commits would be left
            that no other branch contains."""),
        dry_run=Parameter(
            args=('--dry-run',),
            action='store_true',
            doc="""report what would be done, change nothing."""),
        mtimes=MTIMES_PARAM,
        setup=SETUP_PARAM,
    )

    _validator_ = EnsureCommandParameterization(
        dict(
            dataset=EnsureDataset(installed=True, purpose='update it'),
            **HIERARCHY_VALIDATORS,
            how=EnsureChoice('merge', 'ff-only', 'reset'),
            force=EnsureBool(),
            dry_run=EnsureBool(),
            mtimes=EnsureBool(),
            setup=EnsureBool(),
        ),
        validate_defaults=('dataset',),
    )

    _examples_ = [
        dict(text="Bring the worktree 'runs' and all its subdatasets up to "
                  "what is checked out in the main worktrees",
             code_py="worktree_sync(dataset='../runs', recursive=True)",
             code_cmd="datalad worktree-sync -d ../runs -r"),
        dict(text="See what would change, allowing fast-forwards only",
             code_py="worktree_sync(dataset='../runs', recursive=True, "
                     "how='ff-only', dry_run=True)",
             code_cmd="datalad worktree-sync -d ../runs -r --how ff-only "
                      "--dry-run"),
    ]

    @staticmethod
    @datasetmethod(name='worktree_sync')
    @eval_results
    def __call__(
            *,
            dataset=None,
            recursive=False,
            recursion_limit=None,
            jobs=None,
            how='merge',
            force=False,
            dry_run=False,
            mtimes=True,
            setup=None,
    ):
        top = dataset.ds.pathobj
        refds = str(top)

        def result(path, outcome: Outcome):
            return record(ACTION, path, top, outcome)

        problem = not_a_linked_worktree(top)
        if problem:
            yield result(top, Outcome('impossible', problem))
            return
        depth = max_depth(recursive, recursion_limit)
        nodes = list(walk_hierarchy(top, head_commit(top), depth))
        active = []
        for node in nodes:
            if node.problem:
                yield result(node.path, Outcome('impossible', node.problem))
            elif not node.installed:
                yield result(node.path, missing_worktree(node, top))
            else:
                active.append(node)
        children = {n.relpath: [] for n in active}
        for n in active:
            if n.depth and n.parent in children:
                children[n.parent].append(n)

        def sync(node):
            return sync_dataset(node, children[node.relpath], how, force,
                                dry_run, top, depth, mtimes)

        workers = worker_count(jobs)
        synced = []
        for node, outcome, blocker in run_ordered(
                active, lambda n: children[n.relpath], sync, workers,
                failed=lambda o: o.failed):
            if blocker:
                outcome = Outcome('impossible', (
                    f'not updated, because its subdataset {blocker.path} '
                    'could not be'))
            for extra in outcome.keys.pop('new_subdatasets', []):
                yield result(extra.path, missing_worktree(extra, top))
            yield result(node.path, outcome)
            if not outcome.failed:
                synced.append((node, outcome))
        if dry_run:
            return
        # rerun environment setups whose inputs changed, parents first
        for node, outcome in sorted(synced, key=lambda x: x[0].depth):
            before = outcome.keys.get('repaired_from') or \
                outcome.keys.get('from_commit')
            after = outcome.keys.get('to_commit')
            done = setup_outcome(
                node.path, setup,
                lambda s: inputs_changed(node.path, s, before, after))
            if done:
                yield record(SETUP_ACTION, node.path, refds, done)



def not_a_linked_worktree(path: Path) -> str | None:
    """Why ``path`` is not a linked worktree this command can update"""
    worktrees = list_worktrees(path)
    if not same_path(worktrees[0].path, path):
        return None
    linked = [str(w.path) for w in worktrees[1:]]
    hint = (f"give one of its linked worktrees: {', '.join(linked)}"
            if linked else "create one with 'datalad worktree-add' first")
    return (f'{path} is the main worktree of its repository, not a linked '
            f'worktree; {hint}')


def missing_worktree(node: Node, top: Path) -> Outcome:
    """The outcome for a subdataset without a worktree here"""
    main_top = list_worktrees(top)[0].path
    origin = main_top / node.relpath
    if not is_repo_root(origin):
        return Outcome('notneeded', 'subdataset not installed in the main '
                                    'worktree either; nothing to update')
    branch = current_branch(top)
    how = f'-b {branch}' if branch else '--detach'
    return Outcome('impossible', (
        f'subdataset {node.relpath} has no worktree here yet; add it with '
        f"'datalad worktree-add -d {main_top} -r {how} {top}'"))


def sync_dataset(node: Node, children: list[Node], how: str, force: bool,
                 dry_run: bool, top: Path, depth_limit,
                 mtimes: bool = True) -> Outcome:
    """Update one dataset of the worktree, then record its subdatasets
    and (with ``mtimes``) carry modification times from the main worktree"""
    repo = node.path
    try:
        problem = not_a_linked_worktree(repo) or lock_problem(repo)
        if problem:
            return Outcome('impossible', problem)
        source_wt = list_worktrees(repo)[0]
        keys = dict(source=str(source_wt.path))
        if not source_wt.head:
            return Outcome('impossible', f'{source_wt.path} has no commit yet',
                           keys)
        repaired = repair_stale_checkout(repo, source_wt.head, dry_run)
        if isinstance(repaired, Outcome):
            repaired.keys.update(keys)
            return repaired
        if repaired:
            keys['repaired_from'] = repaired
            if dry_run:
                return Outcome('ok', (
                    f'would update a stale checkout from {repaired[:10]} to '
                    'its branch tip, then bring it to the development state'),
                    dict(keys, dry_run=True))
        outcome = move_to(repo, source_wt.head, how, force, dry_run, keys,
                          children)
        if repaired:
            outcome.message = (f'updated a stale checkout from {repaired[:10]}'
                               f'; {outcome.message}')
        if outcome.failed or dry_run:
            return outcome
        recorded = record_subdatasets(repo, children, RECORD_MESSAGE)
        if recorded:
            outcome.keys['recorded'] = recorded
            outcome.keys['to_commit'] = head_commit(repo)
            outcome.message += ('; recorded the new state of '
                                + ', '.join(recorded))
            outcome.status = 'ok'
        if repaired:
            outcome.status = 'ok'
        moved_from = outcome.keys['from_commit']
        if outcome.keys['to_commit'] != moved_from and \
                (depth_limit is None or node.depth < depth_limit):
            outcome.keys['new_subdatasets'] = new_subdatasets(node, moved_from)
        if mtimes:
            note = carry_from(source_wt.path, repo, outcome.keys['to_commit'])
            if note:
                outcome.message += f'; {note}'
        return outcome
    except CommandError as e:
        return Outcome('error', f'git failed in {repo}: {git_error(e)}')


def repair_stale_checkout(repo: Path, target: str, dry_run: bool
                          ) -> str | Outcome | None:
    """Update a checkout whose branch was moved underneath it

    Returns the stale commit the checkout was updated from, None when the
    checkout is not stale, or a refusal. A checkout whose index holds
    ``target`` already is not stale: an update to ``target`` was
    interrupted there, and is finished like any other.
    """
    head = head_commit(repo)
    if index_matches(repo, 'HEAD') or index_matches(repo, target):
        return None
    stale = next((c for c in earlier_positions(repo, head)
                  if index_matches(repo, c)), None)
    if stale is None:
        return Outcome('impossible', (
            f'uncommitted changes in {repo}: '
            + ', '.join(changed_paths(repo) or ['staged subdataset changes'])
            + '; commit or discard them first'))
    unstaged = git_records(repo, ['diff-files', '-z', '--name-only',
                                  '--ignore-submodules=all'])
    if unstaged:
        return Outcome('impossible', (
            f'the branch checked out in {repo} was moved from {stale[:10]} '
            f'to {head[:10]} by another tool, and there are local changes on '
            f'top: {", ".join(unstaged)}. Do not commit them (that would undo '
            "the branch's new commits): save them with 'git diff > PATCH', "
            "discard them with 'git checkout -- .', sync, then "
            "'git apply PATCH'"))
    blocked = overwritten_paths(repo, stale, head)
    if blocked:
        return Outcome('impossible', (
            f'updating the stale checkout in {repo} would overwrite files '
            f'that git does not track: {", ".join(blocked)}'))
    if not dry_run:
        git_out(repo, ['read-tree', '-m', '-u', stale, head])
        # the checkout reflects HEAD now: say so in the worktree's reflog
        git_out(repo, ['update-ref', '-m', 'worktree-sync: update stale '
                       f'checkout from {stale}', 'HEAD', head])
    return stale


def earlier_positions(repo: Path, head: str) -> list[str]:
    """Commits the checkout may still reflect, if its branch was moved
    underneath it: none when the worktree's own HEAD reflog says it last
    checked out ``head`` itself; else that last checkout, then the earlier
    positions of the branch, newest first"""
    own = _reflog(repo, 'HEAD', 1)
    if own == [head]:
        return []
    branch = current_branch(repo)
    earlier = _reflog(repo, f'refs/heads/{branch}', 20) if branch else []
    return [c for c in dict.fromkeys(own + earlier) if c != head]


def _reflog(repo: Path, ref: str, count: int) -> list[str]:
    try:
        return git_lines(repo, ['log', '-g', '-n', str(count), '--format=%H',
                                ref, '--'])
    except CommandError:
        return []


def index_matches(repo: Path, commit: str) -> bool:
    """Whether the index of ``repo`` holds exactly the tree of ``commit``"""
    try:
        git_out(repo, ['diff-index', '--cached', '--quiet', commit, '--'])
    except CommandError as e:
        if e.returncode == 1:
            return False
        raise
    return True


def move_to(repo: Path, source: str, how: str, force: bool, dry_run: bool,
            keys: dict, children: list[Node]) -> Outcome:
    """Bring the checkout in ``repo`` to ``source`` as ``how`` says"""
    head = head_commit(repo)
    if how == 'reset' and not is_ancestor(repo, head, source) \
            and not is_ancestor(repo, source, head):
        return reset_to(repo, head, source, force, dry_run, keys)
    return integrate(
        repo, source, what=f'the development state {source[:10]}',
        ff_only=how == 'ff-only',
        message=f'Merge the development state {source[:10]} (worktree-sync)',
        subdatasets=children, dry_run=dry_run, keep_untouched=False,
        keys=keys)


def reset_to(repo: Path, head: str, source: str, force: bool, dry_run: bool,
             keys: dict) -> Outcome:
    """Move a diverged checkout to ``source``, unless that loses commits"""
    keys.update(from_commit=head, to_commit=head, how=None)
    problem = local_work_problem(repo, head, source, keep_untouched=False)
    if problem:
        return Outcome('impossible', problem, keys)
    orphans = commits_only_in(repo, 'HEAD', [source], current_branch(repo))
    if orphans and not force:
        return Outcome('impossible', (
            f'resetting {repo} to {source[:10]} would leave '
            f'{len(orphans)} commit(s) that no other branch contains '
            f'({", ".join(c[:10] for c in orphans[:5])}); merge them '
            'elsewhere first, or give --force to give them up'), keys)
    if orphans:
        keys['orphaned'] = orphans
    keys['how'] = 'reset'
    if dry_run:
        return Outcome('ok', f'would reset from {head[:10]} to {source[:10]}',
                       dict(keys, dry_run=True))
    git_out(repo, ['reset', '--quiet', '--keep', source])
    keys['to_commit'] = source
    return Outcome('ok', f'reset from {head[:10]} to {source[:10]}', keys)


def new_subdatasets(node: Node, before: str) -> list[Node]:
    """Subdatasets that the updated checkout records, but the commit
    ``before`` did not, and that have no worktree here"""
    known = {path for path, _ in recorded_subdatasets(node.path, before)}
    found = []
    for path, sha in recorded_subdatasets(node.path, 'HEAD'):
        relpath = node.relpath / path
        where = node.path / path
        if sha and path not in known and not is_repo_root(where):
            found.append(Node(path=where, relpath=relpath, commit=sha,
                              depth=node.depth + 1, parent=node.relpath,
                              installed=False))
    return found
