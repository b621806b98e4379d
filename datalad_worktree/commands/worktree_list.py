"""List the linked worktrees of a dataset hierarchy"""

from __future__ import annotations

from datalad.ui import ui
from datalad_next.commands import (
    EnsureCommandParameterization,
    Parameter,
    ValidatedInterface,
    build_doc,
    datasetmethod,
    eval_results,
)

from datalad_worktree.commands._common import (
    HIERARCHY_PARAMS,
    HIERARCHY_VALIDATORS,
    EnsureInstalledDataset,
    bars_for_people,
    failures_reported,
    max_depth,
    render_result,
    shown,
)
from datalad_worktree.commands.results import records
from datalad_worktree.engine.listing import list_hierarchy

ACTION = 'worktree-list'


@build_doc
class WorktreeList(ValidatedInterface):
    """List the linked worktrees of a dataset and its subdatasets

    One result is reported for each linked worktree of each dataset in the
    hierarchy, so the nested worktrees made by ``worktree-add`` show up
    once per dataset. The command's own rendering groups them by the
    worktree of the top dataset they belong to and marks those that hold
    commits of their own that the main worktree does not have (unmerged
    results; not the commits that only record subdataset states the main
    worktree's subdatasets contain), those that
    are not clean, and those whose directory is gone.

    Each result has ``action='worktree-list'``, ``status='ok'``,
    ``type='dataset'``, ``path`` (the worktree), ``dataset`` (the dataset
    in the hierarchy it is a worktree of), ``worktree_root`` (the worktree
    of the top dataset that contains it, or the worktree itself),
    ``relpath`` (its place below that root), ``branch`` (None when
    detached), ``head``, ``clean`` (no uncommitted changes and no untracked
    files; None when the directory is gone), ``ahead`` and ``behind``
    (commits it has that the main worktree's HEAD has not, and the other
    way round), ``unmerged`` (those of the ``ahead`` commits that are
    unmerged results: all but the ones that only record subdataset states
    which the main worktree's subdatasets contain, such as
    ``worktree-sync`` makes; what ``worktree-remove`` refuses to give up),
    ``stale`` (its directory is gone), ``moved_to`` (where a worktree
    whose directory is gone was found moved together with its main
    dataset, else None), ``linked`` (False where its ``.git`` does not
    lead back to the registration that records it there: it, or its main
    dataset, was moved by hand), ``repair`` (the ``worktree-repair``
    command that re-links a moved or broken one; NEWPATH where its new
    place is not known; None where nothing is to repair) and ``locked`` (the lock
    reason, '' for a lock without one, None when not locked) and
    ``own_annex`` (it keeps annexed content in an annex of its own, not in
    the shared one, as git-annex made it for an absorbed git directory;
    ``worktree-sync`` repairs it; None when the directory is gone),
    ``sparse`` (the directories of a sparse checkout, as
    ``worktree-add --sparse`` makes it; None for a full checkout),
    ``clone`` (False), ``made_from`` (for a worktree of a past state, as
    ``worktree-add PATH COMMIT-ISH`` makes it: ``revision``, the
    COMMIT-ISH as given, and ``commit``, the commit this dataset's
    worktree checked out for it; None for one made from HEAD, and when the
    directory is gone).

    A separate clone found where a linked worktree of a subdataset belongs
    (made by ``datalad get -n`` inside the worktree, or by hand) is listed
    too, with ``clone=True``, ``dataset`` (the main worktree's copy of
    that subdataset, installed or not) and ``holds`` (what it holds that
    this copy lacks: commits, annexed content). ``worktree-merge`` refuses
    it while it holds any, and ``worktree-get`` replaces it with a linked
    worktree once it holds nothing.

    A subdataset that cannot be looked at, such as one reached through a
    symbolic link that leads elsewhere, is reported with
    ``status='impossible'`` and why; its worktrees are not listed. A
    linked worktree that cannot be looked at, such as one that git refuses
    because another user owns it (refusal 'dubious-ownership', with
    ``safe_directory``), is reported with ``dataset``, ``branch`` and
    ``head`` and why; the others are listed. The summary counts what could
    not be looked at.

    A refusal (``status='impossible'``) names why in ``refusal``, a code
    that stays the same when its message is reworded, for scripts to
    branch on ('uncommitted-changes', 'unmerged-commits', 'conflicts',
    'locked', ...); an error keeps its exception in ``exception``.
    """

    result_renderer = 'tailored'

    _params_ = dict(
        dataset=Parameter(
            args=('-d', '--dataset'),
            metavar='DATASET',
            doc="""dataset whose worktrees to list. If not given, the
            dataset that contains the current directory."""),
        recursive=HIERARCHY_PARAMS['recursive'],
        recursion_limit=HIERARCHY_PARAMS['recursion_limit'],
    )

    _validator_ = EnsureCommandParameterization(
        dict(
            dataset=EnsureInstalledDataset(purpose='list its worktrees'),
            recursive=HIERARCHY_VALIDATORS['recursive'],
            recursion_limit=HIERARCHY_VALIDATORS['recursion_limit'],
        ),
        validate_defaults=('dataset',),
    )

    _examples_ = [
        dict(text="Show all nested worktrees of the current dataset",
             code_py="worktree_list(recursive=True)",
             code_cmd="datalad worktree-list -r"),
        dict(text="The same as JSON records, for scripts",
             code_py="worktree_list(recursive=True, return_type='list')",
             code_cmd="datalad -f json worktree-list -r"),
    ]

    @staticmethod
    @datasetmethod(name='worktree_list')
    @bars_for_people
    @eval_results
    @failures_reported(ACTION)
    def __call__(*, dataset=None, recursive=False, recursion_limit=None):
        top = dataset.ds.pathobj
        yield from records(ACTION, top, list_hierarchy(
            top, max_depth(recursive, recursion_limit)))

    @staticmethod
    def custom_result_renderer(res, **kwargs):
        if res.get('action') != ACTION or res['status'] != 'ok':
            render_result(res)

    @staticmethod
    def custom_result_summary_renderer(results):
        listed = [r for r in results
                  if r.get('action') == ACTION and r['status'] == 'ok']
        failed = sum(1 for r in results
                     if r.get('status') in ('impossible', 'error'))
        unlisted = (f'{failed} dataset(s) or worktree(s) could not be '
                    'looked at (see above)') if failed else ''
        if not listed:
            ui.message(f'no linked worktrees listed: {unlisted}'
                       if failed else 'no linked worktrees')
            return
        roots: dict[str, list] = {}
        for r in listed:
            roots.setdefault(r['worktree_root'], []).append(r)
        for root, members in roots.items():
            unmerged = sum(1 for r in members if r['unmerged'])
            ui.message(f'{shown(root)}'
                       + (f'  [{unmerged} with unmerged results]'
                          if unmerged else ''))
            for r in sorted(members, key=lambda r: r['relpath']):
                ui.message(f"  {r['relpath']:<30} {_summary(r)}")
        if failed:
            ui.message(f'and {unlisted}')


def _summary(r: dict) -> str:
    """One line about a listed worktree, for people"""
    bits = [r['branch'] or 'detached', (r['head'] or '?')[:10]]
    if r['stale'] and r.get('moved_to'):
        bits.append(f"MOVED to {shown(r['moved_to'])}: repair with "
                    f"{r['repair']}")
    elif r['stale']:
        bits.append('STALE: directory gone; if you moved it: '
                    f"{r['repair']}" if r.get('repair') else
                    'STALE: directory gone')
    elif r.get('linked') is False:
        bits.append('LINKS BROKEN (its main dataset was moved or copied?): repair '
                    f"with {r['repair']}")
    elif r['clean'] is False:
        bits.append('not clean')
    if r.get('sparse') is not None:
        bits.append(f"sparse: {', '.join(r['sparse'])}")
    if r.get('made_from'):
        bits.append(f"made from {r['made_from']['revision']}")
    if r['unmerged']:
        bits.append(f"{r['unmerged']} unmerged commit(s)")
    records = (r['ahead'] or 0) - (r['unmerged'] or 0)
    if records > 0:
        bits.append(f'{records} commit(s) only recording subdataset states')
    if r['behind']:
        bits.append(f"{r['behind']} behind")
    if r.get('clone'):
        bits.append('SEPARATE CLONE, not a worktree' + (
            f": holds {'; '.join(r['holds'])}" if r['holds'] else
            ': holds nothing the main worktree lacks'))
    if r.get('own_annex'):
        bits.append('OWN ANNEX: not the shared one (worktree-sync repairs)')
    if r['locked'] is not None:
        bits.append(f"locked{': ' + r['locked'] if r['locked'] else ''}")
    return '  '.join(bits)
