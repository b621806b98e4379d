"""Remove a nested worktree, with git's safety rules"""

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
    EnsureListOf,
    EnsurePath,
)

from datalad_worktree.base.outcome import Outcome, Refusal
from datalad_worktree.base.paths import absolute_path
from datalad_worktree.commands._common import (
    EnsureInstalledDataset,
    WorktreeInterface,
    bars_for_people,
    failures_reported,
)
from datalad_worktree.commands.results import make_result, records
from datalad_worktree.engine.remove.execute import execute
from datalad_worktree.engine.remove.plan import plan_removal
from datalad_worktree.runners.tools import tools_problem

ACTION = 'worktree-remove'


@build_doc
class WorktreeRemove(WorktreeInterface):
    """Remove a nested worktree: subdatasets first, then their parents

    PATH is a linked worktree of DATASET, normally one made by
    ``worktree-add``. The worktrees of the subdatasets inside it are removed
    first, deepest first, then their parents; each dataset's registration is
    pruned, and its branch is deleted unless [CMD: --keep-branch CMD][PY:
    keep_branch=True PY] is given.

    PATH may also be a branch name, where no path of that name exists
    (an existing path wins over a branch of the same name): the linked
    worktrees that have that branch checked out, in any dataset of
    DATASET's hierarchy, are removed, each with what is nested in it, as
    if their paths were given; also those whose directory was deleted or
    moved by hand, whose registrations are then pruned (each one alone).
    A name that is neither a path nor such a branch is refused
    (``refusal='no-match'``), and nothing is removed.

    Nothing is removed in any dataset if any of them has uncommitted
    changes, untracked files that are not ignored, or commits that would be
    lost: commits that neither the main worktree's HEAD nor another branch
    contains (with [CMD: --keep-branch CMD][PY: keep_branch=True PY], the
    worktree's own branch counts as keeping them). Commits that only
    record subdataset states which the main worktree's subdatasets
    contain, such as those ``worktree-sync`` makes ("Record the
    subdatasets updated by worktree-sync"), are not counted: they go with
    the branch. [CMD: --force CMD][PY:
    force=True PY] lifts only that last refusal, and the result names the
    commits given up; uncommitted changes always block removal, so commit or
    discard them by hand. Ignored files, such as a ``.venv``, do not block
    removal and are removed with the worktree. A locked worktree (``git
    worktree lock``) is refused with its lock reason, and one whose
    directory was deleted by hand is pruned.

    Nothing is removed either if a symbolic link on the way to a
    subdataset's place in the worktree leads elsewhere: nothing is ever
    deleted or followed through one; nor, also with [CMD: --force CMD][PY:
    force=True PY], if a separate clone sits where a subdataset belongs
    (from a ``datalad get -n`` in the worktree) and holds commits, annexed
    content, uncommitted changes or untracked files that the main
    worktree's copy lacks: the message says how to bring them home. A
    separate clone that holds nothing of that is deleted with the worktree.

    Annexed content is never dropped: it lives in the shared annex and stays
    readable from the main worktree. Only directories that git lists as
    linked worktrees of the hierarchy are removed, never a main worktree.
    Each dataset's directory goes first, then its branch, then its
    registration, so running the command again after an interruption
    finishes the removal.

    Several PATHs, or a pattern (``fnmatch``, matched against the paths of
    DATASET's linked worktrees, such as ``'../jobs/job-*'``; an existing
    path wins), remove several worktrees: all of them are checked before
    any is removed. A PATH that names no linked worktree (or the main
    worktree) refuses the whole command. Each worktree is then decided on
    its own: one that is refused is named, with nothing of it removed,
    and the others are removed, so that one job's unmerged work does not
    hold up the cleanup of all the others.

    One result is reported per dataset with ``action='worktree-remove'``,
    ``path`` (the worktree), ``branch``, ``branch_deleted``, and
    ``given_up`` (commits given up with --force).

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
            doc="""the linked worktree to remove, with everything nested in
            it; several, or a pattern (``'../jobs/job-*'``) matched against the
            paths of DATASET's linked worktrees, or a branch name (where no
            such path exists): the worktrees that have it checked out.[PY:
            A path or a list. PY]"""),
        dataset=Parameter(
            args=('-d', '--dataset'),
            metavar='DATASET',
            doc="""dataset that PATH is a worktree of. If not given, the
            dataset that contains the current directory."""),
        force=Parameter(
            args=('--force',),
            action='store_true',
            doc="""remove also where commits would be lost (they are named
            in the result). Uncommitted changes still block removal."""),
        keep_branch=Parameter(
            args=('--keep-branch',),
            action='store_true',
            doc="""keep each worktree's branch instead of deleting it."""),
        dry_run=Parameter(
            args=('--dry-run',),
            action='store_true',
            doc="""check everything and report what would be removed, but
            remove nothing."""),
    )

    _validator_ = EnsureCommandParameterization(
        dict(
            path=EnsurePath() | EnsureListOf(EnsurePath(), min_len=1),
            dataset=EnsureInstalledDataset(purpose='remove a worktree of it'),
            force=EnsureBool(),
            keep_branch=EnsureBool(),
            dry_run=EnsureBool(),
        ),
        validate_defaults=('dataset',),
    )

    _examples_ = [
        dict(text="Remove the nested worktree '../runs' after merging it",
             code_py="worktree_remove('../runs')",
             code_cmd="datalad worktree-remove ../runs"),
        dict(text="Remove all job worktrees below '../jobs'",
             code_py="worktree_remove('../jobs/job-*')",
             code_cmd="datalad worktree-remove '../jobs/job-*'"),
        dict(text="Remove the worktrees of branch 'runs', wherever they are",
             code_py="worktree_remove('runs')",
             code_cmd="datalad worktree-remove runs"),
        dict(text="Remove it but keep its branches",
             code_py="worktree_remove('../runs', keep_branch=True)",
             code_cmd="datalad worktree-remove --keep-branch ../runs"),
    ]

    @staticmethod
    @datasetmethod(name='worktree_remove')
    @bars_for_people
    @eval_results
    @failures_reported(ACTION)
    def __call__(path, *, dataset=None, force=False, keep_branch=False,
                 dry_run=False):
        top = dataset.ds.pathobj
        given = [str(p) for p in ([path] if isinstance(path, (str, Path))
                                  else path)]
        place = lambda text: absolute_path(Path(text), dataset)  # noqa: E731
        problem = tools_problem(annex=False)
        if problem:
            yield make_result(ACTION, place(given[0]), top,
                              Outcome.refused(Refusal.TOOLS, problem))
            return
        yield from records(ACTION, top, execute(
            plan_removal(top, given, place, force, keep_branch), dry_run))
