"""A nested worktree: the linked worktrees of a hierarchy below one path

A worktree made by ``worktree-add -r`` is one linked worktree per dataset,
each registered in its own repository. This finds them all from git's
registrations, and refuses every place where a symbolic link would make
a path lead somewhere other than where git registered it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import (
    Path,
    PurePosixPath,
)

from datalad_worktree.base.outcome import Problem, Refusal
from datalad_worktree.base.paths import (
    at_or_below,
    first_link,
    placed_below,
    redirected,
    spellings,
    unsafe_relpath,
)
from datalad_worktree.hierarchy.walk import walk_hierarchy
from datalad_worktree.repo.queries import head_commit
from datalad_worktree.repo.store.refs import git_dirs
from datalad_worktree.repo.worktrees import Worktree, list_worktrees


@dataclass(frozen=True)
class Member:
    """One dataset's linked worktree inside the nested worktree to remove"""
    entry: Worktree
    main: Worktree
    """The main worktree of the same repository"""
    root: Path
    """The worktree to remove, spelled as the start of ``path``"""

    @property
    def path(self) -> Path:
        return self.entry.path

    @property
    def relpath(self) -> PurePosixPath:
        """Where ``path`` is below ``root``"""
        path = Path(os.path.normpath(self.path))
        return PurePosixPath(path.relative_to(self.root).as_posix())

    @property
    def head(self) -> str | None:
        """The checked-out commit; None when there is none, such as when
        the branch was deleted already (git lists it as all zeros)"""
        head = self.entry.head
        return head if head and set(head) != {'0'} else None

    @property
    def branch(self) -> str | None:
        return self.entry.short_branch


def find_members(top: Path, target: Path,
                 listed: dict[Path, list[tuple[Worktree, str]]] | None = None
                 ) -> tuple[list[Member], dict[str, Problem]]:
    """The linked worktrees at and below ``target`` of every dataset in
    ``top``'s hierarchy and in the worktree's own hierarchy, deepest first,
    and the places that are refused, each with why: where a symbolic link
    makes a path lead elsewhere, or a repository that git refuses. ``listed`` keeps each repository's worktrees (by its
    common git directory), each with its real location, for the next
    call, where nothing changes in between: several targets then cost one
    listing per repository and no file system lookup per worktree."""
    listed = {} if listed is None else listed
    roots = spellings(target)
    found: dict[str, Member] = {}
    linked: dict[str, str] = {}
    seen: set[Path] = set()
    for root in [top] + ([target] if target.is_dir() else []):
        for node in walk_hierarchy(root, head_commit(root), None):
            if node.problem and root is target and \
                    not unsafe_relpath(str(node.relpath)):
                linked.setdefault(os.path.normpath(node.path), Problem(
                    Refusal.SYMLINK, link_refusal(
                        node.path, target, node.relpath))
                    if node.problem.refusal is Refusal.SYMLINK
                    else node.problem)
            if not node.installed or node.problem:
                continue
            repository = git_dirs(node.path)[1]
            if repository in seen:
                # a worktree of a repository listed already
                continue
            seen.add(repository)
            if repository not in listed:
                listed[repository] = [(wt, os.path.realpath(wt.path))
                                      for wt in list_worktrees(node.path)]
            worktrees = listed[repository]
            for wt, real in worktrees:
                place = placed_below(wt.path, roots)
                problem = registration_problem(
                    wt.path, place, node.path, target,
                    at_or_below(real, roots[1]))
                if problem:
                    linked.setdefault(os.path.normpath(wt.path),
                                      Problem(Refusal.SYMLINK, problem))
                elif place:
                    found.setdefault(str(wt.path),
                                     Member(wt, worktrees[0][0], place[0]))
    members = sorted(found.values(), key=lambda m: -len(m.path.parts))
    return members, linked


def checked_out_in_hierarchy(top: Path, branch: str
                             ) -> tuple[list[Path], list[Path]]:
    """Where ``branch`` (a short name) is checked out in the datasets of
    ``top``'s hierarchy: the linked worktrees (also those whose directory
    is gone), each once, in the order the hierarchy is walked, and the
    main worktrees (which are never removed)"""
    linked: dict[str, Path] = {}
    main = []
    seen: set[Path] = set()
    ref = f'refs/heads/{branch}'
    for node in walk_hierarchy(top, head_commit(top), None):
        if not node.installed or node.problem:
            continue
        repository = git_dirs(node.path)[1]
        if repository in seen:
            continue
        seen.add(repository)
        worktrees = list_worktrees(node.path)
        if worktrees[0].branch == ref:
            main.append(worktrees[0].path)
        for wt in worktrees[1:]:
            if wt.branch == ref:
                linked.setdefault(os.path.normpath(wt.path), wt.path)
    return list(linked.values()), main


def registration_problem(path: Path, place, repo: Path, target: Path,
                         really_inside: bool) -> str | None:
    """Why the worktree of ``repo`` registered at ``path`` (``place``, see
    :func:`placed_below`; ``really_inside``: whether its real location is
    in ``target``'s) blocks removing ``target``: a symbolic link on its
    way from ``target`` leads elsewhere, or one puts it, registered
    outside, inside ``target``"""
    if place:
        return link_refusal(path, *place) if redirected(*place) else None
    if really_inside:
        return linked_in_refusal(path, repo, target)
    return None


def link_refusal(path: Path, root: Path, relpath: PurePosixPath) -> str:
    """Why ``path``, reached from ``root`` through a symbolic link that
    leads elsewhere, is not removed, and what to do"""
    link = first_link(root, relpath)
    leads = f' (to {os.readlink(link)})' if link.is_symlink() else ''
    return (f'refusing {path}: a symbolic link on its path leads elsewhere: '
            f'{link}{leads}. Nothing is deleted or followed through it; '
            'move the worktree back in place of the link, or delete just '
            'the link (not what it leads to) to have only the registration '
            'pruned, then run the command again')


def linked_in_refusal(path: Path, repo: Path, target: Path) -> str:
    """Why a worktree registered outside ``target`` that a symbolic link
    puts inside it blocks the removal, and what to do"""
    return (f'refusing {target}: the worktree of {repo} registered at '
            f'{path} is inside it, because a symbolic link on its path '
            'leads elsewhere, and would be deleted with it unchecked; '
            'remove that worktree first, or delete the link')
