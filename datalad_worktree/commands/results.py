"""DataLad result records: made here, once, from what the engines report"""

from __future__ import annotations

from pathlib import Path
from typing import (
    Iterable,
    Iterator,
)

from datalad_next.commands import (
    get_status_dict,
)

from datalad_worktree.base.outcome import (
    Outcome,
    Result,
)


def make_result(action: str, path: Path, refds: Path,
                outcome: Outcome) -> dict:
    """The DataLad result record of ``outcome`` for the dataset at ``path``:
    its status and message, the code of a refusal as ``refusal`` (see
    ``outcome.Refusal``), and its further keys"""
    refusal = {} if outcome.refusal is None else dict(
        refusal=outcome.refusal.value)
    return get_status_dict(
        action=action, path=str(path), type='dataset', refds=str(refds),
        status=outcome.status, message=outcome.message, **refusal,
        **outcome.keys)


def records(action: str, refds: Path, results: Iterable[Result | dict]
            ) -> Iterator[dict]:
    """The result records of what an engine reports: each ``Result`` made
    a record (under ``action`` where it names none), and each record of
    another DataLad command that the engine ran (such as ``get``) passed
    on as it is"""
    for result in results:
        if isinstance(result, dict):
            yield result
        else:
            yield make_result(result.action or action, result.path, refds,
                              result.outcome)
