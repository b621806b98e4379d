"""Settings, read through DataLad's configuration manager

What a user or a dataset configures for this package (setup commands,
container configuration, DataLad's job limit) is read with DataLad's
``ConfigManager``, so that ``datalad -c NAME=VALUE`` and ``DATALAD_*``
environment variables apply as they do to every DataLad command.
Repository state that git keeps in its configuration files (such as
``annex.version``) is asked of git by ``repo``; writes to a worktree's own
configuration (``git config --worktree``) are git calls in ``bindpaths``.
"""

from __future__ import annotations

from pathlib import Path

from datalad.config import ConfigManager
from datalad.distribution.dataset import Dataset
from datalad.support.parallel import ProducerConsumer


def dataset_config(path: Path) -> ConfigManager:
    """The configuration of the dataset checked out at ``path``: its
    committed ``.datalad/config``, git's configuration files, environment
    variables and overrides, up to date with the files on disk"""
    config = Dataset(path).config
    config.reload()
    return config


def committed_config(path: Path) -> ConfigManager:
    """Only the committed configuration (``.datalad/config``) of the
    dataset checked out at ``path``, with DataLad's overrides"""
    return ConfigManager(dataset=Dataset(path), source='branch')


def worker_count(jobs: int | str | None) -> int:
    """How many datasets to handle at the same time for ``-J``: the number
    given, or for 'auto' and by default DataLad's configured
    ``datalad.runtime.max-jobs``; at least one"""
    return max(1, ProducerConsumer.get_effective_jobs(jobs) or 1)
