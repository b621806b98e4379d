"""Remove a nested worktree, with git's safety rules"""

from __future__ import annotations

import errno
import os
import shutil
from dataclasses import dataclass
from pathlib import (
    Path,
    PurePosixPath,
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
    branch_locks,
    commits_only_in,
    git_error,
    git_lines,
    git_out,
    head_commit,
    is_within,
    list_worktrees,
    lock_message,
    redirected,
    run_ordered,
    same_path,
    unsafe_relpath,
    walk_hierarchy,
    worktree_changes,
)

ACTION = 'worktree-remove'
TRASH = 'worktree-remove-trash'
"""Where, in its own git directory, a worktree directory is moved to be
deleted (``git worktree prune`` deletes what an interruption left there)"""


@dataclass
class Member:
    """One dataset's linked worktree inside the nested worktree to remove"""
    entry: Worktree
    main: Worktree
    """The main worktree of the same repository"""
    root: Path
    """The worktree to remove, spelled as the start of ``path``"""

    @property
    def path(self) -> Path:
        return self.entry.path

    @property
    def relpath(self) -> PurePosixPath:
        """Where ``path`` is below ``root``"""
        path = Path(os.path.normpath(self.path))
        return PurePosixPath(path.relative_to(self.root).as_posix())

    @property
    def head(self) -> str | None:
        """The checked-out commit; None when there is none, such as when
        the branch was deleted already (git lists it as all zeros)"""
        head = self.entry.head
        return head if head and set(head) != {'0'} else None

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

    Nothing is removed either if a symbolic link on the way to a
    subdataset's place in the worktree leads elsewhere: nothing is ever
    deleted or followed through one.

    Annexed content is never dropped: it lives in the shared annex and stays
    readable from the main worktree. Only directories that git lists as
    linked worktrees of the hierarchy are removed, never a main worktree.
    Each dataset's directory goes first, then its branch, then its
    registration, so running the command again after an interruption
    finishes the removal.

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
            members, linked = find_members(top, target)
            plans = {id(m): check(m, force, keep_branch) for m in members}
        except CommandError as e:
            yield result(target, Outcome('error', (
                f'cannot inspect the worktrees below {target}: '
                f'{git_error(e)}; nothing was removed')))
            return
        refused = [(Path(p), Outcome('impossible', why))
                   for p, why in linked.items()]
        refused += [(m.path, plans[id(m)]) for m in members
                    if plans[id(m)].failed]
        if refused:
            for path, outcome in refused:
                outcome.message += '; nothing was removed'
                yield result(path, outcome)
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


def find_members(top: Path, target: Path
                 ) -> tuple[list[Member], dict[str, str]]:
    """The linked worktrees at and below ``target`` of every dataset in
    ``top``'s hierarchy and in the worktree's own hierarchy, deepest first,
    and the places that a symbolic link makes lead elsewhere, each with why
    it is refused"""
    found: dict[str, Member] = {}
    linked: dict[str, str] = {}
    roots = [top] + ([target] if target.is_dir() else [])
    for root in roots:
        for node in walk_hierarchy(root, head_commit(root), None):
            if node.problem and root is target and \
                    not unsafe_relpath(str(node.relpath)):
                linked.setdefault(os.path.normpath(node.path), link_problem(
                    node.path, target, node.relpath))
            if not node.installed or node.problem:
                continue
            worktrees = list_worktrees(node.path)
            for wt in worktrees:
                place = placed_below(wt.path, target)
                problem = registration_problem(wt.path, place, node.path,
                                               target)
                if problem:
                    linked.setdefault(os.path.normpath(wt.path), problem)
                elif place:
                    found.setdefault(str(wt.path),
                                     Member(wt, worktrees[0], place[0]))
    members = sorted(found.values(), key=lambda m: -len(m.path.parts))
    return members, linked


def registration_problem(path: Path, place, repo: Path,
                         target: Path) -> str | None:
    """Why the worktree of ``repo`` registered at ``path`` (``place``, see
    :func:`placed_below`) blocks removing ``target``: a symbolic link on
    its way from ``target`` leads elsewhere, or one puts it, registered
    outside, inside ``target``"""
    if place:
        return link_problem(path, *place) if redirected(*place) else None
    if is_within(path, target):
        return linked_in_problem(path, repo, target)
    return None


def placed_below(path: Path, target: Path
                 ) -> tuple[Path, PurePosixPath] | None:
    """Where ``path``, as git records it, is at or below ``target``,
    without following symbolic links: the spelling of ``target`` it starts
    with (as given, or resolved) and the rest; None when it is not"""
    path = Path(os.path.normpath(path))
    for root in (Path(os.path.normpath(target)),
                 Path(os.path.realpath(target))):
        if path == root or root in path.parents:
            return root, PurePosixPath(path.relative_to(root).as_posix())
    return None


def first_link(root: Path, relpath: PurePosixPath) -> Path:
    """The first symbolic link on the way from ``root`` to ``root/relpath``"""
    path = root
    for part in relpath.parts:
        path = path / part
        if path.is_symlink():
            break
    return path


def link_problem(path: Path, root: Path, relpath: PurePosixPath) -> str:
    """Why ``path``, reached from ``root`` through a symbolic link that
    leads elsewhere, is not removed, and what to do"""
    link = first_link(root, relpath)
    leads = f' (to {os.readlink(link)})' if link.is_symlink() else ''
    return (f'refusing {path}: a symbolic link on its path leads elsewhere: '
            f'{link}{leads}. Nothing is deleted or followed through it; '
            'move the worktree back in place of the link, or delete just '
            'the link (not what it leads to) to have only the registration '
            'pruned, then run the command again')


def linked_in_problem(path: Path, repo: Path, target: Path) -> str:
    """Why a worktree registered outside ``target`` that a symbolic link
    puts inside it blocks the removal, and what to do"""
    return (f'refusing {target}: the worktree of {repo} registered at '
            f'{path} is inside it, because a symbolic link on its path '
            'leads elsewhere, and would be deleted with it unchecked; '
            'remove that worktree first, or delete the link')


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
    delete = bool(m.branch) and not keep_branch
    if delete:
        problem = branch_lock_problem(m)
        if problem:
            return Outcome('impossible', problem, keys)
    lost = []
    if m.head and m.main.head:
        lost = commits_only_in(m.main.path, m.head, [m.main.head],
                               None if keep_branch else m.branch)
    if lost and not force:
        shown = ', '.join(c[:10] for c in lost[:5])
        return Outcome('impossible', (
            f'{m.path} has {len(lost)} commit(s) that neither the main '
            f'worktree nor another branch contains ({shown}); merge them '
            "first (datalad worktree-merge), keep the branch "
            '(--keep-branch), or give --force to give them up'), keys)
    if lost:
        keys['given_up'] = lost
    keys['branch_deleted'] = delete
    what = 'prune the registration of' if stale else 'remove'
    return Outcome('ok', f'would {what} {m.path}'
                         f'{branch_note(m, delete, False)}',
                   dict(keys, dry_run=True, stale=stale))


def branch_note(m: Member, delete: bool, done: bool) -> str:
    """What happens to the member's branch, as the end of a message"""
    if not m.branch:
        return ''
    if not m.head:
        return f', branch {m.branch} was already gone'
    if delete:
        return f', {"deleted" if done else "delete"} branch {m.branch}'
    return f', {"kept" if done else "keep"} branch {m.branch}'


def branch_lock_problem(m: Member) -> str | None:
    """Why lock files that a killed git left keep the member's branch from
    being deleted, or None"""
    return lock_message(m.main.path,
                        branch_locks(m.main.path, m.branch, packed=True))


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
    """Remove one member: its directory, then its branch, then its
    registration

    In this order, a run that was interrupted at any point leaves the
    member registered (with its directory gone) until all else is done, so
    that running the command again finds it and finishes: the directory
    goes in one step, and a branch that is gone already is skipped.
    """
    keys = {k: v for k, v in plan.keys.items() if k != 'dry_run'}
    stale = keys.pop('stale')
    repo = m.main.path
    try:
        problem = no_longer_removable(m)
        if problem:
            return Outcome('error', problem, keys)
        if not stale:
            delete_directory(m.path)
        if keys['branch_deleted'] and m.head:
            # by full ref name and expected tip: exact, never an option
            git_out(repo, ['update-ref', '-d', f'refs/heads/{m.branch}',
                           m.head])
        git_out(repo, ['worktree', 'prune'])
    except (CommandError, OSError) as e:
        why = git_error(e) if isinstance(e, CommandError) else str(e)
        return Outcome('error', f'removing {m.path} failed: {why}', keys)
    done = ('directory was already gone; pruned its registration'
            if stale else 'removed')
    done += branch_note(m, keys['branch_deleted'], True)
    if keys.get('given_up'):
        done += f", gave up {len(keys['given_up'])} commit(s)"
    return Outcome('ok', done, keys)


def no_longer_removable(m: Member) -> str | None:
    """Why the member must be left alone after all, checked right before it
    is removed: it is no longer registered, or a symbolic link now leads
    elsewhere on its path"""
    repo = m.main.path
    if not any(same_path(w.path, m.path) for w in list_worktrees(repo)[1:]):
        return (f'{m.path} is no longer listed as a worktree of {repo}; it '
                'was left alone')
    if redirected(m.root, m.relpath):
        return link_problem(m.path, m.root, m.relpath) + \
            '; it was left alone'
    return None


def delete_directory(path: Path) -> None:
    """Delete the worktree directory ``path`` so that an interruption
    leaves it complete or gone: it is first moved, in one step, into its
    own git directory, which ``git worktree prune`` deletes with whatever
    is left there (on another file system, it is deleted where it is)"""
    gitdir = Path(git_lines(path, ['rev-parse', '--path-format=absolute',
                                   '--git-dir'])[0])
    trash = gitdir / TRASH
    try:
        os.rename(path, trash)
    except OSError as e:
        if e.errno != errno.EXDEV:
            raise
        trash = path
    shutil.rmtree(trash)
