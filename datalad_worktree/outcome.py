"""What a command did to one dataset: the raw material of a result record"""

from __future__ import annotations

from dataclasses import (
    dataclass,
    field,
)

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
