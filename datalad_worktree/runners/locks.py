"""git's lock files: waiting while another git holds them, and reporting
the ones an interrupted git left

Jobs of a cluster that make worktrees of one repository at the same time
meet each other's locks. A git command that failed only because another
git was busy (which git reports before it changes anything) is tried again
(``retry_on_lock``); lock files found before a command starts are waited
for, for a bounded time (``lock_wait``), and then reported, never removed
(``lingering``, ``lock_problem``).
"""

from __future__ import annotations

import logging
import os
import random
import re
import threading
import time
from pathlib import Path
from typing import (
    Callable,
    TypeVar,
)

from datalad import cfg as datalad_config
from datalad_next.runners import CommandError

from datalad_worktree.base.outcome import error_line

T = TypeVar('T')
lgr = logging.getLogger('datalad.worktree.git')


LOCK_WAIT = 60.0
"""How long, in seconds, ``retry_on_lock`` keeps trying in all"""


BUSY = re.compile(
    # index.lock, HEAD.lock, a ref's lock, packed-refs.lock
    r"Unable to create '[^']*\.lock': File exists"
    # config.lock, also of a worktree's config.worktree
    r"|could not lock config file .*: File exists"
    # a worktree that another git is registering, read half written
    r"|failed to read .*/worktrees/[^/]+/commondir")
"""What git says when it failed only because another git process was in
the middle of changing the same repository: in English, which every git
started by ``runners.git`` speaks, whatever the user's locale"""


def busy(exc: CommandError) -> bool:
    """Whether git failed only because another git process was busy in the
    same repository: it held a lock file that git needed (git gives up
    before it changes what the lock guards), or it was registering a
    worktree whose files git read half written (``git worktree add`` and
    ``git branch`` read every registered worktree before they change
    anything)"""
    stderr = exc.stderr or ''
    if isinstance(stderr, bytes):
        stderr = os.fsdecode(stderr)
    return BUSY.search(stderr) is not None


_interrupted = threading.Event()
"""Set once SIGINT or SIGTERM ended the command at hand: from then on,
nothing waits for another git's lock files (see ``stop_waiting``)"""


def stop_waiting() -> None:
    """Wait no more for lock files, in any thread, until ``resume_waiting``:
    the command was interrupted, and the lock files its work at hand meets
    may be those of its own git processes, killed with it, which the next
    run removes (``engine.recover``); waiting for them would keep Ctrl-C
    from ending the command for ``lock_wait()`` seconds"""
    _interrupted.set()


def resume_waiting() -> None:
    """Wait for lock files again (a command starts)"""
    _interrupted.clear()


def retry_on_lock(call: Callable[[], T], timeout: float = LOCK_WAIT) -> T:
    """What ``call()`` returns, calling it again while it fails (raises
    ``CommandError``) only because another git process was busy (see
    ``busy``): after waits that double from 0.05 s up to 2 s, each
    jittered by up to half of it either way so that processes that
    collided once do not collide again, until ``timeout`` seconds have
    passed in all; then the last failure is raised. Any other failure is
    raised at once.

    Only for calls that a failure of that kind leaves having changed
    nothing, or that do no more than the same again when repeated (such as
    setting a configuration item to one value): a ``call`` that ran two git
    commands where the first succeeded must not be repeated whole.
    """
    deadline = time.monotonic() + timeout
    delay = 0.05
    while True:
        try:
            return call()
        except CommandError as e:
            left = deadline - time.monotonic()
            if not busy(e) or left <= 0 or _interrupted.is_set():
                raise
            pause = min(left, delay * random.uniform(0.5, 1.5))
            lgr.debug('another git is busy in %s (%s); trying again in '
                      '%.2f s', e.cwd, error_line(e), pause)
        time.sleep(pause)
        delay = min(2.0, delay * 2)


def lock_problem(repo: Path, gitdir: Path, common: Path) -> str | None:
    """Why lock files that git holds in the working tree ``repo`` (with the
    git directory ``gitdir`` and the common one ``common``) block changing
    it, or None

    git holds ``index.lock``, ``HEAD.lock`` and the lock of the branch
    checked out while it changes them, and a killed git leaves them.
    Whether a git command still runs cannot be known: they are waited for
    (see ``lingering``), never removed.
    """
    locks = [gitdir / 'index.lock', gitdir / 'HEAD.lock']
    head = (gitdir / 'HEAD').read_text().strip()
    if head.startswith('ref: refs/heads/'):
        locks += _branch_lock_files(common, head[len('ref: refs/heads/'):])
    return lock_message(repo, lingering(locks))


def branch_locks(common: Path, branch: str, packed: bool = False
                 ) -> list[Path]:
    """The lock files of ``branch`` (with ``packed``: also of the packed
    refs, which deleting a branch needs) that git holds in the repository
    with the common git directory ``common`` and still holds after waiting
    for them (see ``lingering``)"""
    return lingering(_branch_lock_files(common, branch, packed))


def _branch_lock_files(common: Path, branch: str, packed: bool = False
                       ) -> list[Path]:
    found = [common / 'refs' / 'heads' / f'{branch}.lock']
    return found + [common / 'packed-refs.lock'] if packed else found


def lingering(locks: list[Path]) -> list[Path]:
    """Those of the lock files ``locks`` that are there after waiting for
    them to go away, as they do when the git process that holds one ends

    A lock file is waited for until it is gone or has been there for
    ``settings.lock_wait()`` seconds (by its modification time: one that a
    git killed long ago left is reported at once), and never for longer
    than that in all; checked again after waits that grow from 0.05 s to
    1 s, jittered.
    """
    bound = lock_wait()
    deadline = time.monotonic() + bound
    delay = 0.05
    while True:
        present, young = [], False
        for lock in locks:
            try:
                age = time.time() - lock.lstat().st_mtime
            except FileNotFoundError:
                continue
            present.append(lock)
            young = young or age < bound
        if not young or time.monotonic() >= deadline or \
                _interrupted.is_set():
            return present
        time.sleep(delay * random.uniform(0.5, 1.5))
        delay = min(1.0, delay * 2)


def lock_message(repo: Path, locks: list[Path]) -> str | None:
    """What to do about lock files a git command left in ``repo``, or None
    if there are none"""
    if not locks:
        return None
    return (f'git left {" and ".join(map(str, locks))} in {repo}: a git '
            'command there is still running, or one that no run of this '
            'package started was interrupted (what a killed run of it '
            'left is removed by the next run). If none is running, delete '
            'the lock file and run the command again')


def lock_wait() -> float:
    """How long, in seconds, to wait for lock files that other git
    processes hold: ``datalad.worktree.lock-wait`` where it is set to a
    number of seconds (0 or more), else ``LOCK_WAIT``"""
    datalad_config.reload()
    try:
        value = float(datalad_config.get('datalad.worktree.lock-wait',
                                         LOCK_WAIT))
    except (TypeError, ValueError):
        return LOCK_WAIT
    return value if value >= 0 else LOCK_WAIT


def left_locks(common: Path, since: float) -> list[Path]:
    """The lock files of git (and of git-annex's index) in the repository
    with the common git directory ``common`` that were made at ``since``
    (seconds of the epoch) or later: of the common directory (its index,
    HEAD, configuration, packed refs, any ref), and of every linked
    worktree's git directory (index, HEAD, its configuration)"""
    found = []
    candidates = [common / name for name in (
        'index.lock', 'HEAD.lock', 'config.lock', 'packed-refs.lock',
        'config.worktree.lock', 'annex/index.lock')]
    for admin in _children(common / 'worktrees'):
        candidates += [admin / name for name in (
            'index.lock', 'HEAD.lock', 'config.worktree.lock')]
    refs = common / 'refs'
    for dirpath, _, filenames in os.walk(refs):
        candidates += [Path(dirpath) / n for n in filenames
                       if n.endswith('.lock')]
    for path in candidates:
        try:
            made = path.lstat().st_mtime
        except FileNotFoundError:
            continue
        # a second of leeway: file systems round modification times
        if made >= since - 1:
            found.append(path)
    return found


def _children(folder: Path) -> list[Path]:
    try:
        return [folder / n for n in os.listdir(folder)]
    except (FileNotFoundError, NotADirectoryError):
        return []


def worktree_roots(common: Path) -> list[Path]:
    """The working trees of the repository with the common git directory
    ``common``: where its main one is (the parent of a ``.git``
    directory), and each linked one that its registry names"""
    roots = [common.parent] if common.name == '.git' else []
    for admin in _children(common / 'worktrees'):
        try:
            roots.append(Path((admin / 'gitdir').read_text().strip()).parent)
        except OSError:
            pass
    return roots


def git_running_in(common: Path) -> bool | None:
    """Whether a git process of this host (git, or git-annex, which runs
    git) works in the repository with the common git directory
    ``common``: its current directory is in one of its working trees or
    git directories; None where that cannot be known (no ``/proc``)"""
    proc = Path('/proc')
    if not (proc / 'self' / 'cwd').exists():
        return None
    places = [common, *worktree_roots(common)]
    me = os.getpid()
    for entry in _children(proc):
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            argv0 = (entry / 'cmdline').read_bytes().split(b'\0')[0]
            if not os.path.basename(argv0).startswith(b'git'):
                continue
            cwd = Path(os.readlink(entry / 'cwd'))
        except OSError:
            continue
        if any(_works_in(cwd, p) for p in places):
            return True
    return False


def _works_in(cwd: Path, place: Path) -> bool:
    """Whether a process in the directory ``cwd`` works in the repository
    of the working tree (or git directory) ``place``: ``cwd`` is in it, and
    not in another repository nested in it (a subdataset)"""
    if cwd != place and place not in cwd.parents:
        return False
    at = cwd
    while at != place:
        if (at / '.git').exists() and at.name != '.git':
            return False
        at = at.parent
    return True
