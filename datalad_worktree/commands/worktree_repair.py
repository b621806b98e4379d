"""Re-link a nested worktree, or a main dataset, that was moved by hand"""

from __future__ import annotations

import os
from pathlib import Path

from datalad_next.commands import (
    EnsureCommandParameterization,
    Parameter,
    build_doc,
    datasetmethod,
    eval_results,
)
from datalad_next.constraints import (
    EnsureDataset,
    EnsurePath,
)

from datalad_worktree.base.outcome import Outcome, Refusal
from datalad_worktree.base.paths import absolute_path
from datalad_worktree.commands._common import (
    WorktreeInterface,
    bars_for_people,
    failures_reported,
)
from datalad_worktree.commands.results import make_result, records
from datalad_worktree.engine.relink import repair
from datalad_worktree.runners.tools import tools_problem

ACTION = 'worktree-repair'


@build_doc
class WorktreeRepair(WorktreeInterface):
    """Re-link a nested worktree, or a main dataset, that was moved by hand

    A nested worktree and its main dataset know each other by path, in
    every dataset of the hierarchy: the worktree's ``.git`` (a file, or
    the symbolic link that git-annex makes of it) names its git directory
    in the main dataset's repository, whose registration names the
    worktree. Moving either with ``mv`` breaks these links, and the
    commands of this package then name this command.

    Run in (or given) a moved worktree, it re-links every dataset of that
    worktree in both directions: the registration, the worktree's ``.git``
    file or link, the ``annex`` link of its git directory where that is
    broken, and the paths in the worktree's own configuration that
    ``worktree-add`` wrote (container bind paths). Where the worktree's
    ``.git`` leads nowhere and its main dataset is not found from there (a
    relative link is tried from every directory above it), give the main
    dataset with [CMD: -d MAIN CMD][PY: dataset=MAIN PY].

    Run in a moved main dataset (without PATH, or with PATH the main
    dataset), it re-links the ``.git`` of its subdatasets whose git
    directories it absorbed (``.git/modules``), and every linked worktree
    of every dataset of its hierarchy: those still where they were, and
    those moved together with it (found at the same path below a directory
    above the main dataset).

    ``git worktree repair`` does what git can (``.git`` files); git-annex's
    ``.git`` links, which git refuses ('.git is not a file'), are rewritten
    here, one file at a time, after checking that each names the
    registration it is linked to. Nothing is changed where PATH is not a
    moved worktree of DATASET: a main worktree, a copy of a worktree that
    is still in place, a directory of something else
    (``refusal='not-moved'``). Running it again where nothing is broken
    reports ``notneeded``.

    One result per dataset: ``action='worktree-repair'``, ``path`` (its
    worktree, where it is now), ``moved_from`` (where it was registered,
    None where it was not moved).
    """

    _params_ = dict(
        path=Parameter(
            args=('path',),
            metavar='PATH',
            nargs='?',
            doc="""the moved worktree. If not given, the worktree or
            dataset that contains the current directory (or DATASET)."""),
        dataset=Parameter(
            args=('-d', '--dataset'),
            metavar='MAIN',
            doc="""the main dataset that PATH is a worktree of. Needed only
            where PATH's links do not lead back to it."""),
    )

    _validator_ = EnsureCommandParameterization(
        dict(
            path=EnsurePath(),
            dataset=EnsureDataset(installed=True,
                                  purpose='repair its worktrees'),
        ),
    )

    _examples_ = [
        dict(text="Repair the worktree you moved and are in",
             code_py="worktree_repair()",
             code_cmd="datalad worktree-repair"),
        dict(text="From the main dataset, repair a worktree moved to "
                  "'../elsewhere/runs'",
             code_py="worktree_repair('../elsewhere/runs', dataset='.')",
             code_cmd="datalad worktree-repair -d . ../elsewhere/runs"),
        dict(text="Repair every worktree after moving the main dataset",
             code_py="worktree_repair(dataset='.')",
             code_cmd="datalad worktree-repair -d ."),
    ]

    @staticmethod
    @datasetmethod(name='worktree_repair')
    @bars_for_people
    @eval_results
    @failures_reported(ACTION)
    def __call__(path=None, *, dataset=None):
        main = dataset.ds.pathobj if dataset is not None else None
        if path is not None:
            where = absolute_path(Path(path), dataset) if dataset is not None \
                else Path(os.path.abspath(path))
        elif main is not None:
            where = main
        else:
            here = Path.cwd()
            where = next((p for p in (here, *here.parents)
                          if os.path.lexists(p / '.git')), here)
        problem = tools_problem(annex=False)
        if problem:
            yield make_result(ACTION, where, main or where,
                              Outcome.refused(Refusal.TOOLS, problem))
            return
        yield from records(ACTION, main or where, repair(where, main))
