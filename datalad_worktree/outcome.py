"""What a command did to one dataset: the raw material of a result record"""

from __future__ import annotations

from dataclasses import (
    dataclass,
    field,
)
from pathlib import Path

from datalad_next.exceptions import CapturedException
from datalad_next.runners import CommandError

from . import git

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


def failure(path: Path, exc: Exception, what: str | None = None,
            keys: dict | None = None) -> Outcome:
    """The 'error' outcome of an exception raised by the work on the
    dataset at ``path`` (``what`` was being done, by default: git, or the
    work as such, failed there); the exception is kept in the record,
    with ``keys``"""
    if isinstance(exc, CommandError):
        what = what or f'git failed in {path}'
        detail = git.error_line(exc)
    else:
        what = what or f'failed in {path}'
        detail = f'{exc.__class__.__name__}: {exc}'
    return Outcome('error', f'{what}: {detail}',
                   dict(keys or {}, exception=CapturedException(exc)))
