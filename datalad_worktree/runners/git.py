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

import os
import subprocess
from pathlib import Path

from datalad_next.runners import CommandError

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
