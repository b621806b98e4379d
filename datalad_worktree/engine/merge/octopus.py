"""One merge of many commits, built without touching the working tree

``worktree-merge`` with several sources makes one merge commit per
dataset. Its tree is built here, in an index file of its own, never in the
checkout:

* The fast way, for the usual batch of job branches that each add or
  change their own files: one ``git rev-list`` finds where each source
  left the history of HEAD (its merge base, where that is a single
  commit), one ``git diff-tree --stdin`` what each source changed since,
  and where no two sides changed the same path, and nothing was deleted
  on either side (so that git's rename detection has nothing to find), the
  merged tree is the union of the changes: exactly what git's own merge
  makes of them, at a few git processes for any number of sources.
* Otherwise, for that source only, git's own merge: ``git merge-tree
  --write-tree`` of the merge so far and the source.

A source whose merge conflicts (with HEAD, or with a source merged before
it) is left out and reported with the conflicting paths; conflicts only on
the pointers of subdatasets whose checked-out commit contains both sides
are resolved to that commit. The caller writes the commit (``commit_tree``,
for any number of parents) and brings it into the checkout.
"""

from __future__ import annotations

import os
from dataclasses import (
    dataclass,
    field,
)
from pathlib import Path
from typing import Callable

from datalad_next.runners import CommandError

from datalad_worktree.base.outcome import error_line
from datalad_worktree.repo.queries import GITLINK_MODE
from datalad_worktree.repo.store.refs import git_dirs
from datalad_worktree.runners import git

PARENTS_ON_COMMAND_LINE = 1000
"""Up to how many parents a commit is written by ``git commit-tree -p
...``; a commit with more gets them without the command line, whose
length the system limits (ARG_MAX: 2 MiB on Linux, about 40 000 parents)"""

INDEX_NAME = 'worktree-merge-index'
"""The index file, in the git directory of the checkout, that the merged
tree is built in (with the process id appended; removed when done)"""


@dataclass
class Built:
    """The merge of several commits into HEAD, before it is committed"""
    tree: str | None = None
    """The merged tree; None when nothing was merged"""
    merged: list[str] = field(default_factory=list)
    """The commits merged, in order: the merge commit's other parents"""
    refused: dict[str, list[str]] = field(default_factory=dict)
    """The commits left out, with the paths they conflict in"""
    unmergeable: dict[str, str] = field(default_factory=dict)
    """The commits left out that this git cannot merge here, with why"""
    brought: dict[str, dict[str, str]] = field(default_factory=dict)
    """Of each merged commit whose changes are known: path -> blob"""


class Unmergeable(Exception):
    """git cannot merge a commit into the tree: why, for a message"""


@dataclass(frozen=True)
class Change:
    """One path changed by one side since its merge base"""
    mode: str
    sha: str
    status: str


Changes = dict[str, Change]


Contained = Callable[[str, set[str]], set[str]]
"""Given a subdataset's path and commits its parent records for it, those
that the subdataset's checked-out commit contains"""


def build_merge(repo: Path, head: str, commits: list[str],
                subheads: dict[str, str], contained: Contained) -> Built:
    """Merge ``commits`` (none of them contained in ``head``, no two the
    same) into ``head`` of ``repo``, one after the other, as one tree

    ``subheads`` are the checked-out commits of installed subdatasets, by
    path: a conflict on such a pointer is resolved to it where the
    subdataset contains both sides (``contained``).
    """
    bases = single_bases(repo, head, commits)
    changes = source_changes(repo, [(c, bases[c]) for c in commits
                                    if c in bases])
    head_side = {b: side_changes(repo, head, b)
                 for b in set(bases.values())}
    built = Built()
    state = MergeState(repo, head, head_side, subheads, contained)
    try:
        state.prefetch(list(changes.values()))
        for commit in commits:
            mine = changes.get(commit)
            try:
                conflicts = state.add(commit, mine)
            except Unmergeable as e:
                built.unmergeable[commit] = str(e)
                continue
            if conflicts:
                built.refused[commit] = conflicts
                continue
            built.merged.append(commit)
            if mine is not None:
                built.brought[commit] = {p: c.sha for p, c in mine.items()
                                         if c.status != 'D'}
        if built.merged:
            built.tree = state.write_tree()
    finally:
        state.close()
    return built


def commit_tree(repo: Path, tree: str, parents: list[str], message: str
                ) -> str:
    """The commit of ``tree`` with ``parents`` (in order) and ``message``,
    written into ``repo``, for any number of parents

    Up to ``PARENTS_ON_COMMAND_LINE`` parents it is ``git commit-tree``'s
    own commit. With more, git writes the commit with the first parent
    (its author, committer, dates, encoding as ``git commit-tree`` sets
    them; not signed, as a signature would not survive the next step), and
    the other parents' lines are added to that object, which ``git
    hash-object -t commit`` checks and writes: the same commit that
    ``git commit-tree`` would write with all of them, were the command line
    long enough.
    """
    if len(parents) <= PARENTS_ON_COMMAND_LINE:
        return git.text(repo, [
            'commit-tree', *[a for p in parents for a in ('-p', p)],
            '-m', message, tree]).strip()
    first = git.text(repo, ['commit-tree', '--no-gpg-sign', '-p',
                            parents[0], '-m', message, tree]).strip()
    raw = git.text(repo, ['cat-file', 'commit', first])
    line = f'parent {parents[0]}\n'
    at = raw.index(line) + len(line)
    whole = raw[:at] + ''.join(f'parent {p}\n' for p in parents[1:]) + \
        raw[at:]
    return git.text(repo, ['hash-object', '-t', 'commit', '-w', '--stdin'],
                    input=whole).strip()


def single_bases(repo: Path, head: str, commits: list[str]
                 ) -> dict[str, str]:
    """The merge base with ``head`` of each of ``commits`` that has exactly
    one: the one commit of ``head``'s history where the commits of the
    source that ``head`` lacks join it. One ``git rev-list`` for all"""
    parents: dict[str, list[str]] = {}
    boundary: set[str] = set()
    out = git.text(repo, ['rev-list', '--boundary', '--parents',
                          '--topo-order', '--stdin'],
                   input='\n'.join([*commits, f'^{head}']) + '\n')
    for line in out.splitlines():
        if line.startswith('-'):
            boundary.add(line[1:].split()[0])
        elif line:
            commit, *rest = line.split()
            parents[commit] = rest
    joins: dict[str, frozenset[str]] = {}
    # --topo-order lists children before parents: resolve parents first
    for commit in reversed(list(parents)):
        found: set[str] = set()
        for p in parents[commit]:
            found |= {p} if p in boundary else joins.get(p, frozenset())
        joins[commit] = frozenset(found)
    return {c: next(iter(joins[c])) for c in commits
            if len(joins.get(c, ())) == 1}


def parse_diffs(out: str) -> dict[str, Changes]:
    """The changes of a ``git diff-tree -r -z --stdin`` output, by the
    commit each diff is of (the first of each input line)"""
    found: dict[str, Changes] = {}
    fields = out.split('\0')
    current: Changes = {}
    i = 0
    while i < len(fields):
        item = fields[i]
        if item.startswith(':'):
            meta = item[1:].split(' ')
            current[fields[i + 1]] = Change(meta[1], meta[3], meta[4][0])
            i += 2
            continue
        if item:
            current = found.setdefault(item.strip(), {})
        i += 1
    return found


def source_changes(repo: Path, pairs: list[tuple[str, str]]
                   ) -> dict[str, Changes]:
    """What each commit changed since its base (``pairs``: commit, base),
    by commit: one ``git diff-tree`` for all"""
    if not pairs:
        return {}
    out = git.text(repo, ['diff-tree', '-r', '-z', '--no-renames',
                          '--stdin'],
                   input=''.join(f'{c} {b}\n' for c, b in pairs))
    found = parse_diffs(out)
    return {c: found.get(c, {}) for c, _ in pairs}


def side_changes(repo: Path, head: str, base: str) -> Changes:
    """What ``head`` changed since ``base``"""
    if head == base:
        return {}
    return source_changes(repo, [(head, base)])[head]


def leading_directories(path: str) -> list[str]:
    """The directories that hold ``path``, outermost first"""
    parts = path.split('/')[:-1]
    return ['/'.join(parts[:i]) for i in range(1, len(parts) + 1)]


class MergeState:
    """The tree merged so far, in an index file of its own, with what
    each side changed, to tell which sources merge as a plain union"""

    def __init__(self, repo: Path, head: str, head_side: dict[str, Changes],
                 subheads: dict[str, str], contained: Contained):
        self.repo, self.subheads, self.contained = repo, subheads, contained
        self.index = git_dirs(repo)[0] / f'{INDEX_NAME}.{os.getpid()}'
        self.env = {'GIT_INDEX_FILE': str(self.index)}
        self.changed: Changes = {}
        """Paths where the tree so far differs from the merge bases"""
        self.added: set[str] = set()
        self.dirs: set[str] = set()
        self.deleted = False
        """Whether a deletion is among the changes: then git merges"""
        self.sourced: set[str] = set()
        """Paths that the sources merged so far changed"""
        self.parents = [head]
        self.pending: list[str] = []
        self.settled: dict[str, set[str]] = {}
        """Per subdataset path: pointers known to be contained in it"""
        for changes in head_side.values():
            for p, c in changes.items():
                self.note(p, c)
        git.run(repo, ['read-tree', head], env=self.env)

    def close(self) -> None:
        try:
            os.unlink(self.index)
        except FileNotFoundError:
            pass

    def prefetch(self, changes: list[Changes]) -> None:
        """Ask once per subdataset which of the pointers that ``changes``
        record for it it contains"""
        for path in self.subheads:
            sides = {c[path].sha for c in [*changes, self.changed]
                     if path in c}
            if sides:
                self.settled[path] = self.contained(path, sides)

    def add(self, commit: str, mine: Changes | None) -> list[str]:
        """Merge ``commit`` (with its changes since its merge base,
        ``mine``, where known) into the tree; the paths it conflicts in
        (then nothing is changed)"""
        if mine is None or self.deleted or \
                any(c.status == 'D' for c in mine.values()):
            return self.merge_with_git(commit)
        overlap = [p for p in mine if p in self.changed and
                   same(self.changed[p]) != same(mine[p])]
        clash = [p for p, c in mine.items() if c.status == 'A' and (
            p in self.dirs or
            any(d in self.added for d in leading_directories(p)))]
        if clash or not all(self.resolvable(
                p, {mine[p].sha, self.changed[p].sha}) for p in overlap):
            return self.merge_with_git(commit)
        for p, c in mine.items():
            self.note(p, c)
        self.sourced.update(mine)
        self.pending += [f'{c.mode} {c.sha}\t{p}' for p, c in mine.items()]
        self.parents.append(commit)
        return []

    def note(self, path: str, change: Change) -> None:
        self.changed[path] = change
        self.deleted |= change.status == 'D'
        if change.status == 'A':
            self.added.add(path)
            self.dirs.update(leading_directories(path))

    def resolvable(self, path: str, sides: set[str]) -> bool:
        """Whether a conflict on ``path`` is one on the pointer of a
        subdataset whose checked-out commit contains ``sides``"""
        if path not in self.subheads or not sides:
            return False
        known = self.settled.setdefault(path, set())
        if not sides <= known:
            known |= self.contained(path, sides - known)
        return sides <= known

    def flush(self) -> None:
        """Write the changes noted so far into the index file"""
        if self.pending:
            git.run(self.repo, ['update-index', '-z', '--index-info'],
                    input='\0'.join(self.pending) + '\0', env=self.env)
            self.pending = []

    def write_tree(self) -> str:
        """The merged tree, each pointer that a source changed set to the
        checked-out commit of its subdataset, where that contains it"""
        self.pending += [
            f'{GITLINK_MODE} {head}\t{p}' for p, head in self.subheads.items()
            if p in self.sourced and self.changed[p].mode == GITLINK_MODE
            and self.resolvable(p, {self.changed[p].sha})]
        self.flush()
        return git.text(self.repo, ['write-tree'], env=self.env).strip()

    def merge_with_git(self, commit: str) -> list[str]:
        """Merge ``commit`` into the tree with ``git merge-tree``; the
        paths it conflicts in, apart from resolvable pointers"""
        before = self.write_tree()
        ours = commit_tree(self.repo, before, self.parents,
                           'worktree-merge: merged so far')
        try:
            out = git.text(self.repo, [
                'merge-tree', '--write-tree', '--name-only', '-z',
                '--no-messages', ours, commit])
            conflicts: list[str] = []
        except CommandError as e:
            if e.returncode != 1:
                raise Unmergeable(unmergeable_reason(e)) from e
            out = e.stdout
            conflicts = sorted({p for p in out.split('\0')[1:] if p})
        if [p for p in conflicts if not self.resolvable(
                p, pointers(self.repo, [ours, commit], p))]:
            return conflicts
        tree = out.split('\0')[0].strip()
        brought = parse_entries(git.text(self.repo, [
            'diff-tree', '-r', '-z', '--no-renames', before, tree]))
        brought.update({p: Change(GITLINK_MODE, self.subheads[p], 'M')
                        for p in conflicts})
        for p, c in brought.items():
            self.note(p, c)
        self.sourced.update(brought)
        git.run(self.repo, ['read-tree', tree], env=self.env)
        self.parents.append(commit)
        return []


def unmergeable_reason(e: CommandError) -> str:
    """Why ``git merge-tree`` failed (``e``), for a message"""
    if e.returncode == 129:
        return ('it changes files that HEAD or another source changes too, '
                'and merging it together with others needs git 2.38 or '
                f'newer ({error_line(e)}); merge it on its own')
    return f'git cannot merge it: {error_line(e)}'


def same(change: Change) -> tuple[str, str]:
    """What a change leaves at its path: mode and object"""
    return change.mode, change.sha


def parse_entries(out: str) -> Changes:
    """The changes of a ``git diff-tree -r -z`` output of one diff"""
    fields = out.split('\0')
    return {path: Change(meta[1], meta[3], meta[4][0])
            for meta, path in ((f[1:].split(' '), fields[i + 1])
                               for i, f in enumerate(fields)
                               if f.startswith(':'))}


def pointers(repo: Path, commits: list[str], path: str) -> set[str]:
    """The commits that each of ``commits`` records for the subdataset
    at ``path``, where it records one"""
    found = set()
    for commit in commits:
        entry = git.text(repo, ['--literal-pathspecs', 'ls-tree', '-z',
                                commit, '--', path])
        meta = entry.split('\t', 1)[0].split(' ')
        if meta[0] == GITLINK_MODE:
            found.add(meta[2])
    return found
