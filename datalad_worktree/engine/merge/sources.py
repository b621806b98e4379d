"""What ``worktree-merge`` merges: its SOURCE arguments, per dataset

A SOURCE is the path of a linked worktree (an existing path wins), a
branch name, or a glob pattern (``*``, ``?``, ``[...]``, as ``fnmatch``
reads them; see ``named``, which reads ``worktree-remove``'s PATHs the
same way). A pattern is matched against the branch names of each
dataset merged into, leaving out the branch that dataset has checked out
and git-annex's own branches (``git-annex``, ``synced/*``,
``adjusted/*``), and, where it contains a '/', against the paths of the
top dataset's linked worktrees. Everything here reads and nothing changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Callable

from datalad_worktree.base.outcome import Outcome, Problem, Refusal
from datalad_worktree.base.paths import same_path
from datalad_worktree.engine.named import Named, matching_worktrees, named
from datalad_worktree.engine.relink import moved_hint, moved_problem
from datalad_worktree.hierarchy.clones import (
    clone_refusal,
    is_separate_clone,
    unique_holdings,
)
from datalad_worktree.hierarchy.walk import Node
from datalad_worktree.repo.queries import (
    branch_name_problem,
    branch_tip,
    current_branch,
    head_commit,
    is_repo_root,
)
from datalad_worktree.repo.worktrees import list_worktrees, same_repository
from datalad_worktree.runners import git

ANNEX_BRANCHES = ('git-annex', 'synced/*', 'adjusted/*')
"""git-annex's own branches, which no pattern matches: never results"""


@dataclass(frozen=True)
class Spec:
    """One source as given, resolved to what it names"""
    given: str
    root: Path | None = None
    """The linked worktree, for a path"""
    branch: str | None = None
    """The branch name, for a branch"""
    pattern: str | None = None
    """The pattern, for a pattern that names branches"""

    @property
    def key(self) -> str:
        """How the source is named across datasets"""
        return str(self.root) if self.root else \
            f'branch {self.branch or self.pattern}'


def read_specs(top: Path, given: list[str], place: Callable[[str], Path]
               ) -> tuple[list[Spec], list[tuple[str, Problem]]]:
    """The sources ``given`` as specs (``place(text)``: the absolute path
    a text names), and each given source that cannot be one, with why"""
    specs: dict[str, Spec] = {}
    problems = []
    for text in given:
        arg = named(text, place)
        if arg.exists:
            problem = worktree_source_problem(top, arg.path)
            found = [Spec(text, root=arg.path)]
        elif arg.pattern:
            problem, found = pattern_specs(top, arg)
        else:
            problem = source_problem(top, arg.path, text)
            found = [Spec(text, branch=text)]
        if problem:
            problems.append((text, problem))
            continue
        for spec in found:
            specs.setdefault(spec.key, spec)
    return list(specs.values()), problems


def pattern_specs(top: Path, arg: Named) -> tuple[Problem | None, list[Spec]]:
    """Why the pattern ``arg`` cannot be used, or None, and the specs it
    makes: itself, for branches, and each linked worktree of ``top`` whose
    path it matches (with a '/' in it)"""
    pattern = arg.text
    if pattern.startswith('-'):
        return Problem(Refusal.BAD_BRANCH, (
            f'refusing the pattern {pattern!r}: it looks like an option')), []
    found = [Spec(pattern, pattern=pattern)]
    if '/' in pattern:
        found += [Spec(pattern, root=path)
                  for path in matching_worktrees(top, arg)]
    return None, found


def source_problem(top: Path, source_root: Path, branch: str | None
                   ) -> Problem | None:
    """Why SOURCE (the worktree ``source_root``, or ``branch`` where no
    such path exists) cannot be merged into ``top``, or None"""
    if branch is None:
        return worktree_source_problem(top, source_root)
    problem = branch_name_problem(top, branch)
    if problem:
        return Problem(Refusal.BAD_BRANCH, (
            problem.split(';')[0] + f'; and no worktree exists at '
                                    f'{source_root}'))
    return None


def worktree_source_problem(top: Path, source_root: Path
                            ) -> Problem | None:
    """Why ``source_root`` is not a linked worktree of ``top``, or None"""
    moved = moved_problem(source_root) if is_repo_root(source_root) \
        else None
    if moved:
        return Problem(Refusal.MOVED, f'{moved.message}; nothing was merged')
    if same_path(source_root, top):
        return Problem(Refusal.SAME_DATASET, (
            f'{source_root} is the dataset itself; give another worktree'))
    if not is_repo_root(source_root) or not same_repository(top, source_root):
        hint = moved_hint(source_root, top)
        if hint:
            return Problem(Refusal.MOVED, f'{hint}; nothing was merged')
        return Problem(Refusal.NOT_A_WORKTREE, (
            f'{source_root} is not a worktree of {top}; give the path of '
            'a worktree made by worktree-add, or a branch name'))
    if same_path(list_worktrees(top)[0].path, source_root):
        return Problem(Refusal.WRONG_DIRECTION, (
            f'{source_root} is the main worktree and {top} a linked '
            'worktree of it: this would merge the wrong way round. To '
            "bring the worktree's results home, run 'datalad "
            f"worktree-merge -d {source_root} {top}'; to bring the "
            "development state into the worktree, run 'datalad "
            f"worktree-sync -d {top}'"))
    return None


def branches_matching(repo: Path, pattern: str) -> list[tuple[str, str]]:
    """The branches of ``repo`` whose names match ``pattern``, with their
    commits, in git's order, but not the one checked out in ``repo``, nor
    git-annex's own (``ANNEX_BRANCHES``): from one ``git for-each-ref``,
    for any number of branches"""
    own = current_branch(repo)
    listed = git.lines(repo, ['for-each-ref', '--format=%(objectname) '
                              '%(refname:lstrip=2)', 'refs/heads/'])
    return [(name, commit) for commit, _, name in
            (line.partition(' ') for line in listed)
            if name != own and fnmatchcase(name, pattern) and
            not any(fnmatchcase(name, a) for a in ANNEX_BRANCHES)]


def node_sources(node: Node, specs: list[Spec]
                 ) -> list[tuple[str, MergeSource]]:
    """What ``node`` merges of ``specs``: (key, source) pairs, a pattern
    expanded to the branches it matches here (none where the dataset is
    not installed here), each source once"""
    found: dict[str, MergeSource] = {}
    for spec in specs:
        if spec.pattern is None:
            found.setdefault(spec.key, MergeSource.find(
                node, spec.root, spec.branch))
            continue
        matching = branches_matching(node.path, spec.pattern) \
            if node.installed else []
        for name, commit in matching:
            found.setdefault(f'branch {name}',
                             MergeSource.of_branch(name, commit))
    return list(found.items())


@dataclass(frozen=True)
class MergeSource:
    """What one dataset merges, found before anything is merged"""
    name: str
    """How results name it: 'branch NAME', or the worktree's path"""
    branch: str | None = None
    """The branch merged, when SOURCE is a branch name"""
    commit: str | None = None
    """The commit to merge; None when there is nothing to merge"""
    worktree: Path | None = None
    """The dataset's place in the source worktree, when SOURCE is one"""
    nothing: Outcome | None = None
    """The outcome when nothing is merged: why not"""

    @classmethod
    def find(cls, node: Node, source_root: Path | None, branch: str | None
             ) -> MergeSource:
        """The source of ``node``: its ``branch``, or else its place in
        the worktree ``source_root``"""
        repo = node.path
        if branch is not None:
            return cls.of_branch(branch, branch_tip(repo, branch)
                                 if node.installed else None)
        where = node.at(source_root)
        name = str(where)
        if not is_repo_root(where):
            return cls(name, worktree=where, nothing=Outcome(
                'notneeded', f'no worktree of it at {where}'))
        if node.depth and is_separate_clone(where, repo):
            return cls.clone(node, where)
        if not same_repository(repo, where):
            return cls(name, worktree=where, nothing=Outcome.refused(
                Refusal.NOT_A_WORKTREE,
                f'{where} is not a worktree of {repo}; nothing was merged'))
        commit = head_commit(where)
        return cls(name, commit=commit, worktree=where, nothing=None
                   if commit else Outcome('notneeded', f'{where} has no commit'))

    def checked_out_at(self, places: dict[str, Path]) -> Path | None:
        """Where this source is checked out: its worktree, or for a branch
        the one that ``places`` (see ``branch_worktrees``) gives, if any"""
        return self.worktree if self.branch is None else \
            places.get(self.branch)

    @classmethod
    def of_branch(cls, branch: str, tip: str | None) -> MergeSource:
        """The source of a dataset whose branch ``branch`` is at ``tip``
        (None where it has no such branch)"""
        return cls(f'branch {branch}', branch, tip, nothing=None if tip else
                   Outcome('notneeded', f'no branch {branch!r} here'))

    @classmethod
    def clone(cls, node: Node, where: Path) -> MergeSource:
        """The source of ``node`` where the source worktree has a separate
        clone of it: its checked-out commit, if this dataset has all the
        clone's commits and annexed content already; else nothing, refused
        with what brings them here"""
        holdings = unique_holdings(where, node.path, files=False)
        if holdings:
            return cls(str(where), nothing=Outcome.refused(
                Refusal.SEPARATE_CLONE, clone_refusal(
                    where, node.path, holdings, 'run this again')
                + '; nothing was merged'))
        return cls(f'{where} (a separate clone)', commit=head_commit(where))


def branch_worktrees(repo: Path) -> dict[str, Path]:
    """Where each branch of ``repo`` is checked out in one of its
    worktrees that exists, by short branch name"""
    return {w.short_branch: w.path for w in list_worktrees(repo)
            if w.branch and not w.prunable and is_repo_root(w.path)}
