"""Path safety: where a path really leads, without starting git

Paths come from users and from ``.gitmodules``. Nothing may be created,
followed or deleted outside the worktree asked for, so every place is
checked here before it is used.
"""

from __future__ import annotations

import os
from pathlib import (
    Path,
    PurePosixPath,
)
from typing import (
    Callable,
    TypeVar,
)

T = TypeVar('T')


def absolute_path(path: Path, dataset) -> Path:
    """PATH made absolute: relative to a Dataset instance given as dataset,
    otherwise to the current directory (DataLad's convention)"""
    if not path.is_absolute():
        from datalad.distribution.dataset import Dataset
        base = dataset.ds.pathobj if isinstance(dataset.original, Dataset) \
            else Path.cwd()
        path = base / path
    return Path(os.path.normpath(path))


def unsafe_relpath(value: str) -> str | None:
    """Why a recorded subdataset path is unsafe to use, or None if it is safe

    A safe path is relative, normalized, and has no ``..`` or ``.git``
    component, so it stays inside the worktree that contains it.
    """
    if not value or value.startswith('/') or '\\' in value:
        return 'it is not a relative path'
    parts = value.split('/')
    if any(p in ('', '.', '..') for p in parts):
        return 'it is not a normalized path inside the dataset'
    if any(p.lower() == '.git' for p in parts):
        return "it has a '.git' component"
    return None


def is_within(path: Path, root: Path) -> bool:
    """Whether the real location of ``path`` is ``root`` or below it"""
    return at_or_below(os.path.realpath(path), os.path.realpath(root))


def at_or_below(path: str, root: str) -> bool:
    """Whether the normalized path ``path`` is the normalized ``root`` or
    below it, compared as spelled"""
    return path == root or path.startswith(os.path.join(root, ''))


def spellings(target: Path) -> tuple[str, str]:
    """``target`` normalized as given, and resolved: the two ways in which
    a path that git recorded can start with it"""
    return os.path.normpath(target), os.path.realpath(target)


def nested_within(items: list[T], location: Callable[[T], Path]
                  ) -> dict[T, list[T]]:
    """For each of ``items``, the others whose ``location`` is (really)
    below its own: found through each location's parent directories, so
    the cost grows with the number of items, not with its square"""
    at = {Path(os.path.realpath(location(i))): i for i in items}
    inside: dict[T, list[T]] = {i: [] for i in items}
    for real, item in at.items():
        for parent in real.parents:
            if parent in at:
                inside[at[parent]].append(item)
    return inside


def redirected(root: Path, relpath) -> bool:
    """Whether a symbolic link below ``root`` on the way to ``root/relpath``
    leads somewhere else"""
    real_root = Path(os.path.realpath(root))
    return Path(os.path.realpath(root / relpath)) != real_root / relpath


def same_path(a: Path, b: Path) -> bool:
    """Whether two paths lead to the same location"""
    return os.path.realpath(a) == os.path.realpath(b)


def placed_below(path: Path, roots: tuple[str, str]
                 ) -> tuple[Path, PurePosixPath] | None:
    """Where ``path``, as git records it, is at or below a target, without
    following symbolic links: the spelling of the target it starts with
    (of its ``spellings``) and the rest; None when it is not"""
    path = os.path.normpath(path)
    for root in roots:
        if at_or_below(path, root):
            return Path(root), PurePosixPath(
                os.path.relpath(path, root).replace(os.sep, '/'))
    return None


def first_link(root: Path, relpath: PurePosixPath) -> Path:
    """The first symbolic link on the way from ``root`` to ``root/relpath``"""
    path = root
    for part in relpath.parts:
        path = path / part
        if path.is_symlink():
            break
    return path
