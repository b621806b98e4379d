"""Ordered parallel work over the datasets of a hierarchy

A dataset's work runs after all its prerequisites' (its subdatasets',
bottom-up), up to ``-J`` at the same time; an exception in the work on
one dataset becomes that dataset's 'error' outcome.
"""

from __future__ import annotations

from collections import deque
from contextlib import contextmanager
from concurrent.futures import (
    FIRST_COMPLETED,
    ThreadPoolExecutor,
    wait,
)
from typing import (
    Callable,
    Hashable,
    Iterable,
    Iterator,
)

from datalad_worktree.base.outcome import Outcome, Refusal, failure
from datalad_worktree.engine.progress import progress
from datalad_worktree.hierarchy.walk import Node, children_of
from datalad_worktree.runners import locks


def guarded(work: Callable[[Node], Outcome]) -> Callable[[Node], Outcome]:
    """``work`` on one dataset, with any exception it raises made an
    'error' outcome for that dataset (see ``outcome.failure``)"""
    def run(node: Node) -> Outcome:
        try:
            return work(node)
        except Exception as e:
            return failure(node.path, e)
    return run


def split_hierarchy(nodes: Iterable[Node]) -> tuple[list[Node], list[Node]]:
    """The datasets of a walked hierarchy that are not worked on (those
    with a problem, and those not installed), and those that are; each in
    walk order"""
    skipped, active = [], []
    for node in nodes:
        (active if node.installed and not node.problem else skipped
         ).append(node)
    return skipped, active


def bottom_up(nodes: list[Node], work: Callable[[Node], Outcome],
              workers: int, blocked: Callable[[Node], str],
              label: str = 'datasets') -> Iterator[tuple[Node, Outcome]]:
    """Run ``work`` on each of ``nodes``, every subdataset before its
    parent, up to ``workers`` at the same time; yields each node with its
    outcome as it is done. A parent of a dataset whose work failed is not
    worked on: its outcome is a refusal (``Refusal.BLOCKED``) saying
    ``blocked(that dataset)``.
    A progress bar labelled ``label`` counts the datasets done."""
    children = children_of(nodes)
    with progress(label, len(nodes)) as done:
        for node, outcome, blocker in run_ordered(
                nodes, lambda n: children[n.relpath], guarded(work),
                workers, failed=lambda o: o.failed):
            done()
            if blocker:
                outcome = Outcome.refused(Refusal.BLOCKED, blocked(blocker))
            yield node, outcome


@contextmanager
def waits_end_when_interrupted() -> Iterator[None]:
    """Where SIGINT or SIGTERM interrupts the work (``KeyboardInterrupt``),
    the threads finishing the items at hand wait no more for lock files
    (``locks.stop_waiting``) before the pool waits for them"""
    try:
        yield
    except KeyboardInterrupt:
        locks.stop_waiting()
        raise


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
    with ThreadPoolExecutor(max_workers=workers) as pool, \
            waits_end_when_interrupted():
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
