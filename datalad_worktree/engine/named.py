"""What a PATH or SOURCE argument names: an existing path, or a pattern

``worktree-remove`` PATH and ``worktree-merge`` SOURCE read their
arguments the same way. A text that names an existing path (a symbolic
link included) is that path: an existing path wins. Else a text with
``*``, ``?`` or ``[`` is a pattern (``fnmatch``; ``*`` also matches '/'),
matched against the paths of the dataset's linked worktrees. Anything
else is a path that does not exist (for SOURCE: a branch name).
Everything here reads and nothing changes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Callable

from datalad_worktree.repo.worktrees import list_worktrees

PATTERN_CHARS = frozenset('*?[')
"""The characters that make a text a pattern, as ``fnmatch`` reads it"""


def is_pattern(text: str) -> bool:
    return bool(PATTERN_CHARS & set(text))


@dataclass(frozen=True)
class Named:
    """What one argument names"""
    text: str
    """The argument as given"""
    path: Path
    """The absolute path it names (for a pattern: the pattern, absolute)"""
    exists: bool
    """Whether there is something at ``path``"""

    @property
    def pattern(self) -> bool:
        """Whether it is a pattern: nothing exists at its path, and it has
        a pattern character"""
        return not self.exists and is_pattern(self.text)


def named(text: str, place: Callable[[str], Path]) -> Named:
    """What ``text`` names (``place(text)``: the absolute path of a text)"""
    path = place(text)
    return Named(text, path, os.path.lexists(path))


def matching_worktrees(top: Path, pattern: Named) -> list[Path]:
    """The linked worktrees of ``top`` whose paths ``pattern`` matches, in
    git's order"""
    return [w.path for w in list_worktrees(top)[1:]
            if fnmatchcase(str(w.path), str(pattern.path))]
