"""Get subdatasets into a linked worktree, as worktrees, never as clones"""

from __future__ import annotations

from dataclasses import replace
from pathlib import (
    Path,
    PurePosixPath,
)
from typing import Iterator

from datalad_next.commands import (
    EnsureCommandParameterization,
    Parameter,
    build_doc,
    datasetmethod,
    eval_results,
)
from datalad_next.constraints import (
    EnsureBool,
    EnsureDataset,
    EnsureListOf,
    EnsurePath,
)

from .clones import (
    clone_refusal,
    delete_clone,
    is_separate_clone,
    unique_holdings,
)
from .gitfiles import git_dirs
from .hierarchy import (
    Node,
    walk_hierarchy,
)
from .interface import (
    HIERARCHY_PARAMS,
    HIERARCHY_VALIDATORS,
    MTIMES_PARAM,
    SETUP_PARAM,
    WorktreeInterface,
    bars_for_people,
    guarded,
    make_result,
    tools_problem,
)
from .outcome import Outcome
from .paths import (
    absolute_path,
    is_within,
)
from .provider import Provider
from .registry import linked_worktree_problem
from .repo import head_commit

ACTION = 'worktree-get'
TRASH = 'worktree-get-trash'
"""Where, in the git directory of its parent's worktree, a separate clone
is moved to be deleted before a linked worktree replaces it"""


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
    passed on.

    A separate clone found where such a worktree belongs (from a ``datalad
    get -n`` in the worktree, or made by hand) is replaced by a linked
    worktree when it holds nothing that the main worktree's copy lacks: no
    commits or annexed content of its own, no uncommitted changes, no
    untracked or ignored files, no installed subdatasets. Otherwise it is
    refused, with the commands that bring its work home first.

    Each worktree made is reported with ``action='worktree-add'``, as
    ``worktree-add`` reports it; a PATH that needs nothing, and a refused
    clone, with ``action='worktree-get'``.
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
            dataset=EnsureDataset(installed=True,
                                  purpose='get subdatasets into it'),
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
    def __call__(path, *, dataset=None, recursive=False,
                 recursion_limit=None, dry_run=False, mtimes=True,
                 setup=None):
        top = dataset.ds.pathobj
        problem = tools_problem(top) or linked_worktree_problem(top)
        if problem:
            yield make_result(ACTION, top, top, Outcome('impossible', problem))
            return
        targets = []
        for p in [path] if isinstance(path, Path) else path:
            target = absolute_path(p, dataset)
            if not is_within(target, top):
                yield make_result(ACTION, target, top, Outcome(
                    'impossible', f'{target} is not inside the worktree '
                                  f'{top}; nothing was done'))
            else:
                targets.append(target)
        if not targets:
            return
        wanted = Wanted(top, targets, None if recursion_limit is None and
                        recursive else recursion_limit or 0)
        provider = Provider(top, dry_run, mtimes, setup, ACTION)
        reported = set()
        for result in get_subdatasets(top, wanted, provider, dry_run):
            reported.add(Path(result['path']))
            yield result
        for target in targets:
            if not reported & {target, *target.parents}:
                yield make_result(ACTION, target, top, Outcome(
                    'notneeded', 'nothing to get: the datasets at and '
                                 'above it are installed here'))


class Wanted:
    """Which datasets of the worktree a call asks for, and how many levels
    of subdatasets below each the worktrees it gets go"""

    def __init__(self, top: Path, targets: list[Path], limit: int | None):
        self.targets = [PurePosixPath(t.relative_to(top).as_posix())
                        for t in targets]
        self.limit = limit

    def depth(self, node: Node, nodes: dict[PurePosixPath, Node]
              ) -> int | None | bool:
        """How many levels below ``node`` to provide with it (None: all);
        False where ``node`` is not asked for. ``nodes`` are the datasets
        of the worktree by location, ``node`` and those above it included"""
        found: int | None | bool = False
        for t in self.targets:
            if node.relpath == t or t in node.relpath.parents:
                if self.limit is None:
                    return None
                base = max(n.depth for p, n in nodes.items()
                           if p == t or p in t.parents)
                if node.depth - base <= self.limit:
                    found = max(found or 0,
                                self.limit - (node.depth - base))
            elif node.relpath in t.parents and found is False:
                found = 0
        return found


def get_subdatasets(top: Path, wanted: Wanted, provider: Provider,
                    dry_run: bool) -> Iterator[dict]:
    """Provide the wanted subdatasets that the worktree ``top`` lacks, a
    level at a time (those below become visible once their parents are
    there), until none is left or nothing more can be made"""
    reported: set[PurePosixPath] = set()
    while True:
        missing: list[Node] = []
        clones: set[PurePosixPath] = set()
        nodes = {n.relpath: n for n in walk_hierarchy(
            top, head_commit(top), None)}

        def depth(node):
            return wanted.depth(node, nodes)

        for node in nodes.values():
            if not node.depth or depth(node) is False or \
                    clones & set(node.relpath.parents):
                # inside a separate clone: never touched from here
                continue
            if node.installed and not node.problem and \
                    not is_separate_clone(node.path, provider.main_copy(node)):
                continue
            if node.installed and not node.problem:
                clones.add(node.relpath)
            if node.relpath in reported:
                continue
            reported.add(node.relpath)
            if node.problem:
                yield make_result(ACTION, node.path, top,
                                  Outcome('impossible', node.problem))
            elif not node.installed:
                missing.append(node)
            else:
                outcome = guarded(lambda n: replace_clone(
                    n, provider.main_copy(n), top / n.parent, dry_run))(node)
                yield make_result(ACTION, node.path, top, outcome)
                if outcome.status == 'ok' and not dry_run:
                    missing.append(replace(node, installed=False))
        if not missing:
            return
        provider.created = False
        yield from provider.add(missing, depth, install=True)
        if not provider.created:
            return


def replace_clone(node: Node, main_copy: Path, parent: Path,
                  dry_run: bool) -> Outcome:
    """Delete the separate clone at ``node``'s place in its ``parent``
    dataset, so that a linked worktree of ``main_copy`` takes it, if it
    holds nothing that ``main_copy`` lacks; else why not, and what to do"""
    clone = node.path
    holdings = unique_holdings(clone, main_copy, ignored=True)
    if holdings:
        return Outcome('impossible', clone_refusal(
            clone, main_copy, holdings, 'run this again'))
    if dry_run:
        return Outcome('ok', 'would replace the separate clone, which holds '
                       f'nothing that {main_copy} lacks, with a linked '
                       'worktree', dict(dry_run=True))
    delete_clone(clone, git_dirs(parent)[0] / TRASH)
    return Outcome('ok', 'deleted the separate clone, which held nothing '
                   f'that {main_copy} lacks, to replace it with a linked '
                   'worktree')
