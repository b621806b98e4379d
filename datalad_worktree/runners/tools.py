"""The versions of git and git-annex found on PATH, checked once per process

They are DataLad's ``external_versions`` (``cmd:git``, ``cmd:annex``),
which asks each tool once per process and remembers the answer, so that
DataLad and this package agree on what they found.
"""

from __future__ import annotations

from functools import lru_cache

from datalad.support.external_versions import external_versions

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
    found = annex_version()
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


def version() -> tuple[int, ...] | None:
    """The version of git (major, minor), as DataLad found it; None where
    it cannot run"""
    return _numbers(external_versions['cmd:git'])


def annex_version() -> tuple[int, ...] | None:
    """The version of git-annex (major, date), as DataLad found it; None
    where it cannot run"""
    return _numbers(external_versions['cmd:annex'])


def _numbers(found) -> tuple[int, ...] | None:
    """The first two numbers of a version that ``external_versions`` gave
    (a ``LooseVersion``, whose parts are numbers and words; None or
    ``UNKNOWN`` where the tool did not answer), or None"""
    first = list(getattr(found, 'version', None) or [])[:2]
    if len(first) < 2 or not all(isinstance(n, int) for n in first):
        return None
    return tuple(first)
