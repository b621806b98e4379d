"""The git process layer: the only place in this package that starts git

Every other module asks git through the functions here. Arguments are
passed as a list, never through a shell. Output is read as bytes and
decoded with the file system encoding's error handler (``os.fsdecode``),
so a file name that is not UTF-8 comes back as a string that turns into
the same bytes again when it is handed back to git. A failure raises
DataLad's ``CommandError`` with git's exit code, output and stderr.

datalad-next's ``call_git*`` helpers decode output strictly as UTF-8 text
(and fail on such file names), and its bytes path streams through threads;
this layer is the small bytes-safe equivalent of ``subprocess.run``.
"""

from __future__ import annotations

import logging
import os
import random
import re
import subprocess
import time
from functools import lru_cache
from pathlib import Path
from typing import (
    Callable,
    TypeVar,
)

from datalad_next.runners import CommandError

lgr = logging.getLogger('datalad.worktree.git')

MIN_GIT = (2, 31)
"""Oldest git supported: its ``worktree list --porcelain`` marks worktrees
whose directory is gone as prunable"""
MIN_ANNEX = (10, 20230626)
"""Oldest git-annex supported: the first with ``git annex pull``, which
the advice for separate clones uses"""

NO_ANNEX_FILTER = ('-c', 'filter.annex.process=', '-c', 'filter.annex.clean=',
                   '-c', 'filter.annex.smudge=')
"""git options that keep git from starting git-annex's filter"""


def run(repo: Path, args: list[str], input: str | None = None,
        env: dict[str, str] | None = None) -> bytes:
    """Run git with ``args`` in ``repo``; its standard output, as bytes

    ``input`` (encoded like a file name) is given to git's standard input;
    ``env`` is added to the environment git runs in. Raises
    ``CommandError`` when git exits with a code other than 0.
    """
    cmd = ['git', *args]
    res = subprocess.run(
        cmd, cwd=repo, capture_output=True,
        input=None if input is None else os.fsencode(input),
        env=None if env is None else {**os.environ, **env})
    if res.returncode:
        raise CommandError(cmd=cmd, code=res.returncode,
                           stdout=os.fsdecode(res.stdout),
                           stderr=os.fsdecode(res.stderr), cwd=repo)
    return res.stdout


def text(repo: Path, args: list[str], input: str | None = None,
         env: dict[str, str] | None = None) -> str:
    """Run git in ``repo``; its standard output, exactly, as a string"""
    return os.fsdecode(run(repo, args, input, env))


def lines(repo: Path, args: list[str]) -> list[str]:
    """Run git in ``repo``; its output split at newlines"""
    return text(repo, args).split('\n')[:-1]


def entries(repo: Path, args: list[str]) -> list[str]:
    """Run git with ``-z`` output in ``repo``; its NUL-terminated entries"""
    return text(repo, args).split('\0')[:-1]


def answers(repo: Path, args: list[str],
            env: dict[str, str] | None = None) -> bool:
    """Run a git command that answers yes (exit code 0) or no (exit code 1)

    ``env`` is added to its environment. Any other exit code is a failure
    and raises ``CommandError``.
    """
    try:
        run(repo, args, env=env)
    except CommandError as e:
        if e.returncode == 1:
            return False
        raise
    return True


def optional_text(repo: Path, args: list[str]) -> str | None:
    """Run a git command that exits with code 1 when it finds nothing:
    its output, or None for nothing found (other failures raise)"""
    try:
        return text(repo, args)
    except CommandError as e:
        if e.returncode == 1:
            return None
        raise


def run_all(calls: list[tuple[Path, list[str]]]) -> list[bytes]:
    """Run the git commands ``calls`` (directory, arguments) at the same
    time; their outputs, in order. Raises ``CommandError`` for the first
    that failed, after all have ended."""
    procs = [(cwd, args, subprocess.Popen(
        ['git', *args], cwd=cwd, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE)) for cwd, args in calls]
    outputs, failed = [], None
    for cwd, args, proc in procs:
        out, err = proc.communicate()
        outputs.append(out)
        if proc.returncode and failed is None:
            failed = CommandError(cmd=['git', *args], code=proc.returncode,
                                  stdout=os.fsdecode(out),
                                  stderr=os.fsdecode(err), cwd=cwd)
    if failed:
        raise failed
    return outputs


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
the middle of changing the same repository"""

T = TypeVar('T')


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
            if not busy(e) or left <= 0:
                raise
            pause = min(left, delay * random.uniform(0.5, 1.5))
            lgr.debug('another git is busy in %s (%s); trying again in '
                      '%.2f s', e.cwd, error_line(e), pause)
        time.sleep(pause)
        delay = min(2.0, delay * 2)


def error_line(exc: CommandError) -> str:
    """The last line git wrote to stderr, for a message a person can read"""
    stderr = exc.stderr or ''
    if isinstance(stderr, bytes):
        stderr = os.fsdecode(stderr)
    found = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    return found[-1] if found else str(exc)


@lru_cache(maxsize=None)
def tools_problem(annex: bool) -> str | None:
    """Why git (and with ``annex``, git-annex) as found on PATH cannot be
    used: missing or older than supported; or None. Asked once per
    process."""
    found = version()
    if found is None or found < MIN_GIT:
        return (f'git {".".join(map(str, MIN_GIT))} or newer is needed, '
                f'but {"an older one" if found else "none"} was found on '
                'PATH')
    if not annex:
        return None
    found = _version(['git', 'annex', 'version', '--raw'], r'(\d+)\.(\d+)')
    if found is None:
        return ('no working git-annex was found on PATH, and the dataset '
                'uses it: install git-annex (for example '
                "'pip install git-annex' into the environment that runs "
                "datalad, with its bin directory on PATH), then run this "
                'again')
    if found < MIN_ANNEX:
        return (f'git-annex {".".join(map(str, MIN_ANNEX))} or newer is '
                f'needed, but {".".join(map(str, found))} was found on PATH')
    return None


@lru_cache(maxsize=None)
def version() -> tuple[int, ...] | None:
    """The version of git on PATH (major, minor), None where it cannot
    run; asked once per process"""
    return _version(['git', '--version'], r'(\d+)\.(\d+)')


def _version(cmd: list[str], pattern: str) -> tuple[int, ...] | None:
    """The version numbers that ``cmd`` prints first, or None where it
    cannot run"""
    try:
        res = subprocess.run(cmd, capture_output=True, text=True)
    except OSError:
        return None
    match = re.search(pattern, res.stdout) if not res.returncode else None
    return tuple(map(int, match.groups())) if match else None
