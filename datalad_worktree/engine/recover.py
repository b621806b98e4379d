"""What a dead run of ours left: found by its journal, cleaned up before a
command goes on (see ``runners.journal``)

A run of worktree-add, -sync, -merge or -remove journals, in each
repository, what it is about to make there before it changes anything.
``recover(repo)`` finds the journals of runs that are dead (never of a
live one, on this host or, by its heartbeat, on another) and undoes
exactly what they left half made:

- git's lock files in that repository made after the dead run started
  there, while no git process works in the repository on this host and
  no live run of another host is journaled there (``runners.locks``);
- a worktree it was making and did not finish: its lock (git's
  'initializing') is lifted, and it is removed with its registration only
  where it holds no file that git did not check out (see
  ``discard_half_made``); its empty mount point is put back;
- a branch it created for that worktree, only where the branch is still
  at the commit it was made at and no worktree has it checked out;
- the user's staged changes that it set aside in the index while it
  merged or reset (``integrate.staged_kept``): staged again where the
  index has nothing else staged for their paths (``restage``).

Whatever cannot be attributed to a dead run of ours, or holds anything of
the user's, is left to the checks and refusals that follow, with their
advice. Two live runs that find the same dead journal do not both clean
up: the first renames it to claim it.
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path

from datalad_next.runners import CommandError

from datalad_worktree.base.outcome import error_line
from datalad_worktree.base.paths import same_path
from datalad_worktree.repo.queries import staged_entries
from datalad_worktree.repo.store.refs import git_dirs
from datalad_worktree.repo.worktrees import (
    checked_out_at,
    find_worktree,
    forget_worktree,
    list_worktrees,
)
from datalad_worktree.runners import git, journal
from datalad_worktree.runners.locks import (
    git_running_in,
    left_locks,
)

lgr = logging.getLogger('datalad.worktree.recover')

def recover(repo: Path) -> list[str]:
    """Clean up what dead runs of this package left in the repository of
    the working tree ``repo`` (see the module's docstring); notes on what
    was done or left, for the log and the records. A dry run
    (``Run.dry_run``) changes nothing: the checks that follow report what
    is left"""
    run = journal.current()
    if run is not None and run.dry_run:
        return []
    try:
        common = git_dirs(repo)[1]
    except OSError:
        return []
    found = journal.records(common)
    if not found:
        return []
    others = [r for r in found if not (run and run.is_mine(r))]
    limit = journal.stale_after()
    dead = [r for r in others if not journal.alive(r, limit)]
    if not dead:
        return []
    remote_live = any(r.host != socket.gethostname() for r in others
                      if r not in dead)
    notes = []
    for record in dead:
        claimed = journal.claim(record)
        if claimed is None:
            continue  # another run took it
        lgr.info('cleaning up after the dead run %s in %s', record.name,
                 repo)
        try:
            notes += clean_locks(common, record.since, remote_live)
            for entry in record.entries:
                if not entry.get('done'):
                    notes += undo(Path(entry.get('repo', repo)), entry)
        except Exception as e:  # noqa: BLE001 (reported, tried again)
            # given back, for the next run to try again
            journal.unclaim(claimed, record)
            why = error_line(e) if isinstance(e, CommandError) else e
            notes.append(f'cleaning up after {record.name} failed: {why}')
            continue
        journal.discard(claimed)
    for note in notes:
        lgr.warning('%s: %s', repo, note)
    return notes


def live_maker(repo: Path, target: Path) -> journal.Record | None:
    """The journal of a live run (another than this one) that is making
    the worktree ``target`` of ``repo``, or None"""
    try:
        common = git_dirs(repo)[1]
    except OSError:
        return None
    run = journal.current()
    for record in journal.records(common):
        if run and run.is_mine(record):
            continue
        if any(e.get('kind') == 'worktree' and not e.get('done') and
               same_path(Path(e['target']), target)
               for e in record.entries) and journal.alive(record):
            return record
    return None


def after_interruption(run: journal.Run) -> list[str]:
    """Clean up what ``run``, this process's, started and did not finish
    as SIGINT or SIGTERM ended it (its work at hand has ended: its git
    processes were killed with it, or finished), as for a dead run;
    notes on what was done or left"""
    notes = []
    for common, since in run.repositories():
        others = [r for r in journal.records(common) if not run.is_mine(r)]
        remote_live = any(r.host != socket.gethostname() and
                          journal.alive(r) for r in others)
        notes += clean_locks(common, since, remote_live)
    for common, _, entry in list(run.unfinished()):
        notes += undo(Path(entry.get('repo', common.parent)), entry)
    for note in notes:
        lgr.warning('%s', note)
    return notes


def clean_locks(common: Path, since: float, remote_live: bool
                ) -> list[str]:
    """Remove the git lock files in the repository of ``common`` that a
    killed git of a run that started there at ``since`` can have left:
    made since then, while no git works in the repository on this host
    (a git that holds a lock file is running; one that starts later cannot
    take a lock file that is there) and no live run of another host is
    journaled there. Each is removed only if it is still the same file
    (inode and time) as when it was found. Notes on what was removed"""
    if remote_live:
        return []
    old = []
    for lock in left_locks(common, since):
        try:
            old.append((lock, lock.lstat()))
        except FileNotFoundError:
            continue
    if not old or git_running_in(common) is not False:
        return []
    removed = []
    for lock, st in old:
        try:
            now_st = lock.lstat()
            if (now_st.st_ino, now_st.st_mtime_ns) != \
                    (st.st_ino, st.st_mtime_ns):
                continue
            lock.unlink()
            removed.append(lock)
        except FileNotFoundError:
            continue
    if not removed:
        return []
    return [f'removed {", ".join(map(str, removed))}, left by a killed run']


def undo(repo: Path, entry: dict) -> list[str]:
    """Undo one thing a dead run was making in ``repo``; notes"""
    if entry.get('kind') == 'staged':
        return restage(repo, entry)
    if entry.get('kind') != 'worktree':
        return []
    # imported here: worktree-add's planning, which make imports, recovers
    from datalad_worktree.engine.add.make import (
        discard_branch,
        discard_half_made,
    )
    target = Path(entry['target'])
    notes = []
    registered = find_worktree(list_worktrees(repo), target)
    unborn = registered is not None and registered.head is None
    if registered is not None and registered.locked is not None and \
            not unborn:
        # (an unborn one's lock goes with its registration: git cannot
        # unlock one killed while it wrote its commondir)
        try:
            git.run(repo, ['worktree', 'unlock', '--', str(target)])
        except CommandError as e:
            return [f'{target} stays locked: {error_line(e)}']
    mount_point = bool(entry.get('mount_point'))
    if unborn:
        # killed before git set its HEAD, so before its checkout
        left = drop_unborn(repo, target, mount_point)
    else:
        if registered is not None:
            prepare_status(target)
        left = discard_half_made(repo, target, mount_point)
    if left and not unborn and registered is not None and \
            registered.locked is not None and find_worktree(list_worktrees(repo), target) is not None:
        # it stays: locked as before, so that the refusal says what to do
        git.run(repo, ['worktree', 'lock', '--reason',
                       registered.locked or 'initializing', '--',
                       str(target)])
    if left:
        notes.append(f'what the dead run was making at {target}{left}')
    elif not registered and entry.get('mount_point'):
        target.mkdir(parents=True, exist_ok=True)
    branch, commit = entry.get('branch'), entry.get('commit')
    if entry.get('new_branch') and branch and not left and \
            not checked_out_at(list_worktrees(repo), branch):
        left = discard_branch(repo, branch, commit, 0)
        if left:
            notes.append(left.lstrip('; '))
    return notes


def drop_unborn(repo: Path, target: Path, mount_point: bool) -> str:
    """Remove the registration of a worktree at ``target`` that git
    registered but never checked out (no HEAD yet), and its directory
    (put back empty where it was a mount point), where the directory holds
    nothing but git's ``.git`` file; a note where something was left, or
    ''"""
    dotgit = target / '.git'
    try:
        admin = git_dirs(target)[0] if dotgit.is_file() else None
    except OSError:
        admin = None
    if admin is None:
        admin = next((a for a in _admins(git_dirs(repo)[1])
                      if _names(a, target)), None)
    others = [n for n in os.listdir(target) if n != '.git'] \
        if target.is_dir() else []
    if others:
        return (f'; it left {target} registered, with files that it did '
                'not check out, which were kept')
    if dotgit.is_file() and not dotgit.is_symlink():
        dotgit.unlink()
    if admin is not None:
        # git's lock, 'initializing', of the dead run's own making
        (admin / 'locked').unlink(missing_ok=True)
        forget_worktree(admin, repo)
    if target.is_dir() and not mount_point:
        target.rmdir()
    return ''


def _admins(common: Path) -> list[Path]:
    try:
        return [common / 'worktrees' / n
                for n in os.listdir(common / 'worktrees')]
    except OSError:
        return []


def _names(admin: Path, target: Path) -> bool:
    try:
        named = (admin / 'gitdir').read_text().strip()
    except OSError:
        return False
    return same_path(Path(named), target / '.git')


def prepare_status(target: Path) -> None:
    """Give a half-made worktree at ``target`` whose checkout was killed
    before git wrote its index the index of its HEAD (changing no file),
    so that a status tells the files git checked out from others"""
    try:
        gitdir = git_dirs(target)[0]
    except OSError:
        return
    if (gitdir / 'index').exists() or not (gitdir / 'HEAD').exists():
        return
    try:
        git.run(target, [*git.NO_ANNEX_FILTER, 'read-tree', 'HEAD'])
    except CommandError as e:
        lgr.debug('no index for %s: %s', target, error_line(e))


def restage(repo: Path, entry: dict) -> list[str]:
    """Stage again the user's staged changes that a dead run set aside
    while it merged or reset (``integrate.staged_kept``): each path whose
    index entry is still that of HEAD (none of the user's since) gets the
    entry the run journaled; the files are not touched. Notes on paths
    left as they are"""
    from datalad_worktree.engine.integrate import set_index
    wanted = {p: (m, sha) for m, sha, p in entry.get('entries', [])}
    if not wanted or not repo.is_dir():
        return []
    now = {p: (m, sha) for _, _, m, sha, p in staged_entries(repo)}
    back = [(m, sha, p) for p, (m, sha) in wanted.items() if p not in now]
    set_index(repo, back)
    kept = sorted(p for p, e in wanted.items() if p in now and now[p] != e)
    return [f'{repo}: {", ".join(kept)} staged otherwise since a killed run '
            'set them aside; left as they are'] if kept else []
