"""Which commits of a linked worktree are unmerged work

A linked worktree's branch holds commits that its main worktree lacks:
the user's own, and those that ``worktree-sync`` and ``worktree-merge``
make only to record the state of subdatasets ("Record the subdatasets
updated by worktree-sync"). The second kind holds nothing of the user's
where the main worktree's subdatasets contain the commits it records: it
is not unmerged work, and neither ``worktree-remove`` nor
``worktree-list`` counts it. ``unmerged`` is the one judgement both use.

A commit records only subdataset states when what it changes is nothing
but gitlinks (subdataset commits, added or moved; not a subdataset
removed), each of a commit that the main worktree's copy of that
subdataset contains (its HEAD is it or has it as an ancestor). A commit
that changes nothing is the user's (``git commit --allow-empty`` keeps a
note), except a merge: a merge counts only for what it changes against
every one of its parents (git's combined diff), so a clean merge of the
main worktree's state holds nothing of its own; its parents are judged
each on their own. Everything else counts, also a commit that records a
subdataset commit which the main worktree's subdataset lacks, or one
whose subdataset the main worktree has not installed.

It is cheap on a long history: one ``git log`` per dataset finds the
commits and what each changes, and one ``rev-list`` per subdataset that
such commits record decides what its main copy contains.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from datalad_worktree.base.paths import redirected, unsafe_relpath
from datalad_worktree.repo.queries import GITLINK_MODE, head_commit, is_repo_root
from datalad_worktree.repo.records import contained_in
from datalad_worktree.runners import git

ABSENT_MODE = '000000'


@dataclass(frozen=True)
class Unmerged:
    """The commits of a worktree that nothing else keeps, judged"""
    commits: tuple[str, ...] = ()
    """All of them, newest first"""
    work: tuple[str, ...] = ()
    """Those that count as unmerged work: all but the ones that only
    record subdataset states the main worktree's subdatasets contain"""

    @property
    def records_only(self) -> tuple[str, ...]:
        """The commits that only record subdataset states that the main
        worktree's subdatasets contain"""
        work = set(self.work)
        return tuple(c for c in self.commits if c not in work)


@dataclass
class _Commit:
    """One commit, as read from ``git log``"""
    name: str
    merge: bool
    gitlinks: list[tuple[str, str]]
    """(path, recorded commit) of each gitlink it changes"""
    other: bool = False
    """Whether it changes anything but gitlinks"""


def unmerged(main: Path, commit: str, others: list[str],
             own_branch: str | None = None, branches: bool = False
             ) -> Unmerged:
    """The commits of ``commit`` that none of ``others`` contains (with
    ``branches``: nor any branch but ``own_branch``, a short name, nor any
    tag: a detached past state that a tag keeps holds nothing to lose), and
    which of them are unmerged work (see the module's docstring), judged
    against the subdatasets of ``main``, the main worktree of the
    repository"""
    found = _changes(main, commit, others, own_branch, branches)
    recorded: dict[str, set[str]] = {}
    for c in found:
        if not c.other:
            for path, sha in c.gitlinks:
                recorded.setdefault(path, set()).add(sha)
    contained = {path: _contained(main, path, shas)
                 for path, shas in recorded.items()}
    work = tuple(c.name for c in found
                 if c.other or (not c.merge and not c.gitlinks) or
                 any(sha not in contained[path] for path, sha in c.gitlinks))
    return Unmerged(tuple(c.name for c in found), work)


def _contained(main: Path, path: str, commits: set[str]) -> set[str]:
    """Those of ``commits`` that the main worktree's subdataset at
    ``path`` (below ``main``) contains; none where it is not installed,
    or where its path is not safe to follow"""
    if unsafe_relpath(path) or redirected(main, path):
        return set()
    sub = main / path
    if not is_repo_root(sub):
        return set()
    head = head_commit(sub)
    return contained_in(sub, sorted(commits), head) if head else set()


def _changes(repo: Path, commit: str, others: list[str],
             own_branch: str | None, branches: bool) -> list[_Commit]:
    """The commits of ``commit`` that ``others`` (and with ``branches``,
    every branch but ``own_branch``) lack, newest first, each with what it
    changes: from one ``git log``, a merge's changes as its combined diff
    (the paths that differ from every parent)"""
    limit = ([f'--exclude={own_branch}'] if own_branch else []) + \
        (['--branches', '--tags'] if branches else [])
    out = git.run(repo, [
        'log', '-z', '--format=%x01%H %P', '-c', '--raw', '--no-renames',
        '--no-abbrev', '--no-show-signature', commit, '--not',
        *others, *limit, '--'])
    found: list[_Commit] = []
    tokens = iter(out.split(b'\0'))
    for token in tokens:
        token = token.lstrip(b'\n')
        if token.startswith(b'\x01'):
            name, *parents = token[1:].decode().split()
            found.append(_Commit(name, len(parents) > 1, []))
        elif token.startswith(b':') and found:
            path = os.fsdecode(next(tokens, b''))
            n = len(token) - len(token.lstrip(b':'))
            fields = token[n:].decode().split()
            modes, result, sha = fields[:n], fields[n], fields[2 * n + 1]
            if result == GITLINK_MODE and \
                    set(modes) <= {GITLINK_MODE, ABSENT_MODE}:
                found[-1].gitlinks.append((path, sha))
            else:
                found[-1].other = True
    return found
