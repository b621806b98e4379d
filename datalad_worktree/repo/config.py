"""Configuration, read through DataLad's configuration manager

What a user or a dataset configures for this package (setup commands,
container configuration) is read with DataLad's ``ConfigManager``, so
that ``datalad -c NAME=VALUE`` and ``DATALAD_*`` environment variables
apply as they do to every DataLad command. Repository state that git
keeps in its configuration files (such as ``annex.version``) is asked of
git by ``queries``; writes to a worktree's own configuration (``git config
--worktree``) are git calls in ``environment.bindpaths``.
"""

from __future__ import annotations

from pathlib import Path

from datalad import cfg as datalad_config
from datalad.config import ConfigManager
from datalad.distribution.dataset import Dataset

from datalad_worktree.repo.store.guard import CONFIG, readable
from datalad_worktree.repo.store.refs import git_dirs


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
    that configures nothing costs nothing; where ``store.guard`` does not
    let the repository's files be read, the key may be set."""
    datalad_config.reload()
    if datalad_config.get(key) is not None:
        return True
    name = key.rpartition('.')[2].lower()
    try:
        gitdir, common = git_dirs(path)
    except OSError:
        return True
    if not readable(common, gitdir, CONFIG):
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
