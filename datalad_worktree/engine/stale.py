"""Checkouts whose branch was moved underneath them

Jujutsu, ``jj bookmark set`` and ``git update-ref`` move a branch while it
is checked out in another worktree, leaving that checkout's files and index
at the branch's earlier position: it shows phantom staged changes. This
tells such a stale checkout from real local changes and updates it, as
``jj workspace update-stale`` would.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from datalad_worktree.base.outcome import Problem, Refusal
from datalad_worktree.repo.queries import (
    changed_paths,
    current_branch,
    head_commit,
    index_matches,
    newest_head_entry,
    overwritten_paths,
    reflog,
    unstaged_paths,
)
from datalad_worktree.runners import git


@dataclass(frozen=True)
class Checkout:
    """What the index of a linked worktree reflects"""
    head: str
    stale: str | None = None
    """The earlier position of its branch that the checkout still reflects,
    when the branch was moved underneath it; None when not stale"""
    problem: Problem | None = None
    """Why the checkout must be left as it is, if it must"""


def inspect_checkout(repo: Path, target: str) -> Checkout:
    """Whether the checkout in ``repo`` is stale, and whether it may be
    brought to ``target``

    A checkout whose index holds HEAD or ``target`` is not stale (an update
    to ``target`` was interrupted there, and is finished like any other).
    One whose index holds an earlier position of its branch is stale, and
    can be updated unless there are local changes on top, or the update
    would overwrite files git does not track. A checkout whose own HEAD
    moved last to HEAD is not stale: what its index holds besides is
    staged work, kept or refused by the update as it touches it. Any
    other index has uncommitted changes (a stale checkout's, perhaps, so
    it is refused).
    """
    head = head_commit(repo)
    # cheapest first: the reflog is read from its file, the index is
    # compared by git
    if moved_here(repo, head) or index_matches(repo, 'HEAD') or \
            index_matches(repo, target):
        return Checkout(head)
    stale = next((c for c in earlier_positions(repo, head)
                  if index_matches(repo, c)), None)
    if stale is None:
        return Checkout(head, problem=Problem(
            Refusal.UNCOMMITTED_CHANGES, f'uncommitted changes in {repo}: '
            + ', '.join(changed_paths(repo) or ['staged subdataset changes'])
            + '; commit or discard them first'))
    unstaged = unstaged_paths(repo)
    if unstaged:
        return Checkout(head, stale, Problem(Refusal.UNCOMMITTED_CHANGES, (
            f'the branch checked out in {repo} was moved from {stale[:10]} '
            f'to {head[:10]} by another tool, and there are local changes on '
            f'top: {", ".join(unstaged)}. Do not commit them (that would undo '
            "the branch's new commits): save them with 'git diff > PATCH', "
            "discard them with 'git checkout -- .', sync, then "
            "'git apply PATCH'")))
    blocked = overwritten_paths(repo, stale, head)
    if blocked:
        return Checkout(head, stale, Problem(Refusal.UNTRACKED_FILES, (
            f'updating the stale checkout in {repo} would overwrite files '
            f'that git does not track: {", ".join(blocked)}')))
    return Checkout(head, stale)


def update_stale_checkout(repo: Path, stale: str, head: str) -> None:
    """Bring the files and index of a checkout that reflects ``stale`` to
    ``head``, which its branch was moved to, and say so in the worktree's
    reflog"""
    git.run(repo, ['read-tree', '-m', '-u', stale, head])
    git.run(repo, ['update-ref', '-m', 'worktree-sync: update stale '
                   f'checkout from {stale}', 'HEAD', head])


def moved_here(repo: Path, head: str) -> bool:
    """Whether the worktree's own HEAD reflog says that it last checked
    out ``head`` itself (so its branch was not moved underneath it)"""
    return newest_head_entry(repo) == [head]


def earlier_positions(repo: Path, head: str) -> list[str]:
    """Commits the checkout may still reflect, if its branch was moved
    underneath it: none when the worktree's own HEAD reflog says it last
    checked out ``head`` itself; else that last checkout, then the earlier
    positions of the branch, newest first"""
    own = newest_head_entry(repo)
    if own == [head]:
        return []
    branch = current_branch(repo)
    earlier = reflog(repo, f'refs/heads/{branch}', 20) if branch else []
    return [c for c in dict.fromkeys(own + earlier) if c != head]
