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

Every git started here speaks English (``environment``): the package
reads git's stderr (``locks.busy`` tells another git's lock from other
failures by git's words), and Debian's git, among others, translates its
messages by the user's locale (``LANGUAGE=de``, ``LC_ALL=de_DE.UTF-8``).
Only the messages are changed, never the character type: git-annex runs
under git (its filter, its hooks) and needs the user's UTF-8 character
locale for file names that are not ASCII, so ``LC_ALL=C`` is no option.
git is given ``LC_MESSAGES=C`` and no ``LANGUAGE`` (which GNU gettext
would prefer to any locale variable); a user's ``LC_ALL`` would win over
``LC_MESSAGES``, so it is moved to ``LANG``, with the other ``LC_*``
variables it overrode removed: every category but the messages stays what
``LC_ALL`` made it. The git messages that this package passes on to
people (``outcome.error_line``) are therefore English too.
"""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from datalad_next.runners import CommandError

NO_ANNEX_FILTER = ('-c', 'filter.annex.process=', '-c', 'filter.annex.clean=',
                   '-c', 'filter.annex.smudge=')
"""git options that keep git from starting git-annex's filter"""


MESSAGES_LOCALE = 'C'
"""The locale of git's messages: untranslated, as this package parses them"""


def environment(env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment git runs in: this process's, with ``env`` added,
    and git's messages in the C locale while every other locale category
    (the character type above all) stays as the user has it (see the
    module's docstring)"""
    found = dict(os.environ)
    found.pop('LANGUAGE', None)
    every = found.pop('LC_ALL', None)
    if every:
        # LC_ALL set every category: keep that for all but the messages
        for name in [n for n in found if n.startswith('LC_')]:
            del found[name]
        found['LANG'] = every
    found['LC_MESSAGES'] = MESSAGES_LOCALE
    if env:
        found.update(env)
    return found


def run(repo: Path, args: list[str], input: str | None = None,
        env: dict[str, str] | None = None) -> bytes:
    """Run git with ``args`` in ``repo``; its standard output, as bytes

    ``input`` (encoded like a file name) is given to git's standard input;
    ``env`` is added to the environment git runs in (see
    ``environment``). Raises ``CommandError`` when git exits with a code
    other than 0.
    """
    cmd = ['git', *args]
    res = subprocess.run(
        cmd, cwd=repo, capture_output=True,
        input=None if input is None else os.fsencode(input),
        env=environment(env))
    if res.returncode:
        raise failed(cmd, res.returncode, repo, res.stdout, res.stderr)
    return res.stdout


NOT_OWNED = 'detected dubious ownership'
"""What git says where it refuses a repository that another user owns
(and no ``safe.directory`` trusts)"""


def failed(cmd: list[str], code: int, repo: Path, stdout: bytes | None,
           stderr: bytes) -> CommandError:
    """The ``CommandError`` of git ``cmd`` that failed in ``repo``

    Where git ended with a fatal error (code 128) in a repository that
    another user owns, git may have refused it for that without saying so
    (``git config`` takes it for no repository at all): then git is asked
    once more there, with a command that says why (``rev-parse``), and its
    reason goes first in the error's stderr."""
    err = os.fsdecode(stderr)
    if code == 128 and NOT_OWNED not in err and owned_by_another(repo):
        probe = subprocess.run(['git', 'rev-parse', '--git-dir'], cwd=repo,
                               capture_output=True, env=environment())
        reason = os.fsdecode(probe.stderr)
        if probe.returncode and NOT_OWNED in reason:
            err = f'{reason.rstrip()}\n{err}'
    return CommandError(cmd=cmd, code=code, cwd=repo, stderr=err,
                        stdout=None if stdout is None
                        else os.fsdecode(stdout))


def owned_by_another(repo: Path) -> bool:
    """Whether ``repo``, or the ``.git`` in it (the link, the file, or the
    git directory it names), belongs to another user than the one this
    process runs as"""
    me = os.geteuid()
    for place, look in ((repo, os.stat), (repo / '.git', os.lstat),
                        (repo / '.git', os.stat)):
        try:
            if look(place).st_uid != me:
                return True
        except OSError:
            pass
    return False


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
    env = environment()
    procs = [(cwd, args, subprocess.Popen(
        ['git', *args], cwd=cwd, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, env=env)) for cwd, args in calls]
    outputs, error = [], None
    for cwd, args, proc in procs:
        out, err = proc.communicate()
        outputs.append(out)
        if proc.returncode and error is None:
            error = failed(['git', *args], proc.returncode, cwd, out, err)
    if error:
        raise error
    return outputs


@contextmanager
def meanwhile(repo: Path, args: list[str]) -> Iterator[None]:
    """Run git with ``args`` in ``repo`` while the body of the context
    runs; its end is waited for when the context is left, also when the
    body raised (git is let finish what it writes). Raises
    ``CommandError`` where git failed, once the body has ended."""
    cmd = ['git', *args]
    proc = subprocess.Popen(cmd, cwd=repo, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=environment())
    try:
        yield
    finally:
        out, err = proc.communicate()
    if proc.returncode:
        raise failed(cmd, proc.returncode, repo, out, err)


@contextmanager
def _fed(repo: Path, args: list[str], lines: Iterable[str]
         ) -> Iterator[subprocess.Popen]:
    """git with ``args`` in ``repo``, its standard input fed with
    ``lines`` (each ended by a newline) from a thread of its own, so that
    its output can be read while it runs; the process. When the context
    is left before git's output was read to its end, git is ended. Raises
    ``CommandError`` when git fails (exits with a code other than 0)."""
    cmd = ['git', *args]
    proc = subprocess.Popen(cmd, cwd=repo, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=environment())

    def write():
        try:
            for line in lines:
                proc.stdin.write(os.fsencode(line) + b'\n')
        except (BrokenPipeError, ValueError):
            pass  # git ended (failed, or was ended below)
        finally:
            try:
                proc.stdin.close()
            except BrokenPipeError:
                pass

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    read_all = False
    try:
        yield proc
        read_all = not proc.stdout.read(1)
    finally:
        if not read_all:
            proc.kill()
        writer.join()
        err = proc.stderr.read()
        proc.stdout.close()
        proc.stderr.close()
        code = proc.wait()
    if code:
        raise failed(cmd, code, repo, None, err)


def stream(repo: Path, args: list[str], lines: Iterable[str],
           size: int = 1 << 20) -> Iterator[bytes]:
    """Run git with ``args`` in ``repo``, ``lines`` fed to its standard
    input while it runs (see ``_fed``); its standard output, in chunks
    of ``size`` bytes (the last one shorter), as they come. A generator: leaving it early
    (``close``, or a ``break`` of the loop) ends git. Raises
    ``CommandError`` when git fails."""
    with _fed(repo, args, lines) as proc:
        while True:
            chunk = proc.stdout.read(size)
            if not chunk:
                break
            yield chunk


def cat_file(repo: Path, names: Iterable[str]
             ) -> Iterator[tuple[str, bytes | None]]:
    """The content of each object of ``names`` (object names or
    revisions), in order, from one ``git cat-file --batch`` in ``repo``:
    (its object name, its content), or (the name asked, None) where there
    is no such object (or the name is ambiguous)

    A generator that streams: git's output is read object by object while
    the names are written to it (see ``_fed``), and no more than one
    object is held here at a time. Leaving it early (``close``, or a
    ``break`` of the loop) ends git. Raises ``CommandError`` when git
    fails or answers something else.
    """
    args = ['cat-file', '--batch', '--buffer']
    with _fed(repo, args, names) as proc:
        out = proc.stdout
        while True:
            header = out.readline()
            if not header:
                break
            meta = header[:-1].rsplit(b' ', 2)
            if header.endswith(b'\n') and len(meta) == 3 and \
                    meta[2].isdigit():
                size = int(meta[2])
                content = out.read(size + 1)
                if len(content) == size + 1:
                    yield os.fsdecode(meta[0]), content[:size]
                    continue
            elif header.endswith((b' missing\n', b' ambiguous\n')):
                yield os.fsdecode(header[:header.rindex(b' ')]), None
                continue
            raise CommandError(cmd=['git', *args], cwd=repo,
                               msg=f'unexpected output: {header[:200]!r}')
