"""Bring a linked worktree of a dataset hierarchy up to the development state"""

from __future__ import annotations

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
)

from datalad_worktree.base.advice import option
from datalad_worktree.base.outcome import Outcome, Refusal
from datalad_worktree.commands._common import (
    HIERARCHY_PARAMS,
    HIERARCHY_VALIDATORS,
    MTIMES_PARAM,
    SETUP_PARAM,
    EnsureInstalledDataset,
    WorktreeInterface,
    bars_for_people,
    failures_reported,
    max_depth,
    tools_problem,
    worker_count,
)
from datalad_worktree.commands.results import make_result, records
from datalad_worktree.engine.sync import sync_hierarchy

ACTION = 'worktree-sync'


class SyncParameters(EnsureCommandParameterization):
    """The parameters of worktree-sync, checked before anything is read"""

    def __init__(self):
        super().__init__(
            dict(
                dataset=EnsureInstalledDataset(purpose='update it'),
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
                f"{option('force')} only applies to {option('how', 'reset')}, "
                "where it allows giving up commits; give "
                f"{option('how', 'reset')} together with {option('force')}, "
                f"or leave out {option('force')}")


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

    A refusal (``status='impossible'``) names why in ``refusal``, a code
    that stays the same when its message is reworded, for scripts to
    branch on ('uncommitted-changes', 'unmerged-commits', 'conflicts',
    'locked', ...); an error keeps its exception in ``exception``.
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
    @failures_reported(ACTION)
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
        problem = tools_problem(top)
        if problem:
            yield make_result(ACTION, top, top,
                              Outcome.refused(Refusal.TOOLS, problem))
            return
        yield from records(ACTION, top, sync_hierarchy(
            top, max_depth(recursive, recursion_limit), how, force, dry_run,
            mtimes, setup, worker_count(jobs)))
