"""Progress bars for work on many datasets, shown as DataLad shows its own"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from itertools import count
from typing import (
    Callable,
    Iterator,
)

from datalad.log import log_progress

lgr = logging.getLogger('datalad.worktree')


_progress_ids = count()


@contextmanager
def progress(label: str, total: int | None) -> Iterator[Callable[[], None]]:
    """A DataLad progress bar for work on ``total`` datasets (None: not
    known in advance), labelled ``label``; yields the function that counts
    one dataset done. Shown like DataLad's own: on an interactive
    terminal only, otherwise logged at debug level"""
    pid = f'worktree-{label}-{next(_progress_ids)}'
    quiet = dict(noninteractive_level=logging.DEBUG)
    log_progress(lgr.info, pid, '%s: start', label, label=label,
                 total=total, unit=' datasets', **quiet)

    def step():
        log_progress(lgr.info, pid, '%s: one more', label, update=1,
                     increment=True, **quiet)

    try:
        yield step
    finally:
        log_progress(lgr.info, pid, '%s: done', label, **quiet)


@contextmanager
def no_progress_bars() -> Iterator[None]:
    """Within this context, :func:`progress` reports nothing, also on an
    interactive terminal"""
    def not_progress(record: logging.LogRecord) -> bool:
        return not hasattr(record, 'dlm_progress')

    lgr.addFilter(not_progress)
    try:
        yield
    finally:
        lgr.removeFilter(not_progress)
