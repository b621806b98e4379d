"""Remove a nested worktree, with git's safety rules"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
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
    EnsureDataset,
    EnsurePath,
)
from datalad_next.runners import CommandError

from .core import (
    WorktreeInterface,
    record,
    Outcome,
    Worktree,
    absolute_path,
    commits_only_in,
    git_error,
    git_lines,
    git_out,
    head_commit,
    is_within,
    list_worktrees,
    run_ordered,
    same_path,
    walk_hierarchy,
    worktree_changes,
)

ACTION = 'worktree-remove'


@dataclass
class Member:
    """One dataset's linked worktree inside the nested worktree to remove"""
    entry: Worktree
    main: Worktree
    """The main worktree of the same repository"""

    @property
    def path(self) -> Path:
        return self.entry.path

    @property
    def branch(self) -> str | None:
        b = self.entry.branch
        return b.removeprefix('refs/heads/') if b else None


@build_doc
class WorktreeRemove(WorktreeInterface):
    """Remove a nested worktree: subdatasets first, then their parents

    PATH is a linked worktree of DATASET, normally one made by
    ``worktree-add``. The worktrees of the subdatasets inside it are removed
    first, deepest first, then their parents; each dataset's registration is
    pruned, and its branch is deleted unless [CMD: --keep-branch CMD][PY:
    keep_branch=True PY] is given.

    Nothing is removed in any dataset if any of them has uncommitted
    changes, untracked files that are not ignored, or commits that would be
    lost: commits that neither the main worktree's HEAD nor another branch
    contains (with [CMD: --keep-branch CMD][PY: keep_branch=True PY], the
    worktree's own branch counts as keeping them). [CMD: --force CMD][PY:
    force=True PY] lifts only that last refusal, and the result names the
    commits given up; uncommitted changes always block removal, so commit or
    discard them by hand. Ignored files, such as a ``.venv``, do not block
    removal and are removed with the worktree. A locked worktree (``git
    worktree lock``) is refused with its lock reason, and one whose
    directory was deleted by hand is pruned.

    Annexed content is never dropped: it lives in the shared annex and stays
    readable from the main worktree. Only directories that git lists as
    linked worktrees of the hierarchy are removed, never a main worktree.

    One result is reported per dataset with ``action='worktree-remove'``,
    ``path`` (the worktree), ``branch``, ``branch_deleted``, and
    ``given_up`` (commits given up with --force).
    """

    _action_ = ACTION
    _summary_ = {
        'ok': 'removed',
        'impossible': 'refused',
        'error': 'failed',
    }
    _dry_run_ok_ = 'would be removed'

    _params_ = dict(
        path=Parameter(
            args=('path',),
            metavar='PATH',
            doc="""the linked worktree to remove, with everything nested in
            it."""),
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
            path=EnsurePath(),
            dataset=EnsureDataset(installed=True,
                                  purpose='remove a worktree of it'),
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
        dict(text="Remove it but keep its branches",
             code_py="worktree_remove('../runs', keep_branch=True)",
             code_cmd="datalad worktree-remove --keep-branch ../runs"),
    ]

    @staticmethod
    @datasetmethod(name='worktree_remove')
    @eval_results
    def __call__(path, *, dataset=None, force=False, keep_branch=False,
                 dry_run=False):
        top = dataset.ds.pathobj
        target = absolute_path(path, dataset)

        def result(path, outcome: Outcome):
            return record(ACTION, path, top, outcome)

        problem = target_problem(top, target)
        if problem:
            yield result(target, Outcome('impossible', problem))
            return
        try:
            members = find_members(top, target)
            plans = {id(m): check(m, force, keep_branch) for m in members}
        except CommandError as e:
            yield result(target, Outcome('error', (
                f'cannot inspect the worktrees below {target}: '
                f'{git_error(e)}; nothing was removed')))
            return
        refused = [(m, plans[id(m)]) for m in members
                   if plans[id(m)].failed]
        if refused:
            for m, outcome in refused:
                outcome.message += '; nothing was removed'
                yield result(m.path, outcome)
            return
        if dry_run:
            for m in members:
                yield result(m.path, plans[id(m)])
            return

        def inside(m):
            return [c for c in members
                    if c is not m and is_within(c.path, m.path)]

        for m, outcome, blocker in run_ordered(
                members, inside, lambda m: remove(m, plans[id(m)]), 1,
                failed=lambda o: o.failed):
            if blocker:
                outcome = Outcome('impossible', (
                    f'not removed, because {blocker.path} inside it could '
                    'not be removed'))
            yield result(m.path, outcome)



def target_problem(top: Path, target: Path) -> str | None:
    """Why ``target`` is not a linked worktree of ``top`` to remove"""
    worktrees = list_worktrees(top)
    if same_path(worktrees[0].path, target):
        return f'{target} is the main worktree of {top}; it is never removed'
    if not any(same_path(w.path, target) for w in worktrees[1:]):
        linked = ', '.join(str(w.path) for w in worktrees[1:]) or 'none'
        return (f'{target} is not a linked worktree of {top} (its linked '
                f'worktrees: {linked}); nothing was removed')
    return None


def find_members(top: Path, target: Path) -> list[Member]:
    """The linked worktrees at and below ``target`` of every dataset in
    ``top``'s hierarchy and in the worktree's own hierarchy, deepest first"""
    found: dict[str, Member] = {}
    roots = [top] + ([target] if target.is_dir() else [])
    for root in roots:
        for node in walk_hierarchy(root, head_commit(root), None):
            if not node.installed or node.problem:
                continue
            worktrees = list_worktrees(node.path)
            for wt in worktrees:
                if is_within(wt.path, target) or same_path(wt.path, target):
                    found.setdefault(str(wt.path), Member(wt, worktrees[0]))
    return sorted(found.values(), key=lambda m: -len(m.path.parts))


def check(m: Member, force: bool, keep_branch: bool) -> Outcome:
    """What removing one member would do, or why it must not happen"""
    keys = dict(branch=m.branch, branch_deleted=False)
    if same_path(m.main.path, m.path):
        return Outcome('impossible', (
            f'{m.path} is a main worktree (a separate clone), not a linked '
            'worktree; remove or move it yourself first'), keys)
    if m.entry.locked is not None:
        reason = f' ({m.entry.locked})' if m.entry.locked else ''
        return Outcome('impossible', (
            f'{m.path} is locked{reason}; unlock it with '
            f"'git -C {m.main.path} worktree unlock {m.path}' first"), keys)
    stale = m.entry.prunable or not m.path.is_dir()
    if not stale:
        problem = local_files_problem(m.path)
        if problem:
            return Outcome('impossible', problem, keys)
    lost = []
    if m.entry.head and m.main.head:
        keeper = m.branch if keep_branch else None
        lost = commits_only_in(m.main.path, m.entry.head, [m.main.head],
                               None if keeper else m.branch)
    if lost and not force:
        shown = ', '.join(c[:10] for c in lost[:5])
        return Outcome('impossible', (
            f'{m.path} has {len(lost)} commit(s) that neither the main '
            f'worktree nor another branch contains ({shown}); merge them '
            "first (datalad worktree-merge), keep the branch "
            '(--keep-branch), or give --force to give them up'), keys)
    if lost:
        keys['given_up'] = lost
    keys['branch_deleted'] = bool(m.branch) and not keep_branch
    what = 'prune the registration of' if stale else 'remove'
    branch = (f', delete branch {m.branch}' if keys['branch_deleted']
              else f', keep branch {m.branch}' if m.branch else '')
    return Outcome('ok', f'would {what} {m.path}{branch}',
                   dict(keys, dry_run=True, stale=stale))


def local_files_problem(path: Path) -> str | None:
    """Why files in the worktree at ``path`` would be lost by removing it"""
    changed, untracked = worktree_changes(path)
    if changed:
        return (f'uncommitted changes in {path}: {", ".join(changed)}; '
                'commit or discard them by hand first')
    if untracked:
        return (f'untracked files in {path}: {", ".join(untracked)}; save, '
                'move or delete them first (ignored files do not block)')
    gitdir = Path(git_lines(path, ['rev-parse', '--path-format=absolute',
                                   '--git-dir'])[0])
    annex = gitdir / 'annex'
    if annex.is_dir() and not annex.is_symlink():
        return (f'{path} has annexed content of its own in {annex}, not in '
                'the shared annex; it is not removed')
    return None


def remove(m: Member, plan: Outcome) -> Outcome:
    """Remove one member's directory and registration, then its branch"""
    keys = {k: v for k, v in plan.keys.items() if k != 'dry_run'}
    stale = keys.pop('stale')
    repo = m.main.path
    try:
        still = [w for w in list_worktrees(repo)[1:]
                 if same_path(w.path, m.path)]
        if not still:
            return Outcome('error', (
                f'{m.path} is no longer listed as a worktree of {repo}; it '
                'was left alone'), keys)
        if not stale:
            shutil.rmtree(m.path)
        git_out(repo, ['worktree', 'prune'])
        done = ('directory was already gone; pruned its registration'
                if stale else 'removed')
        if keys['branch_deleted']:
            # by full ref name and expected tip: exact, never an option
            git_out(repo, ['update-ref', '-d', f'refs/heads/{m.branch}',
                           m.entry.head])
            done += f', deleted branch {m.branch}'
        elif m.branch:
            done += f', kept branch {m.branch}'
        if keys.get('given_up'):
            done += f", gave up {len(keys['given_up'])} commit(s)"
        return Outcome('ok', done, keys)
    except (CommandError, OSError) as e:
        why = git_error(e) if isinstance(e, CommandError) else str(e)
        return Outcome('error', f'removing {m.path} failed: {why}', keys)
