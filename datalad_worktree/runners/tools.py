"""The versions of git and git-annex found on PATH, checked once per process"""

from __future__ import annotations

import re
import subprocess
from functools import lru_cache

MIN_GIT = (2, 31)
"""Oldest git supported: its ``worktree list --porcelain`` marks worktrees
whose directory is gone as prunable"""


MIN_ANNEX = (10, 20230626)
"""Oldest git-annex supported: the first with ``git annex pull``, which
the advice for separate clones uses"""


@lru_cache(maxsize=None)
def tools_problem(annex: bool) -> str | None:
    """Why git (and with ``annex``, git-annex) as found on PATH cannot be
    used: missing or older than supported; or None. Asked once per
    process."""
    found = version()
    if found is None or found < MIN_GIT:
        return (f'git {".".join(map(str, MIN_GIT))} or newer is needed, '
                f'but {"an older one" if found else "none"} was found on '
                'PATH')
    if not annex:
        return None
    found = _version(['git', 'annex', 'version', '--raw'], r'(\d+)\.(\d+)')
    if found is None:
        return ('no working git-annex was found on PATH, and the dataset '
                'uses it: install git-annex (for example '
                "'pip install git-annex' into the environment that runs "
                "datalad, with its bin directory on PATH), then run this "
                'again')
    if found < MIN_ANNEX:
        return (f'git-annex {".".join(map(str, MIN_ANNEX))} or newer is '
                f'needed, but {".".join(map(str, found))} was found on PATH')
    return None


@lru_cache(maxsize=None)
def version() -> tuple[int, ...] | None:
    """The version of git on PATH (major, minor), None where it cannot
    run; asked once per process"""
    return _version(['git', '--version'], r'(\d+)\.(\d+)')


def _version(cmd: list[str], pattern: str) -> tuple[int, ...] | None:
    """The version numbers that ``cmd`` prints first, or None where it
    cannot run"""
    try:
        res = subprocess.run(cmd, capture_output=True, text=True)
    except OSError:
        return None
    match = re.search(pattern, res.stdout) if not res.returncode else None
    return tuple(map(int, match.groups())) if match else None
