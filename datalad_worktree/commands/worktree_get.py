"""Get subdatasets into a linked worktree, as worktrees, never as clones"""

from __future__ import annotations

from pathlib import (
    Path,
)

from datalad_next.commands import (
    EnsureCommandParameterization,
    Parameter,
    build_doc,
    datasetmethod,
    eval_results,
)
from datalad_next.constraints import (
    EnsureBool,
    EnsureListOf,
    EnsurePath,
)

from datalad_worktree.base.outcome import Outcome, Refusal
from datalad_worktree.base.paths import absolute_path
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
)
from datalad_worktree.commands.results import make_result, records
from datalad_worktree.engine.get import get_into

ACTION = 'worktree-get'


@build_doc
class WorktreeGet(WorktreeInterface):
    """Get subdatasets into a linked worktree: as worktrees, never clones

    ``datalad get -n SUBDATASET`` in a linked worktree clones the
    subdataset from its remote, even where the main worktree has it
    installed: a separate repository with an annex of its own, which fails
    where the remote cannot be reached (DataLad's configuration chooses
    where ``get`` clones from, not whether it clones). This command is the
    linked worktree's ``get -n``: each subdataset at or above PATH that the
    worktree has not installed, and with [CMD: --recursive CMD][PY:
    recursive=True PY] each below it, becomes a linked worktree of the main
    worktree's copy, at the commit the worktree records for it and on the
    branch the worktree's top dataset has checked out (detached where that
    is detached), with all checks of ``worktree-add``. Its annexed files are
    readable at once, and no remote is contacted. A subdataset that the
    main worktree has not installed either is installed there first, by
    ``datalad get -n`` from the source its parent records; its results are
    passed on. A subdataset that the main worktree no longer has at all (in
    a worktree of a past state, ``worktree-add PATH COMMIT-ISH``, one
    removed since) has no copy to make a worktree of: it is installed in
    the worktree itself with ``datalad get -n``, a separate clone from the
    URL the worktree's state records, and a record says so
    (``source_url``).

    A separate clone found where such a worktree belongs (from a ``datalad
    get -n`` in the worktree, or made by hand) is replaced by a linked
    worktree when it holds nothing that the main worktree's copy lacks: no
    commits or annexed content of its own, no uncommitted changes, no
    untracked or ignored files, no installed subdatasets. Otherwise it is
    refused, with the commands that bring its work home first.

    Each worktree made is reported with ``action='worktree-add'``, as
    ``worktree-add`` reports it; a PATH that needs nothing, and a refused
    clone, with ``action='worktree-get'``.

    A refusal (``status='impossible'``) names why in ``refusal``, a code
    that stays the same when its message is reworded, for scripts to
    branch on ('uncommitted-changes', 'unmerged-commits', 'conflicts',
    'locked', ...); an error keeps its exception in ``exception``.
    """

    _params_ = dict(
        path=Parameter(
            args=('path',),
            metavar='PATH',
            nargs='+',
            doc="""subdataset (or a path inside one) to get into the
            worktree, with every dataset above it."""),
        dataset=Parameter(
            args=('-d', '--dataset'),
            metavar='WORKTREE',
            doc="""the linked worktree to get subdatasets into. If not
            given, the dataset that contains the current directory."""),
        recursive=HIERARCHY_PARAMS['recursive'],
        recursion_limit=HIERARCHY_PARAMS['recursion_limit'],
        dry_run=Parameter(
            args=('--dry-run',),
            action='store_true',
            doc="""report what would be done, change nothing."""),
        mtimes=MTIMES_PARAM,
        setup=SETUP_PARAM,
    )

    _validator_ = EnsureCommandParameterization(
        dict(
            path=EnsurePath() | EnsureListOf(EnsurePath(), min_len=1),
            dataset=EnsureInstalledDataset(purpose='get subdatasets into it'),
            recursive=HIERARCHY_VALIDATORS['recursive'],
            recursion_limit=HIERARCHY_VALIDATORS['recursion_limit'],
            dry_run=EnsureBool(),
            mtimes=EnsureBool(),
            setup=EnsureBool(),
        ),
        validate_defaults=('dataset',),
    )

    _examples_ = [
        dict(text="In a linked worktree, get the subdataset 'inputs/raw' "
                  "the way 'datalad get -n' would, but as a worktree of the "
                  "main worktree's copy",
             code_py="worktree_get('inputs/raw')",
             code_cmd="datalad worktree-get inputs/raw"),
        dict(text="The same, with all subdatasets below it",
             code_py="worktree_get('inputs', recursive=True)",
             code_cmd="datalad worktree-get -r inputs"),
    ]

    @staticmethod
    @datasetmethod(name='worktree_get')
    @bars_for_people
    @eval_results
    @failures_reported(ACTION)
    def __call__(path, *, dataset=None, recursive=False,
                 recursion_limit=None, dry_run=False, mtimes=True,
                 setup=None):
        top = dataset.ds.pathobj
        problem = tools_problem(top)
        if problem:
            yield make_result(ACTION, top, top,
                              Outcome.refused(Refusal.TOOLS, problem))
            return
        yield from records(ACTION, top, get_into(
            top, [absolute_path(p, dataset)
                  for p in ([path] if isinstance(path, Path) else path)],
            max_depth(recursive, recursion_limit), dry_run, mtimes, setup))
