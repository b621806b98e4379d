"""Bring a linked worktree of a dataset hierarchy up to the development state"""

from __future__ import annotations

from pathlib import Path

from datalad_next.commands import (
    EnsureCommandParameterization,
    Parameter,
    ParameterConstraintContext,
    build_doc,
    datasetmethod,
    eval_results,
)
from datalad_next.constraints import (
    EnsureBool,
    EnsureChoice,
    EnsureDataset,
)

from . import git
from .envsetup import (
    ACTION as SETUP_ACTION,
    inputs_changed,
    setup_outcome,
)
from .clones import (
    is_separate_clone,
    replace_advice,
)
from .hierarchy import (
    Node,
    children_of,
    max_depth,
    subdataset_pointers,
    walk_hierarchy,
)
from .integrate import (
    integrate,
    local_work_problem,
    record_pointers,
)
from .interface import (
    HIERARCHY_PARAMS,
    HIERARCHY_VALIDATORS,
    MTIMES_PARAM,
    SETUP_PARAM,
    WorktreeInterface,
    bars_for_people,
    bottom_up,
    make_result,
    split_hierarchy,
    tools_problem,
)
from .mtimes import carry_from
from .outcome import Outcome
from .registry import (
    adjusted_problem,
    linked_worktree_problem,
    list_worktrees,
    lock_problem,
)
from .repo import (
    commits_only_in,
    current_branch,
    head_commit,
    is_ancestor,
    is_repo_root,
)
from .provider import Provider
from .settings import worker_count
from .stale import (
    inspect_checkout,
    update_stale_checkout,
)
from .sharedannex import repair_own_annex

ACTION = 'worktree-sync'
POINTER_MESSAGE = 'Record the subdatasets updated by worktree-sync'


class SyncParameters(EnsureCommandParameterization):
    """The parameters of worktree-sync, checked before anything is read"""

    def __init__(self):
        super().__init__(
            dict(
                dataset=EnsureDataset(installed=True, purpose='update it'),
                **HIERARCHY_VALIDATORS,
                how=EnsureChoice('merge', 'ff-only', 'reset'),
                force=EnsureBool(),
                dry_run=EnsureBool(),
                mtimes=EnsureBool(),
                setup=EnsureBool(),
            ),
            joint_constraints={
                ParameterConstraintContext(('how', 'force'), 'force'):
                self._force_needs_reset,
            },
            validate_defaults=('dataset',),
        )

    def _force_needs_reset(self, how, force):
        if force and how != 'reset':
            self.raise_for(
                dict(how=how, force=force),
                "--force only applies to --how reset, where it allows "
                "giving up commits; give '--how reset --force', or leave "
                "out --force")


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
    run``. A subdataset that has no worktree here yet, but is installed
    in the main worktree (installed there after this worktree was made, or
    new in the development state), gets a linked worktree of the main
    worktree's copy, at the commit recorded here and on the branch the top
    dataset has checked out, with all checks of ``worktree-add``; these are
    reported with ``action='worktree-add'``.

    A separate clone where a subdataset's worktree belongs (from a
    ``datalad get -n`` in the worktree) is refused, with its parents; the
    message says how ``worktree-get`` replaces it with a linked worktree.

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
            doc="""with [CMD: --how reset CMD][PY: how='reset' PY] (and
            only with it): move also where commits would be left that no
            other branch contains."""),
        dry_run=Parameter(
            args=('--dry-run',),
            action='store_true',
            doc="""report what would be done, change nothing."""),
        mtimes=MTIMES_PARAM,
        setup=SETUP_PARAM,
    )

    _validator_ = SyncParameters()

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
    @bars_for_people
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
        problem = tools_problem(top) or linked_worktree_problem(top)
        if problem:
            yield make_result(ACTION, top, top, Outcome('impossible', problem))
            return
        depth = max_depth(recursive, recursion_limit)
        skipped, active = split_hierarchy(
            walk_hierarchy(top, head_commit(top), depth))
        new = Provider(top, dry_run, mtimes, setup, ACTION)

        def below(node):
            return None if depth is None else depth - node.depth

        yield from new.add([n for n in skipped if not n.problem], below)
        if new.created:
            skipped, active = split_hierarchy(
                walk_hierarchy(top, head_commit(top), depth))
        for node in skipped:
            if node.problem:
                yield make_result(ACTION, node.path, top,
                                  Outcome('impossible', node.problem))
        children = children_of(active)
        synced = []
        for node, outcome in bottom_up(
                active,
                lambda n: sync_dataset(n, children[n.relpath], how, force,
                                       dry_run, mtimes, new.main_copy(n), top),
                worker_count(jobs),
                lambda blocker: (f'not updated, because its subdataset '
                                 f'{blocker.path} could not be'), ACTION):
            yield make_result(ACTION, node.path, top, outcome)
            if not outcome.failed and not dry_run and \
                    (depth is None or node.depth < depth):
                yield from new.add(new_subdatasets(node, outcome), below)
            if not outcome.failed:
                synced.append((node, outcome))
        if not dry_run:
            yield from setups(synced, setup, top)


def setups(synced: list[tuple[Node, Outcome]], wanted: bool | None,
           top: Path):
    """Rerun the environment setups whose inputs changed, parents first"""
    for node, outcome in sorted(synced, key=lambda x: x[0].depth):
        before = outcome.keys.get('repaired_from') or \
            outcome.keys.get('from_commit')
        after = outcome.keys.get('to_commit')
        if wanted is None and before == after:
            continue
        done = setup_outcome(
            node.path, wanted,
            lambda s: inputs_changed(node.path, s, before, after))
        if done:
            yield make_result(SETUP_ACTION, node.path, top, done)


def sync_dataset(node: Node, children: list[Node], how: str, force: bool,
                 dry_run: bool, mtimes: bool, main_copy: Path,
                 top: Path) -> Outcome:
    """Update one dataset of the worktree ``top`` (whose main worktree's
    copy is ``main_copy``), then record its subdatasets and (with
    ``mtimes``) carry modification times from the main worktree"""
    repo = node.path
    if node.depth and is_separate_clone(repo, main_copy):
        return Outcome('impossible', replace_advice(repo, main_copy, top))
    worktrees = list_worktrees(repo)
    problem = linked_worktree_problem(repo, worktrees) or \
        lock_problem(repo) or adjusted_problem(repo) or \
        repair_own_annex(repo, dry_run)
    if problem:
        return Outcome('impossible', problem)
    source_wt = worktrees[0]
    problem = adjusted_problem(source_wt.path)
    if problem:
        return Outcome('impossible', problem)
    keys = dict(source=str(source_wt.path))
    if not source_wt.head:
        return Outcome('impossible', f'{source_wt.path} has no commit yet',
                       keys)
    checkout = inspect_checkout(repo, source_wt.head)
    if checkout.problem:
        return Outcome('impossible', checkout.problem, keys)
    stale = checkout.stale
    if stale:
        keys['repaired_from'] = stale
        if dry_run:
            return Outcome('ok', (
                f'would update a stale checkout from {stale[:10]} to '
                'its branch tip, then bring it to the development state'),
                dict(keys, dry_run=True))
        update_stale_checkout(repo, stale, checkout.head)
    outcome = move_to(repo, checkout.head, source_wt.head, how, force,
                      dry_run, keys, children)
    if stale:
        outcome.message = (f'updated a stale checkout from {stale[:10]}'
                           f'; {outcome.message}')
    if outcome.failed or dry_run:
        return outcome
    record_pointers(repo, children, POINTER_MESSAGE, outcome, 'new')
    if stale:
        outcome.status = 'ok'
    if mtimes and (stale or
                   outcome.keys['to_commit'] != outcome.keys['from_commit']):
        note = carry_from(source_wt.path, repo, outcome.keys['to_commit'])
        if note:
            outcome.message += f'; {note}'
    return outcome


def move_to(repo: Path, head: str, source: str, how: str, force: bool,
            dry_run: bool, keys: dict, children: list[Node]) -> Outcome:
    """Bring the checkout in ``repo``, at ``head``, to ``source`` as ``how``
    says"""
    if how == 'reset' and head != source \
            and not is_ancestor(repo, head, source) \
            and not is_ancestor(repo, source, head):
        return reset_to(repo, head, source, force, dry_run, keys)
    return integrate(
        repo, source, what=f'the development state {source[:10]}',
        ff_only=how == 'ff-only',
        message=f'Merge the development state {source[:10]} (worktree-sync)',
        subdatasets=children, dry_run=dry_run, keep_untouched=False,
        keys=keys, head=head)


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
    git.run(repo, ['reset', '--quiet', '--keep', source])
    keys['to_commit'] = source
    return Outcome('ok', f'reset from {head[:10]} to {source[:10]}', keys)


def new_subdatasets(node: Node, outcome: Outcome) -> list[Node]:
    """Subdatasets that the checkout updated as ``outcome`` says records,
    but the commit it was updated from did not, and that have no worktree
    here"""
    before, after = outcome.keys['from_commit'], outcome.keys['to_commit']
    if after == before:
        return []
    known = {path for path, _ in subdataset_pointers(node.path, before)}
    found = []
    for path, sha in subdataset_pointers(node.path, 'HEAD'):
        relpath = node.relpath / path
        where = node.path / path
        if sha and path not in known and not is_repo_root(where):
            found.append(Node(path=where, relpath=relpath, commit=sha,
                              depth=node.depth + 1, parent=node.relpath,
                              installed=False))
    return found
