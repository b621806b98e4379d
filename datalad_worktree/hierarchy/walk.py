"""The dataset hierarchy: a dataset and the subdatasets its commits record

Subdatasets are read from git's own records of a commit (its
``.gitmodules`` and gitlinks), never from what happens to be on disk, and
every recorded path is checked before it is used.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import (
    Path,
    PurePosixPath,
)
from typing import (
    Callable,
    Iterator,
)

from datalad_worktree.base.advice import command
from datalad_worktree.base.outcome import Problem, Refusal
from datalad_worktree.base.paths import redirected, unsafe_relpath
from datalad_worktree.repo.links import leads_nowhere, written_target
from datalad_worktree.repo.queries import (
    head_commit,
    is_repo_root,
    repository_refusal,
)
from datalad_worktree.repo.records import gitlinks, submodule_paths

TOP = PurePosixPath('.')


@dataclass(frozen=True)
class Node:
    """One dataset of a hierarchy, located relative to its top dataset"""
    path: Path
    """Working tree of the dataset in the walked hierarchy"""
    relpath: PurePosixPath
    """Location relative to the top dataset (``.`` for the top)"""
    commit: str
    """Commit to check out: HEAD for the top, the recorded gitlink below"""
    depth: int
    parent: PurePosixPath | None = None
    """Location of the parent dataset relative to the top (None for the top)"""
    installed: bool = True
    problem: Problem | None = None
    """Why this dataset cannot be handled, if it cannot"""

    @property
    def top(self) -> Path:
        """Working tree of the top dataset of the walked hierarchy"""
        if self.relpath == TOP:
            return self.path
        return Path(*self.path.parts[:-len(self.relpath.parts)])

    def at(self, root: Path) -> Path:
        """Location of this dataset below another worktree ``root``"""
        return root if self.relpath == TOP else root / self.relpath

    @property
    def subpath(self) -> str:
        """Where this subdataset is, relative to its parent"""
        return str(self.relpath.relative_to(self.parent))


def subdataset_pointers(repo: Path, commit: str
                        ) -> list[tuple[str, str | None]]:
    """(path, gitlink commit) of each subdataset recorded in ``commit``

    Paths are read from the ``.gitmodules`` file of that commit, and only
    those with a gitlink in the commit's tree are returned. An unsafe path
    is returned with ``None`` as its commit.
    """
    paths = submodule_paths(repo, commit)
    unsafe = [(p, None) for p in paths if unsafe_relpath(p)]
    safe = [p for p in paths if not unsafe_relpath(p)]
    pointers = gitlinks(repo, commit, safe)
    return unsafe + [(p, pointers[p]) for p in safe if p in pointers]


def recorded_now(repo: Path) -> frozenset[str]:
    """The paths of the subdatasets that the commit checked out in
    ``repo`` records (none where it has no commit or is not installed)"""
    if not is_repo_root(repo):
        return frozenset()
    head = head_commit(repo)
    return _recorded(repo, head) if head else frozenset()


def removed_since(node: Node) -> bool:
    """Whether the dataset no longer has the subdataset ``node`` of the
    walked state at all: its parent's checkout records none there (a
    subdataset of a past state, removed since); False where that cannot
    be told"""
    try:
        now = recorded_now(node.top / node.parent)
    except Exception:
        return False
    return node.subpath not in now


@lru_cache(maxsize=64)
def _recorded(repo: Path, commit: str) -> frozenset[str]:
    return frozenset(p for p, _ in subdataset_pointers(repo, commit))


def walk_hierarchy(
        top: Path,
        commit: str,
        max_depth: int | None,
        descend: Callable[[Node], str] | None = None,
        keep: Callable[[PurePosixPath], bool] | None = None,
) -> Iterator[Node]:
    """Yield the top dataset and its subdatasets, parents before children

    Subdatasets are those recorded in a parent's commit: ``descend(parent)``,
    called after the parent was yielded, or else the parent's own ``commit``.
    Each is looked for at the recorded location in the parent's working
    tree. ``max_depth`` limits the recursion (0: only the top, None:
    unlimited); ``keep``, where given, is asked of each subdataset's
    location relative to the top, and one it says no to is left out with
    everything below it.
    """
    queue = [Node(path=top, relpath=TOP, commit=commit, depth=0)]
    while queue:
        node = queue.pop(0)
        yield node
        if not node.installed or node.problem:
            continue
        if max_depth is not None and node.depth >= max_depth:
            continue
        queue.extend(child for child in _children(
            node, descend(node) if descend else node.commit)
            if keep is None or keep(child.relpath))


def _children(parent: Node, commit: str) -> Iterator[Node]:
    for path, sha in subdataset_pointers(parent.path, commit):
        relpath = parent.relpath / path
        location = parent.path / path
        child = dict(path=location, relpath=relpath, depth=parent.depth + 1,
                     parent=parent.relpath)
        if sha is None:
            yield Node(commit='', **child, installed=False, problem=Problem(
                Refusal.BAD_PATH, f'refusing the subdataset path {path!r} '
                f'recorded in {parent.path}/.gitmodules: '
                f'{unsafe_relpath(path)}'))
        elif redirected(parent.path, path):
            yield Node(commit=sha, **child, installed=False, problem=Problem(
                Refusal.SYMLINK, f'refusing the subdataset at {location}: a '
                'symbolic link on its path leads elsewhere'))
        elif not is_repo_root(location):
            yield Node(commit=sha, **child, installed=False)
        elif leads_nowhere(location):
            yield Node(commit=sha, **child, problem=Problem(
                Refusal.MOVED, f'the .git of the subdataset at {location} '
                f'leads to {written_target(location)}, which is gone: was '
                'the dataset moved? Repair its links with '
                f'{command("worktree-repair", dataset=str(parent.top))}'))
        else:
            refused = repository_refusal(location)
            yield Node(commit=sha, **child, problem=refused and Problem(
                Refusal.REFUSED_REPOSITORY, f'git refuses the repository of '
                f'the subdataset at {location} ({refused}); nothing is done '
                'with it: use a git that knows its format, or repair its '
                'configuration'))


def children_of(nodes: list[Node]) -> dict[PurePosixPath, list[Node]]:
    """The subdatasets among ``nodes`` of each of ``nodes``, by location"""
    children: dict[PurePosixPath, list[Node]] = {n.relpath: [] for n in nodes}
    for n in nodes:
        if n.depth and n.parent in children:
            children[n.parent].append(n)
    return children
