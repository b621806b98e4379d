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
    EnsureListOf,
    EnsureStr,
)

from datalad_worktree.base.outcome import Outcome, Refusal
from datalad_worktree.base.paths import absolute_path
from datalad_worktree.commands._common import (
    HIERARCHY_PARAMS,
    HIERARCHY_VALIDATORS,
    MTIMES_PARAM,
    EnsureInstalledDataset,
    WorktreeInterface,
    bars_for_people,
    failures_reported,
    max_depth,
    tools_problem,
    worker_count,
)
from datalad_worktree.commands.results import make_result, records
from datalad_worktree.engine.merge.dataset import Options
from datalad_worktree.engine.merge.run import merge_hierarchy

ACTION = 'worktree-merge'


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
    merged commits of its subdatasets, also of those merged before (by
    hand, or by an earlier, interrupted run): where a subdataset's
    checked-out commit contains what both sides record for it. Where possible a dataset is
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

    A source from a sparse worktree whose commits delete files that its
    checkout never had (what DataLad's save of the whole dataset, also a
    plain ``datalad run``, records there) is merged through a commit on top
    of its own that restores those files, so that DATASET keeps them.

    A separate clone in the source where a subdataset's worktree belongs
    (from a ``datalad get -n`` in the worktree) has commits and annexed
    content of its own: while DATASET lacks any of them, that subdataset and
    its parents are refused, with the commands that bring them over, so
    that DATASET never records a commit it cannot reach. Once DATASET has
    them, the clone's checked-out commit is merged like a worktree's.

    One result is reported per dataset, with ``action='worktree-merge'``,
    ``path`` (the dataset merged into), ``source`` (the worktree dataset or
    branch merged), ``from_commit`` and ``to_commit``, ``how``
    ('fast-forward' or 'merge'), ``detached`` (True when merged onto a
    detached HEAD), and ``conflicts`` (paths) for refused merges.

    Several SOURCEs, or a pattern, merge many sources in one step, such as
    the branches of hundreds of cluster jobs: ``'job-*'`` (quoted, so that
    the shell leaves it alone). A SOURCE that is an existing path is a
    worktree; else a SOURCE with ``*``, ``?`` or ``[`` is a pattern
    (``fnmatch``; ``*`` also matches '/'), matched in each dataset against
    its branch names, leaving out the branch that dataset has checked out
    and git-annex's own branches (``git-annex``, ``synced/*``,
    ``adjusted/*``), and, if it contains a '/', against the paths of
    DATASET's linked worktrees; anything else is a branch name. A SOURCE
    that names nothing (a pattern or branch that no dataset has, a path that
    is not a linked worktree, DATASET itself, a name that looks like an
    option) refuses the whole command before anything is merged. In each
    dataset, all sources with new commits there become one merge commit,
    with HEAD and each of them as parents (a fast-forward where only one
    source has new commits and HEAD has none of its own); its tree is built
    without touching the working tree, which is then brought up to it in one
    step, with all the checks above. A source that conflicts, with HEAD or
    with a source merged before it (in the order given; a pattern's branches
    in name order), is left out and reported with the conflicting paths; so
    is a source refused in a subdataset, in every dataset above it. The
    other sources are merged. With [CMD: --ff-only CMD][PY: ff_only=True
    PY], a dataset where more than one source has new commits refuses them
    all. Running the same command again merges nothing more.

    With several sources, each dataset reports one result per refused
    source (status 'impossible', its ``source``, and ``conflicts`` where
    it conflicts), and then one result of its own: 'ok' with ``sources``
    (the names merged, all of them; the message names the first few),
    ``how``, ``from_commit``, ``to_commit``, ``detached`` and, where
    parents recorded merged subdatasets, ``recorded``; or 'notneeded'.
    ``already`` lists the sources it contained already.

    A refusal (``status='impossible'``) names why in ``refusal``, a code
    that stays the same when its message is reworded, for scripts to
    branch on ('uncommitted-changes', 'unmerged-commits', 'conflicts',
    'locked', ...); an error keeps its exception in ``exception``.
    """

    _params_ = dict(
        source=Parameter(
            args=('source',),
            metavar='SOURCE',
            nargs='+',
            doc="""one or more sources: a linked worktree of DATASET (each
            dataset in it contributes its checked-out commit), a branch
            name, or a pattern (``'job-*'``) of branch names and, with a '/',
            of linked worktree paths.[PY:  A string or a list. PY]"""),
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
            source=EnsureStr(min_len=1) |
            EnsureListOf(EnsureStr(min_len=1), min_len=1),
            dataset=EnsureInstalledDataset(purpose='merge into it'),
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
        dict(text="Merge the branches of all cluster jobs, one merge "
                  "commit per dataset",
             code_py="worktree_merge('job-*', recursive=True)",
             code_cmd="datalad worktree-merge -r 'job-*'"),
        dict(text="Merge the branch 'runs' wherever it exists, "
                  "fast-forwards only",
             code_py="worktree_merge('runs', recursive=True, ff_only=True)",
             code_cmd="datalad worktree-merge -r --ff-only runs"),
    ]

    @staticmethod
    @datasetmethod(name='worktree_merge')
    @bars_for_people
    @eval_results
    @failures_reported(ACTION)
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
        problem = tools_problem(top)
        if problem:
            yield make_result(ACTION, top, top,
                              Outcome.refused(Refusal.TOOLS, problem))
            return
        place = lambda text: absolute_path(Path(text), dataset)  # noqa: E731
        yield from records(ACTION, top, merge_hierarchy(
            top, [source] if isinstance(source, str) else list(source), place,
            max_depth(recursive, recursion_limit), worker_count(jobs),
            Options(ff_only, message, dry_run, mtimes)))
