"""Move a nested worktree, with every link of every dataset"""

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
from datalad_worktree.engine.relink import move
from datalad_worktree.runners.tools import tools_problem

ACTION = 'worktree-move'


@build_doc
class WorktreeMove(WorktreeInterface):
    """Move a nested worktree to another place, with all its datasets

    ``git worktree move`` refuses a worktree that holds submodules, and
    moving one with ``mv`` breaks its links (see ``worktree-repair``).
    This moves the whole directory OLD to NEW in one rename, then re-links
    every dataset there: its registration, its ``.git`` file or
    git-annex's ``.git`` link, and the paths in its own configuration.

    Refused, with nothing moved, where git would refuse: a worktree of the
    hierarchy that is locked (``git worktree lock``), NEW that exists and
    is not an empty directory (``refusal='exists'``), NEW inside a dataset
    or any git working tree, or inside OLD (``'bad-path'``); also while
    another command of this package works in one of its datasets
    (``'locked'``), and where OLD was moved by hand already (repair it with
    ``worktree-repair``). A move to another file system is not made
    (git cannot move a worktree there either); the message says how.

    After an interruption, run the same command again: where OLD is gone
    and NEW holds the moved worktree, it only re-links (as
    ``worktree-repair NEW`` does).

    One result per dataset: ``action='worktree-move'``, ``path`` (its
    worktree at NEW), ``moved_from``.
    """

    _params_ = dict(
        old=Parameter(args=('old',), metavar='OLD',
                      doc="""the nested worktree to move"""),
        new=Parameter(args=('new',), metavar='NEW',
                      doc="""where it goes: a path that does not exist yet,
                      or an empty directory"""),
        dataset=Parameter(
            args=('-d', '--dataset'),
            metavar='MAIN',
            doc="""the main dataset that OLD is a worktree of. If not given,
            the one OLD's links lead to."""),
    )

    _validator_ = EnsureCommandParameterization(
        dict(
            old=EnsurePath(),
            new=EnsurePath(),
            dataset=EnsureDataset(installed=True,
                                  purpose='move a worktree of it'),
        ),
    )

    _examples_ = [
        dict(text="Move the worktree '../runs' to '../archive/runs-2024'",
             code_py="worktree_move('../runs', '../archive/runs-2024')",
             code_cmd="datalad worktree-move ../runs ../archive/runs-2024"),
    ]

    @staticmethod
    @datasetmethod(name='worktree_move')
    @bars_for_people
    @eval_results
    @failures_reported(ACTION)
    def __call__(old, new, *, dataset=None):
        main = dataset.ds.pathobj if dataset is not None else None

        def place(p):
            return absolute_path(Path(p), dataset) if dataset is not None \
                else Path(os.path.abspath(p))
        problem = tools_problem(annex=False)
        if problem:
            yield make_result(ACTION, place(old), main or place(old),
                              Outcome.refused(Refusal.TOOLS, problem))
            return
        yield from records(ACTION, main or place(old),
                           move(place(old), place(new), main))
