"""What a command did to one dataset: the raw material of a result record"""

from __future__ import annotations

import os
from dataclasses import (
    dataclass,
    field,
)
from pathlib import Path

from datalad_next.exceptions import CapturedException
from datalad_next.runners import CommandError


def error_line(exc: CommandError) -> str:
    """The last line git wrote to stderr, for a message a person can read"""
    stderr = exc.stderr or ''
    if isinstance(stderr, bytes):
        stderr = os.fsdecode(stderr)
    found = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    return found[-1] if found else str(exc)


FAILED = ('impossible', 'error')


@dataclass
class Outcome:
    """What a command did to one dataset, or why it did not

    The interface layer turns it into a DataLad result record.
    """
    status: str
    """'ok', 'notneeded', 'impossible' or 'error'"""
    message: str | None
    keys: dict = field(default_factory=dict)
    """Further keys of the result record"""

    @property
    def failed(self) -> bool:
        return self.status in FAILED


@dataclass(frozen=True)
class Result:
    """An outcome for the dataset (or worktree) at ``path``, as an engine
    hands it to the command that reports it"""
    path: Path
    outcome: Outcome
    action: str | None = None
    """The action to report it under; None: the reporting command's own"""


def failure(path: Path, exc: Exception, what: str | None = None,
            keys: dict | None = None) -> Outcome:
    """The 'error' outcome of an exception raised by the work on the
    dataset at ``path`` (``what`` was being done, by default: git, or the
    work as such, failed there); the exception is kept in the record,
    with ``keys``"""
    if isinstance(exc, CommandError):
        what = what or f'git failed in {path}'
        detail = error_line(exc)
    else:
        what = what or f'failed in {path}'
        detail = f'{exc.__class__.__name__}: {exc}'
    return Outcome('error', f'{what}: {detail}',
                   dict(keys or {}, exception=CapturedException(exc)))
