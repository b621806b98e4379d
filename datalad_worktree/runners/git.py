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
    env = environment()
    procs = [(cwd, args, subprocess.Popen(
        ['git', *args], cwd=cwd, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, env=env)) for cwd, args in calls]
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
