"""Create a linked worktree of a dataset and of its installed subdatasets"""

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
    EnsureListOf,
    EnsurePath,
    EnsureStr,
)

from datalad_worktree.base.advice import flag, option
from datalad_worktree.base.outcome import Outcome, Refusal
from datalad_worktree.base.paths import absolute_path
from datalad_worktree.commands._common import (
    BINDPATHS_PARAM,
    HIERARCHY_PARAMS,
    HIERARCHY_VALIDATORS,
    MTIMES_PARAM,
    SETUP_PARAM,
    EnsureBranchName,
    EnsureInstalledDataset,
    WorktreeInterface,
    bars_for_people,
    failures_reported,
    max_depth,
    tools_problem,
    worker_count,
)
from datalad_worktree.commands.results import make_result, records
from datalad_worktree.engine.add.make import make_worktrees
from datalad_worktree.engine.add.plan import plan_add
from datalad_worktree.engine.get import with_missing_got

ACTION = 'worktree-add'


class AddParameters(EnsureCommandParameterization):
    """The parameters of worktree-add, checked before anything is read"""

    def __init__(self):
        super().__init__(
            dict(
                path=EnsurePath(),
                commit=EnsureStr(),
                dataset=EnsureInstalledDataset(purpose='create a worktree of it'),
                branch=EnsureBranchName(),
                detach=EnsureBool(),
                **HIERARCHY_VALIDATORS,
                dry_run=EnsureBool(),
                sparse=EnsureStr(min_len=1) |
                EnsureListOf(EnsureStr(min_len=1)),
                mtimes=EnsureBool(),
                setup=EnsureBool(),
                bindpaths=EnsureBool(),
            ),
            joint_constraints={
                ParameterConstraintContext(('branch', 'detach'),
                                           'branch or detached'):
                self._branch_or_detach,
            },
            validate_defaults=('dataset',),
        )

    def _branch_or_detach(self, branch, detach):
        if branch is not None and detach:
            self.raise_for(dict(branch=branch, detach=detach),
                           f'give either {flag("branch")} or '
                           f'{option("detach")}, not both')


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

    With COMMIT-ISH (anything git resolves in the dataset: a commit, tag,
    branch, ``HEAD~3``, a commit on no branch as Jujutsu leaves them), the
    worktree checks out that past state instead of HEAD: every subdataset
    checks out the commit that this state records for it, a subdataset it
    does not have is not created, and the main worktree is not changed.
    A past state is for visiting, so, as git does for a commit or a tag,
    its worktrees are detached unless
    [CMD: --branch CMD][PY: branch PY] is given, which makes that branch
    at the state's commit in every dataset (for work to be merged later
    with ``worktree-merge``); a branch name as COMMIT-ISH is resolved to
    its commit too. With [CMD: --recursive CMD][PY: recursive=True PY],
    a subdataset of that state that the dataset no longer has at all
    (removed since) is got as ``worktree-get`` gets it: cloned into the
    worktree from the URL the state records (the record says from where).
    One that the dataset has not installed is left out, with the
    ``worktree-get`` call that gets it (which installs it in the dataset
    first): the dataset itself is not changed. A COMMIT-ISH
    that names no commit is refused ('unknown-revision'), one that starts
    with '-' is never given to git ('bad-revision'), and a commit the
    state records that a subdataset lacks is refused before anything is
    made ('missing-commit'), naming the sibling to fetch it from. The
    COMMIT-ISH is kept in each new worktree's own configuration
    (``datalad.worktree.revision``), and ``worktree-list`` shows it; a
    detached past state that nothing was committed in is removed by
    ``worktree-remove`` without ``--force``. A past state's result
    records have ``revision``, the COMMIT-ISH as given.

    Every dataset's worktree is on the same branch: the one given with
    [CMD: --branch CMD][PY: branch PY], or, like git does, a branch named
    after PATH's last component (without COMMIT-ISH). A missing branch is created at the commit
    to be checked out. An existing branch is used if it points at that
    commit or at an ancestor of it (a fully merged branch is moved forward
    to it, which loses nothing); a branch with commits of its own may hold
    results that are not merged anywhere, so it is never moved. [CMD: --detach CMD][PY: detach=True PY] checks out
    detached HEADs instead.

    Before anything is created, every dataset is checked: PATH must not
    exist or be an empty directory, and must not lie inside a dataset's or
    any git working tree; the branch name must be valid and not be checked
    out in another worktree; an existing branch must have no commits that
    the commit to be checked out lacks; the commit must be present; git-annex must be
    initialized where a dataset uses it. If any check fails, nothing is
    created and every problem is reported. Running the same command again
    after an interruption creates only what is missing and reports matching
    worktrees that exist already as 'notneeded'.

    So that ``datalad containers-run`` works in the new worktrees, they
    get, in their own git configuration, read-only bind mounts of the
    repository locations that the annexed files of each dataset and its
    subdatasets link to. Containers whose ``cmdexec`` is as it came
    (``singularity exec``, a wrapper script, ``bwrap``) get a ``cmdexec``
    of the worktree's own that adds them (through SINGULARITY_BIND and
    APPTAINER_BIND, or bwrap's options); a dataset that uses the bind
    substitution '{{worktree-binds-bwrap}}' or
    '{{worktree-binds-apptainer}}' in its ``cmdexec`` gets that set. Run
    records keep no paths and stay rerunnable anywhere. These are
    reported with ``action='worktree-bindpaths'``;
    [CMD: --no-bindpaths CMD][PY: bindpaths=False PY] turns this off.

    For a job that needs only part of the hierarchy,
    [CMD: --sparse PATH CMD][PY: sparse=[PATH, ...] PY] makes a sparse
    worktree (git's cone mode of ``git sparse-checkout``): only the
    directories given (relative to the dataset, across subdataset
    boundaries) are checked out, with the files directly in each directory
    on the way to them. A subdataset that holds a PATH gets a worktree that
    is sparse to the part below it, one that lies in a PATH gets a full
    one, and every other subdataset gets none. Each PATH must be a
    directory or subdataset in the commit checked out, and a subdataset on
    the way to it must be installed.

    One result is reported per dataset, with ``action='worktree-add'``,
    ``type='dataset'``, ``path`` (the new worktree), ``source`` (the
    dataset it is a worktree of), ``branch`` (None when detached) and
    ``commit`` (the commit checked out).

    A refusal (``status='impossible'``) names why in ``refusal``, a code
    that stays the same when its message is reworded, for scripts to
    branch on ('uncommitted-changes', 'unmerged-commits', 'conflicts',
    'locked', ...); an error keeps its exception in ``exception``.
    """

    _params_ = dict(
        **HIERARCHY_PARAMS,
        path=Parameter(
            args=('path',),
            metavar='PATH',
            doc="""where to create the worktree of the dataset: a location
            outside of any dataset that either does not exist or is an empty
            directory."""),
        commit=Parameter(
            args=('commit',),
            nargs='?',
            metavar='COMMIT-ISH',
            doc="""the state of the dataset to check out: anything git
            resolves in the dataset (a commit, tag, branch, 'HEAD~3', a
            commit on no branch); every subdataset checks out the commit
            that this state records for it. Given, the worktrees are
            detached unless [CMD: --branch CMD][PY: branch PY] is given
            too. Default: the dataset's HEAD."""),
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
            out. Default: the last component of PATH; with COMMIT-ISH,
            detached HEADs."""),
        detach=Parameter(
            args=('--detach',),
            action='store_true',
            doc="""check out detached HEADs instead of a branch."""),
        dry_run=Parameter(
            args=('--dry-run',),
            action='store_true',
            doc="""check everything and report what would be created, but
            create nothing."""),
        sparse=Parameter(
            args=('--sparse',),
            action='append',
            metavar='PATH',
            doc="""check out only this directory (relative to the dataset;
            it may lie in a subdataset) and the files on the way to it, in
            a sparse worktree. Give it once per directory. Subdatasets
            that neither hold nor lie in one of them are left out."""),
        mtimes=MTIMES_PARAM,
        setup=SETUP_PARAM,
        bindpaths=BINDPATHS_PARAM,
    )

    _validator_ = AddParameters()

    _examples_ = [
        dict(text="Create a worktree of the current dataset and all its "
                  "installed subdatasets on a new branch 'runs'",
             code_py="worktree_add('../runs', recursive=True)",
             code_cmd="datalad worktree-add -r ../runs"),
        dict(text="Check what would be created, on a branch named 'batch1'",
             code_py="worktree_add('../wt', branch='batch1', recursive=True, "
                     "dry_run=True)",
             code_cmd="datalad worktree-add -r -b batch1 --dry-run ../wt"),
        dict(text="Create a worktree for a cluster job that needs only "
                  "the code and one subject's input data",
             code_py="worktree_add('/scratch/job-01', branch='job-01', "
                     "recursive=True, sparse=['code', 'inputs/sub-01'])",
             code_cmd="datalad worktree-add -r -b job-01 --sparse code "
                      "--sparse inputs/sub-01 /scratch/job-01"),
        dict(text="Visit the state tagged 'v1' (detached), next to the "
                  "current one",
             code_py="worktree_add('../v1', 'v1', recursive=True)",
             code_cmd="datalad worktree-add -r ../v1 v1"),
        dict(text="Work on a past state on a branch, to merge it later",
             code_py="worktree_add('../fix', 'HEAD~3', branch='fix', "
                     "recursive=True)",
             code_cmd="datalad worktree-add -r -b fix ../fix HEAD~3"),
        dict(text="Use four parallel jobs for a large hierarchy",
             code_py="worktree_add('../runs', recursive=True, jobs=4)",
             code_cmd="datalad worktree-add -r -J 4 ../runs"),
    ]

    @staticmethod
    @datasetmethod(name='worktree_add')
    @bars_for_people
    @eval_results
    @failures_reported(ACTION)
    def __call__(
            path,
            commit=None,
            *,
            dataset=None,
            branch=None,
            detach=False,
            recursive=False,
            recursion_limit=None,
            jobs=None,
            dry_run=False,
            sparse=None,
            mtimes=True,
            setup=None,
            bindpaths=True,
    ):
        top = dataset.ds.pathobj
        target = absolute_path(path, dataset)
        problem = tools_problem(top)
        if problem:
            yield make_result(ACTION, target, top, Outcome.refused(
                Refusal.TOOLS, problem, dict(source=str(top))))
            return
        # a past state is for visiting: detached unless a branch is asked
        # for (git detaches for a commit or tag as well)
        detached = detach or (commit is not None and branch is None)
        plan = plan_add(
            top, target, None if detached else branch or target.name,
            max_depth(recursive, recursion_limit),
            [sparse] if isinstance(sparse, str) else sparse,
            note_left_out=not recursive and recursion_limit is None,
            revision=commit)
        depth = max_depth(recursive, recursion_limit)
        made = make_worktrees(plan, dry_run, worker_count(jobs), mtimes,
                              setup, bindpaths)
        if commit is not None and depth != 0 and not dry_run:
            # a past state's subdatasets that main lacks now: as
            # worktree-get gets them
            made = with_missing_got(plan, made, depth, mtimes, setup)
        yield from records(ACTION, top, made)
