"""Progress bars for work on many datasets, shown as DataLad shows its own"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from itertools import count
from typing import (
    Callable,
    Iterator,
)

import datalad
from datalad.log import log_progress

lgr = logging.getLogger('datalad.worktree')


_progress_ids = count()


EVERY = 10.0
"""Seconds between two lines of progress within a phase, where progress
is logged as lines (see ``progress``)"""

REDRAW = 0.1
"""Seconds between two updates of a bar: datasets done in between are
counted at the next (an update costs DataLad's logging and the bar's
drawing, about half a millisecond, which a thousand small datasets would
pay a thousand times)"""


def phase_level() -> int:
    """The level at which a phase's lines are logged where DataLad draws
    no bars (stdin, stdout or stderr is not a terminal): INFO, shown by
    default, for Python callers (a Jupyter notebook, whose stdin is no
    terminal, sees nothing else while the work runs); DEBUG from the
    command line, whose output to a pipe or a file stays the results'"""
    return logging.INFO if datalad.get_apimode() == 'python' \
        else logging.DEBUG


@contextmanager
def progress(label: str, total: int | None) -> Iterator[Callable[[], None]]:
    """A DataLad progress bar for work on ``total`` datasets (None: not
    known in advance), labelled ``label``; yields the function that counts
    one dataset done. Shown like DataLad's own on an interactive terminal;
    elsewhere, as log lines (see ``phase_level``): one as the phase starts,
    one as it ends, and between them one every ``EVERY`` seconds at
    most"""
    pid = f'worktree-{label}-{next(_progress_ids)}'
    level = phase_level()
    of = f' of {total}' if total is not None else ''
    started = last = drawn = time.monotonic()
    done = pending = 0
    log_progress(lgr.info, pid, '%s: %s', label,
                 f'{total} datasets' if total is not None else 'started',
                 label=label, total=total, unit=' datasets',
                 noninteractive_level=level)

    def update(shown: bool) -> None:
        nonlocal pending
        log_progress(lgr.info, pid, '%s: %d%s datasets done', label, done,
                     of, update=pending, increment=True,
                     noninteractive_level=level if shown else logging.DEBUG)
        pending = 0

    def step():
        nonlocal done, last, drawn, pending
        done += 1
        pending += 1
        now = time.monotonic()
        shown = now - last >= EVERY
        if shown:
            last = now
        if shown or now - drawn >= REDRAW:
            drawn = now
            update(shown)

    try:
        yield step
    finally:
        if pending:
            update(False)
        log_progress(lgr.info, pid, '%s: %d%s datasets done in %.1f s',
                     label, done, of, time.monotonic() - started,
                     noninteractive_level=level)


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
