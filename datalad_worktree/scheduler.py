"""Ordered parallel work over the datasets of a hierarchy"""

from __future__ import annotations

import logging
from collections import deque
from contextlib import contextmanager
from itertools import count
from concurrent.futures import (
    FIRST_COMPLETED,
    ThreadPoolExecutor,
    wait,
)
from typing import (
    Callable,
    Hashable,
    Iterator,
)

from datalad.log import log_progress

lgr = logging.getLogger('datalad.worktree')
_progress_ids = count()


def run_ordered(
        items: list[Hashable],
        prerequisites: Callable[[Hashable], list],
        work: Callable[[Hashable], object],
        workers: int,
        failed: Callable[[object], bool] = bool,
) -> Iterator[tuple[Hashable, object, Hashable | None]]:
    """Run ``work`` on every item, each only after all its prerequisites

    Items must be hashable and distinct. Up to ``workers`` items run at
    the same time, and no more are handed to the workers, so when the
    caller stops early (an interrupt), only the items at hand are finished.
    Yields ``(item, outcome, blocker)`` as items finish. When
    ``failed(outcome)`` is true, the items that depend on that item are
    not run: they are yielded with ``None`` as their outcome and the
    failed item as their ``blocker``.
    """
    waiting = {i: set(prerequisites(i)) for i in items}
    dependents: dict[Hashable, list] = {}
    for item in items:
        for pre in waiting[item]:
            dependents.setdefault(pre, []).append(item)
    blocked: set = set()

    def block(failed_item, blocker):
        for dep in dependents.get(failed_item, []):
            if dep not in blocked:
                blocked.add(dep)
                yield dep, None, blocker
                yield from block(dep, blocker)

    ready = deque(i for i in items if not waiting[i])
    running: dict = {}
    with ThreadPoolExecutor(max_workers=workers) as pool:
        # never more submitted than run: when the caller stops (Ctrl-C),
        # only the items at hand are finished
        while ready or running:
            while ready and len(running) < workers:
                item = ready.popleft()
                running[pool.submit(work, item)] = item
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                item = running.pop(future)
                outcome = future.result()
                yield item, outcome, None
                if failed(outcome):
                    yield from block(item, item)
                    continue
                for dep in dependents.get(item, []):
                    waiting[dep].discard(item)
                    if not waiting[dep]:
                        ready.append(dep)


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
