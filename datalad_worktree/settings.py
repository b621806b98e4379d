"""Settings, read through DataLad's configuration manager

What a user or a dataset configures for this package (setup commands,
container configuration, DataLad's job limit, how long to wait for git's
lock files) is read with DataLad's
``ConfigManager``, so that ``datalad -c NAME=VALUE`` and ``DATALAD_*``
environment variables apply as they do to every DataLad command.
Repository state that git keeps in its configuration files (such as
``annex.version``) is asked of git by ``repo``; writes to a worktree's own
configuration (``git config --worktree``) are git calls in ``bindpaths``.
"""

from __future__ import annotations

from pathlib import Path

from datalad import cfg as datalad_config
from datalad.config import ConfigManager
from datalad.distribution.dataset import Dataset
from datalad.support.parallel import ProducerConsumer

from .git import LOCK_WAIT
from .gitfiles import git_dirs


def dataset_config(path: Path) -> ConfigManager:
    """The configuration of the dataset checked out at ``path``: its
    committed ``.datalad/config``, git's configuration files, environment
    variables and overrides, up to date with the files on disk"""
    config = Dataset(path).config
    config.reload()
    return config


def may_be_configured(path: Path, key: str) -> bool:
    """Whether ``key`` may be set for the dataset checked out at ``path``;
    False only where it certainly is not: DataLad's own configuration
    (overrides, environment, the user's and the system's files) lacks it,
    and no configuration file of the dataset (its git configuration, its
    worktree's, its ``.datalad/config``) mentions the key's last part or
    includes other files. Read without starting git, so that a dataset
    that configures nothing costs nothing."""
    datalad_config.reload()
    if datalad_config.get(key) is not None:
        return True
    name = key.rpartition('.')[2].lower()
    try:
        gitdir, common = git_dirs(path)
    except OSError:
        return True
    for file in (common / 'config', gitdir / 'config.worktree',
                 path / '.datalad' / 'config'):
        try:
            text = file.read_bytes().lower()
        except FileNotFoundError:
            continue
        except OSError:
            return True
        if name.encode() in text or b'include' in text:
            return True
    return False


def committed_config(path: Path) -> ConfigManager:
    """Only the committed configuration (``.datalad/config``) of the
    dataset checked out at ``path``, with DataLad's overrides"""
    return ConfigManager(dataset=Dataset(path), source='branch')


def worker_count(jobs: int | str | None) -> int:
    """How many datasets to handle at the same time for ``-J``: the number
    given, or for 'auto' and by default DataLad's configured
    ``datalad.runtime.max-jobs``; at least one"""
    return max(1, ProducerConsumer.get_effective_jobs(jobs) or 1)


def lock_wait() -> float:
    """How long, in seconds, to wait for lock files that other git
    processes hold: ``datalad.worktree.lock-wait`` where it is set to a
    number of seconds (0 or more), else ``git.LOCK_WAIT``"""
    datalad_config.reload()
    try:
        value = float(datalad_config.get('datalad.worktree.lock-wait',
                                         LOCK_WAIT))
    except (TypeError, ValueError):
        return LOCK_WAIT
    return value if value >= 0 else LOCK_WAIT
