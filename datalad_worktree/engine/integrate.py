"""The integration engine: bring a commit into a checkout, safely

Used by ``worktree-sync`` (the development state into a linked worktree)
and ``worktree-merge`` (results into the main worktree). Everything is
checked before the checkout is touched; a checkout is changed only by a
fast-forward or a merge commit, and local work is never overwritten.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import (
    dataclass,
    replace,
)
from pathlib import Path
from typing import (
    Any,
    Iterator,
    Mapping,
)

from datalad_next.runners import CommandError

from datalad_worktree.base.advice import option
from datalad_worktree.base.outcome import (
    Outcome,
    Problem,
    Refusal,
    error_line,
)
from datalad_worktree.hierarchy.walk import Node
from datalad_worktree.repo.queries import (
    GITLINK_MODE,
    changed_paths,
    head_commit,
    is_ancestor,
    merge_base,
    merge_conflicts,
    overwritten_paths,
    paths_differing_from,
    staged_entries,
    touched_paths,
    tracked_paths,
    unmerged_paths,
)
from datalad_worktree.repo.records import gitlinks, staged_gitlinks, tree_entries
from datalad_worktree.repo.store.objects import blob_of
from datalad_worktree.repo.store.refs import git_dirs
from datalad_worktree.runners import git, journal


def local_work_problem(repo: Path, base: str, source: str,
                       keep_untouched: bool) -> Problem | None:
    """Why local work in ``repo`` blocks bringing in ``source``, or None

    Uncommitted changes to tracked files, staged or not, block it (with
    ``keep_untouched``: only changes to files that differ between ``base``
    and ``source``, which is all that bringing in ``source`` changes), and
    so do untracked or ignored files it would overwrite. The problem's
    record lists the paths (``uncommitted``, ``untracked``).
    """
    return work_problem(repo, base, source, keep_untouched,
                        changed_paths(repo),
                        overwritten_paths(repo, base, source))


def work_problem(repo: Path, base: str, source: str, keep_untouched: bool,
                 dirty: list[str], blocked: list[str]) -> Problem | None:
    """Why the uncommitted changes ``dirty`` and the files ``blocked`` that
    git does not track block bringing ``source`` into ``repo``, or None
    (see ``local_work_problem``)"""
    if keep_untouched and dirty:
        touched = touched_paths(repo, base, source)
        dirty = [p for p in dirty if p in touched]
    if dirty:
        which = ' that this would change' if keep_untouched else ''
        return Problem(Refusal.UNCOMMITTED_CHANGES, (
            f'uncommitted changes in {repo}{which}: {", ".join(dirty)}; '
            'commit or discard them first'), dict(uncommitted=dirty))
    if blocked:
        return Problem(Refusal.UNTRACKED_FILES, (
            f'this would overwrite files in {repo} that git does not '
            f'track: {", ".join(blocked)}; move them away first'),
            dict(untracked=blocked))
    return None


@contextmanager
def staged_kept(repo: Path, any_changes: bool = True) -> Iterator[None]:
    """Keep the staged changes to tracked files of ``repo`` staged across
    a merge or a reset, which git does only for a fast-forward: they are
    set aside in the index (the files keep their content) and staged again
    afterwards, also where the merge was refused and undone. Only for
    changes to files that the merge or reset leaves alone (see
    ``work_problem``). Without ``any_changes`` (the caller found no
    uncommitted change) nothing needs to be done."""
    entries = staged_entries(repo) if any_changes else []
    if not entries:
        yield
        return
    staged = [(m, sha, p) for _, _, m, sha, p in entries]
    # journaled first: a run killed while they are set aside has them
    # staged again by the next run (``engine.recover``)
    common = git_dirs(repo)[1]
    entry = journal.note(common, kind='staged', repo=str(repo),
                         entries=[list(e) for e in staged])
    set_index(repo, [(m, sha, p) for m, sha, _, _, p in entries])
    try:
        yield
    finally:
        set_index(repo, staged)
        journal.done(common, entry)


def integrate(repo: Path, source: str, *, what: str, ff_only: bool,
              message: str, subdatasets: list[Node], dry_run: bool,
              keep_untouched: bool, keys: Mapping[str, Any],
              head: str | None = None) -> Outcome:
    """Bring commit ``source`` (described as ``what``) into the checkout
    of ``repo``: fast-forward where possible, else a merge commit

    Everything is checked before the checkout is touched: local work (see
    ``local_work_problem``) and conflicts, computed with ``git merge-tree``
    where git can. A merge commit records the current commits of
    ``subdatasets``, which also resolves conflicts on their pointers; any
    other conflict refuses the merge and leaves everything as it was.
    ``head`` is the commit checked out, where the caller knows it. The
    outcome has ``keys`` and ``from_commit``, ``to_commit`` and ``how``.
    """
    head = head or head_commit(repo)
    keys = dict(keys, from_commit=head, to_commit=head, how=None)
    if source == head or is_ancestor(repo, source, head):
        return Outcome('notneeded', f'already contains {what}', keys)
    if merge_head(repo) == source:
        return finish_merge(repo, source, what, subdatasets, dry_run, keys)
    ff = is_ancestor(repo, head, source)
    if not ff and ff_only:
        return Outcome.refused(Refusal.NOT_FAST_FORWARD, (
            f'{head[:10]} and {what} have diverged, so no fast-forward is '
            'possible'), keys)
    base = head if ff else merge_base(repo, head, source)
    dirty = changed_paths(repo)
    blocked = overwritten_paths(repo, base, source)
    written = written_towards(repo, source, dirty + blocked) if ff else []
    problem = work_problem(
        repo, base, source, keep_untouched,
        [p for p in dirty if p not in written],
        [p for p in blocked if p not in written])
    if problem:
        return problem.outcome(keys)
    pointers = {c.subpath: c for c in subdatasets}
    if not ff:
        other = [p for p in merge_conflicts(repo, head, source) or []
                 if p not in pointers]
        if other:
            return Outcome.refused(Refusal.CONFLICTS, (
                f'merging {what} into {head[:10]} conflicts in '
                f'{", ".join(other)}; nothing was changed'
                f'{pointer_hint(repo, head, other)}'),
                dict(keys, conflicts=other))
    keys['how'] = how = 'fast-forward' if ff else 'merge'
    if dry_run:
        return Outcome('ok', f'would {how} from {head[:10]} to {what}',
                       dict(keys, dry_run=True))
    if ff:
        # git keeps the other staged changes
        stage_as_in(repo, source, written)
        git.run(repo, ['merge', '--ff-only', '--no-edit', source])
    else:
        with staged_kept(repo, bool(dirty)):
            conflicts = merge_commit(repo, source, message, pointers, what)
        if conflicts:
            return conflicts.outcome(dict(keys, conflicts=conflicts.paths))
    keys['to_commit'] = head_commit(repo)
    return Outcome('ok', f'{how} from {head[:10]} to '
                         f'{keys["to_commit"][:10]}', keys)


def pointer_hint(repo: Path, head: str, conflicts: list[str]) -> str:
    """What resolves the conflicts on subdataset pointers among
    ``conflicts``, as the end of a message ('' where there are none)"""
    subs = sorted(gitlinks(repo, head, conflicts))
    if not subs:
        return ''
    return (f'. {", ".join(subs)}: subdataset(s); with '
            f'{option("recursive")} '
            'subdatasets are handled first, and a pointer conflict is '
            "resolved where the subdataset's commit contains both sides")


def merge_head(repo: Path) -> str | None:
    """The commit that a merge in progress in ``repo`` brings in, or None"""
    try:
        return (git_dirs(repo)[0] / 'MERGE_HEAD').read_text().split()[0]
    except (OSError, IndexError):
        return None


def finish_merge(repo: Path, source: str, what: str,
                 subdatasets: list[Node], dry_run: bool,
                 keys: dict) -> Outcome:
    """Finish a merge of ``source`` that was interrupted before its commit
    (a killed run): where nothing but that merge is staged, record the
    subdatasets and commit it; nothing staged or in the working tree is
    lost, unstaged changes stay as they are. ``keys``: those of the
    outcome, ``from_commit`` among them"""
    head = keys['from_commit']
    pointers = {c.subpath: c for c in subdatasets}
    merged = touched_paths(repo, merge_base(repo, head, source), source)
    other = sorted((unmerged_paths(repo) - set(pointers))
                   | (set(changed_paths(repo, cached=True)) - merged
                      - set(pointers)))
    if other:
        return Outcome.refused(Refusal.INTERRUPTED_MERGE, (
            f'a merge of {what} was interrupted in {repo}, and it has other '
            f'changes or conflicts: {", ".join(other)}; finish it yourself '
            "('git commit') or undo it ('git merge --abort'), then run this "
            'again'), keys)
    keys = dict(keys, how='merge')
    if dry_run:
        return Outcome('ok', f'would finish the interrupted merge of {what}',
                       dict(keys, dry_run=True))
    stage_subdatasets(repo, pointers)
    git.run(repo, ['commit', '--quiet', '--no-edit'])
    keys['to_commit'] = head_commit(repo)
    return Outcome('ok', f'finished the interrupted merge from {head[:10]} '
                         f'to {keys["to_commit"][:10]}', keys)


@dataclass(frozen=True)
class Conflicts:
    """Why a merge was refused after all: the paths it conflicts in"""
    message: str
    paths: list[str]

    def outcome(self, keys: Mapping[str, Any]) -> Outcome:
        return Outcome.refused(Refusal.CONFLICTS, self.message, keys)


def merge_commit(repo: Path, source: str, message: str,
                 pointers: dict[str, Node], what: str) -> Conflicts | None:
    """Merge ``source`` into ``repo`` with a merge commit that records the
    current commits of the subdatasets in ``pointers`` (path: Node); None
    when done, else the conflicting paths, with the merge undone"""
    try:
        git.run(repo, ['merge', '--no-ff', '--no-commit', '-m', message,
                       source])
    except CommandError as e:
        unmerged = unmerged_paths(repo)
        if not unmerged:
            raise
        conflicts = sorted(unmerged - set(pointers))
        if conflicts:
            # only possible where git could not compute the merge first
            git.run(repo, ['merge', '--abort'])
            return Conflicts(
                f'merging {what} conflicts in {", ".join(conflicts)} '
                f'({error_line(e)}); the merge was undone', conflicts)
    stage_subdatasets(repo, pointers)
    git.run(repo, ['commit', '--quiet', '--no-edit'])
    return None


def written_towards(repo: Path, source: str, candidates: list[str]
                    ) -> list[str]:
    """Those of ``candidates`` (files of ``repo`` with uncommitted changes,
    or not tracked) that hold exactly what ``source`` has: what a checkout
    towards ``source`` that was interrupted wrote (tracked files changed or
    removed, new files added)"""
    if not candidates:
        return []
    differ = paths_differing_from(repo, source, candidates)
    untracked = set(candidates) - set(tracked_paths(repo, candidates))
    wanted = tree_entries(repo, source, sorted(untracked))
    return [p for p in candidates if (
        p in wanted and wanted[p][1] == blob_of(repo / p, len(source))
        if p in untracked else p not in differ)]


def stage_as_in(repo: Path, commit: str, paths: list[str]) -> None:
    """Set the index entries of ``paths`` to what ``commit`` has (removing
    those it does not have), so that a checkout of ``commit`` keeps the
    files already written for it"""
    if not paths:
        return
    found = tree_entries(repo, commit, paths)
    null = '0' * len(commit)
    set_index(repo, [(*found[p], p) if p in found else ('0', null, p)
                     for p in paths])


def set_index(repo: Path, entries: list[tuple[str, str, str]]) -> None:
    """Set the index entries of ``repo`` as ``entries`` (mode, blob, path)
    say: mode 0 removes the path from the index; the files are not
    touched"""
    if not entries:
        return
    lines = [f'{mode} {sha}\t{path}' for mode, sha, path in entries]
    git.run(repo, ['update-index', '-z', '--index-info'],
            input='\0'.join(lines) + '\0')


def stage_subdatasets(repo: Path, pointers: dict[str, Node]) -> None:
    """Stage the current commit of each subdataset in ``pointers`` (path:
    Node) where the index has another, conflicted or not"""
    if not pointers:
        return
    for path, shas in staged_gitlinks(repo, list(pointers)).items():
        head = head_commit(pointers[path].path)
        if shas != {head}:
            git.run(repo, ['update-index', '--cacheinfo',
                           f'{GITLINK_MODE},{head},{path}'])


def record_pointers(repo: Path, children: list[Node], message: str,
                    outcome: Outcome, state: str) -> Outcome:
    """Commit the current commits of the subdatasets ``children`` where
    the parent ``repo`` records others; ``outcome`` as it is where there
    were none, else an 'ok' one that says so (the ``state`` they are in:
    'new', 'merged'), with ``recorded`` and the new ``to_commit``"""
    paths = {c.subpath: c for c in children}
    pointers = gitlinks(repo, 'HEAD', list(paths))
    changed = [p for p, c in paths.items()
               if pointers.get(p) != head_commit(c.path)]
    if not changed:
        return outcome
    git.run(repo, ['commit', '--quiet', '-m', message, '--only', '--',
                   *changed])
    return replace(
        outcome.noted(f'recorded the {state} state of ' + ', '.join(changed)),
        status='ok').with_keys(recorded=changed, to_commit=head_commit(repo))


def settled_subdatasets(repo: Path, source: str | None,
                        children: list[Node], merged: set[Node]
                        ) -> list[Node]:
    """Those of the subdatasets ``children`` of ``repo`` whose current
    commit the merge of ``source`` may record: those ``merged`` in this
    run, and those whose checked-out commit contains both what ``repo``'s
    HEAD and what ``source`` record for them (merged before: by hand, or
    by an interrupted run)"""
    rest = [c for c in children if c not in merged]
    if not rest or source is None:
        return [c for c in children if c in merged]
    paths = [c.subpath for c in rest]
    ours, theirs = gitlinks(repo, 'HEAD', paths), gitlinks(repo, source, paths)
    return [c for c in children if c in merged or contains_all(
        c.path, {ours.get(c.subpath), theirs.get(c.subpath)} - {None})]


def contains_all(repo: Path, commits: set[str]) -> bool:
    """Whether the commit checked out in ``repo`` contains all ``commits``
    (False where one of them is not there at all)"""
    head = head_commit(repo)
    if head is None or not commits:
        return False
    try:
        return all(c == head or is_ancestor(repo, c, head) for c in commits)
    except CommandError:
        return False
