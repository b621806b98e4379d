"""Questions about one repository and its checkout, answered by git

Each function asks git one thing about the repository (or the working
tree) at ``repo`` and changes nothing. Paths and commits that come from
users or from the repository are always placed after ``--`` or given as
full ref names, so git never takes them for options.
"""

from __future__ import annotations

import os
from pathlib import Path

from datalad_next.runners import CommandError

from datalad_worktree.base.outcome import NotOwned, error_line, not_owned
from datalad_worktree.repo.store.guard import format_problem
from datalad_worktree.repo.store.refs import (
    Head,
    branch_commit,
    git_dirs,
    newest_head_position,
    read_head,
)
from datalad_worktree.runners import git


def refused_as_not_owned(repo: Path) -> NotOwned | None:
    """Whether git refuses ``repo`` because another user owns it (and no
    ``safe.directory`` trusts it): asked of git only where another user
    owns it, so that git's own rules decide"""
    if not git.owned_by_another(repo):
        return None
    try:
        git.run(repo, ['rev-parse', '--git-dir'])
    except CommandError as e:
        return not_owned(str(e.stderr or ''))
    return None


def adjusted_problem(repo: Path) -> str | None:
    """Why the checkout in ``repo`` cannot take part: it is on an adjusted
    branch of git-annex (``git annex adjust``), whose commits are not the
    ones a parent dataset records; or None"""
    head = _head_from_files(repo)
    ref = head.branch if head is not None else _first_line(
        git.optional_text(repo, ['symbolic-ref', '-q', 'HEAD']))
    if not ref or not ref.startswith('refs/heads/adjusted/'):
        return None
    adjusted = ref[len('refs/heads/'):]
    original = adjusted[len('adjusted/'):].split('(', 1)[0]
    return (f'{repo} has the adjusted branch {adjusted} checked out (git '
            'annex adjust), which the worktree commands do not support: its '
            'commits are not the ones datasets record. Carry its commits to '
            f"{original} ('git annex sync --no-content --no-push "
            f"--no-pull'), check that out ('git checkout {original}'), then "
            'run this again')


GITLINK_MODE = '160000'


def head_commit(repo: Path) -> str | None:
    """The commit checked out in ``repo``, None when there is none yet.
    Where git fails otherwise (it refuses the repository, say), raises
    ``CommandError``: no commit is not the same as no answer."""
    head = _head_from_files(repo)
    if head is not None:
        return head.commit
    return _first_line(git.optional_text(repo, [
        'rev-parse', '--verify', '-q', 'HEAD^{commit}']))


def current_branch(repo: Path) -> str | None:
    """The short name of the branch checked out in ``repo``, None if
    detached (other failures of git raise ``CommandError``)"""
    head = _head_from_files(repo)
    if head is not None:
        return head.branch and head.branch.removeprefix('refs/heads/')
    return _first_line(git.optional_text(repo, [
        'symbolic-ref', '-q', '--short', 'HEAD']))


def branch_tip(repo: Path, branch: str) -> str | None:
    """The commit of branch ``branch`` in ``repo``, or None if it has none
    (other failures of git raise ``CommandError``)"""
    found = _branch_from_files(repo, f'refs/heads/{branch}')
    if found is not None:
        return found or None
    return _first_line(git.optional_text(repo, [
        'rev-parse', '--verify', '-q', f'refs/heads/{branch}^{{commit}}']))


def revision_problem(revision: str) -> str | None:
    """Why the COMMIT-ISH ``revision``, as a user gave it, is not even
    asked of git: empty, or it looks like an option (it never reaches git
    as one), or None"""
    if not revision.strip():
        return 'an empty revision names no commit'
    if revision.startswith('-'):
        return (f'refusing the revision {revision!r}: it looks like an '
                'option; name a commit, tag or branch')
    return None


def resolve_commit(repo: Path, revision: str) -> str | None:
    """The commit that ``revision`` (anything git resolves: a commit, tag,
    branch, ``HEAD~3``) names in ``repo``, or None where it names none.
    Check ``revision_problem`` first: ``--end-of-options`` keeps git from
    taking it for an option, in case."""
    return _first_line(git.optional_text(repo, [
        'rev-parse', '--verify', '-q', '--end-of-options',
        f'{revision}^{{commit}}']))


def recorded_url(repo: Path, subpath: str) -> str | None:
    """The URL that the ``.gitmodules`` checked out in ``repo`` records
    for the subdataset at ``subpath``, or None"""
    found = git.optional_text(repo, [
        'config', '--file', '.gitmodules', '--null', '--get-regexp',
        r'^submodule\..*\.path$'])
    for entry in (found or '').split('\0'):
        key, _, value = entry.partition('\n')
        if value == subpath:
            name = key[len('submodule.'):-len('.path')]
            return git_config(repo, f'submodule.{name}.url',
                              ('--file', '.gitmodules'))
    return None


def remote_url(repo: Path, name: str = 'origin') -> str | None:
    """The URL of the remote ``name`` of ``repo``, or None"""
    try:
        return git_config(repo, f'remote.{name}.url')
    except CommandError:
        return None


def remotes(repo: Path) -> list[str]:
    """The names of the remotes (DataLad's siblings) of ``repo``"""
    return git.lines(repo, ['remote'])


def _first_line(output: str | None) -> str | None:
    """The first line of what git answered, None for no answer"""
    return output.split('\n', 1)[0] or None if output else None


def _head_from_files(repo: Path) -> Head | None:
    """HEAD of the working tree ``repo`` as its files say (see ``refs``;
    ``store.guard`` decides whether they may be read), None where git has
    to be asked"""
    try:
        return read_head(*git_dirs(repo))
    except OSError:
        return None


def _branch_from_files(repo: Path, ref: str) -> str | None:
    """``refs.branch_commit`` for the repository of ``repo`` (None where
    git has to be asked, see ``store.guard``)"""
    try:
        return branch_commit(git_dirs(repo)[1], ref)
    except OSError:
        return None


def branch_name_problem(repo: Path, name: str) -> str | None:
    """Why ``name`` cannot be used as a branch name, or None"""
    if name.startswith('-'):
        return f'refusing branch name {name!r}: it looks like an option'
    try:
        normalized = git.lines(repo, ['check-ref-format', '--branch', name])
    except CommandError:
        return (f'{name!r} is not a valid branch name; choose another with '
                '--branch, or use --detach')
    if normalized != [name]:
        return f'refusing branch name {name!r}: give a plain branch name'
    return None


def repository_refusal(repo: Path) -> str | None:
    """git's own refusal of the repository checked out at ``repo`` (a
    repository format or extension this git does not know), or None. Asked
    of git only where the repository's files cannot be read directly (see
    ``store.guard``), so that a repository of git's default format costs
    no process"""
    try:
        _, common = git_dirs(repo)
    except OSError:
        return None
    if format_problem(common) is None:
        return None
    try:
        git.run(repo, ['rev-parse', '--git-dir'])
    except CommandError as e:
        return error_line(e)
    return None


def toplevel(path: Path) -> str | None:
    """The top of the git working tree that contains the directory
    ``path``, or None when there is none"""
    try:
        found = git.lines(path, ['rev-parse', '--show-toplevel'])
    except CommandError:
        return None
    return found[0] if found and found[0] else None


def is_ancestor(repo: Path, commit: str, of: str) -> bool:
    """Whether ``commit`` is ``of`` or one of its ancestors"""
    return git.answers(repo, ['merge-base', '--is-ancestor', commit, of])


def merge_base(repo: Path, a: str, b: str) -> str:
    return git.lines(repo, ['merge-base', a, b])[0]


def commits_only_in(repo: Path, commit: str, others: list[str],
                    own_branch: str | None) -> list[str]:
    """Commits of ``commit`` that none of ``others`` and no branch but
    ``own_branch`` (a short name) contains: what is lost without them"""
    # --exclude patterns for --branches are given without refs/heads/
    exclude = [f'--exclude={own_branch}'] if own_branch else []
    return git.lines(repo, ['rev-list', commit, '--not', *others, *exclude,
                            '--branches', '--'])


def short_log(repo: Path, commits: list[str], shown: int = 5) -> str:
    """The first ``shown`` of ``commits``, each as its short hash and
    subject, and how many more there are: for a message"""
    described = git.lines(repo, ['log', '--no-walk=unsorted', '--abbrev=10',
                                 '--format=%h %s', *commits[:shown], '--'])
    more = len(commits) - shown
    return ', '.join(f"'{d}'" for d in described) + (
        f' and {more} more' if more > 0 else '')


def ahead_behind(repo: Path, base: str, commit: str) -> tuple[int, int]:
    """How many commits ``commit`` has that ``base`` has not, and the other
    way round"""
    behind, ahead = map(int, git.lines(repo, [
        'rev-list', '--left-right', '--count', f'{base}...{commit}',
        '--'])[0].split())
    return ahead, behind


def reflog(repo: Path, ref: str, count: int) -> list[str]:
    """The newest ``count`` positions of ``ref`` in its reflog, newest
    first; empty where it has no reflog"""
    try:
        return git.lines(repo, ['log', '-g', '-n', str(count), '--format=%H',
                                ref, '--'])
    except CommandError:
        return []


def newest_head_entry(repo: Path) -> list[str]:
    """``reflog(repo, 'HEAD', 1)``, read from the reflog's file where it may
    be (see ``refs.newest_head_position``), else asked of git"""
    try:
        found = newest_head_position(*git_dirs(repo))
    except OSError:
        found = None
    if found is not None:
        return [found]
    return reflog(repo, 'HEAD', 1)


def changed_paths(repo: Path, cached: bool = False) -> list[str]:
    """Tracked files with changes in ``repo``, staged or not (with
    ``cached``: only staged changes)

    Subdatasets are left out: their new commits are recorded, not lost.
    """
    return git.entries(repo, ['diff-index', '-z', '--name-only',
                              *(['--cached'] if cached else []),
                              '--ignore-submodules=all', 'HEAD', '--'])


def unstaged_paths(repo: Path) -> list[str]:
    """Tracked files whose working copy differs from the index"""
    return git.entries(repo, ['diff-files', '-z', '--name-only',
                              '--ignore-submodules=all'])


def worktree_changes(repo: Path) -> tuple[list[str], list[str]]:
    """Tracked files with uncommitted changes, and untracked files that are
    not ignored, in ``repo`` (subdatasets' new commits are not counted)"""
    changed, untracked = [], []
    for entry in git.entries(repo, ['status', '--porcelain', '-z',
                                    '--no-renames', '--ignore-submodules=all',
                                    '--untracked-files=normal']):
        (untracked if entry[:2] == '??' else changed).append(entry[3:])
    return changed, untracked


def index_matches(repo: Path, commit: str, index: Path | None = None
                  ) -> bool:
    """Whether the index of ``repo`` (or the index file ``index``, such as
    git-annex's index of its branch) holds exactly the tree of ``commit``"""
    return git.answers(repo, ['diff-index', '--cached', '--quiet', commit,
                              '--'],
                       env=None if index is None
                       else {'GIT_INDEX_FILE': str(index)})


def differ_between(repo: Path, a: str, b: str, paths: list[str]) -> bool:
    """Whether any of ``paths`` differs between the commits ``a`` and ``b``"""
    return not git.answers(repo, ['diff', '--quiet', a, b, '--', *paths])


def overwritten_paths(repo: Path, old: str, new: str) -> list[str]:
    """Files on disk that git does not track (untracked or ignored) and
    that the change from ``old`` to ``new`` would overwrite: paths it adds
    that exist already (an empty directory where a subdataset appears is
    fine), and files or symbolic links where it adds a directory"""
    found_entries = git.entries(repo, ['diff-tree', '-r', '-z', '--no-renames',
                                       '--diff-filter=A', old, new])
    found = []
    parents: set[str] = set()
    for meta, path in zip(found_entries[::2], found_entries[1::2]):
        parents.update(leading_dirs(path))
        where = repo / path
        if not os.path.lexists(where):
            continue
        new_mode = meta.split(' ')[1]
        if new_mode == GITLINK_MODE and where.is_dir() and \
                not any(where.iterdir()):
            continue
        found.append(path)
    found += sorted(p for p in parents if os.path.lexists(repo / p) and (
        os.path.islink(repo / p) or not os.path.isdir(repo / p)))
    if found:
        tracked = set(tracked_paths(repo, found))
        found = [p for p in found if p not in tracked]
    return found


def leading_dirs(path: str) -> list[str]:
    """The directories that lead to ``path`` ('a/b/c': 'a', 'a/b')"""
    parts = path.split('/')[:-1]
    return ['/'.join(parts[:i]) for i in range(1, len(parts) + 1)]


def staged_entries(repo: Path) -> list[tuple[str, str, str, str, str]]:
    """The staged changes to tracked files in ``repo`` (subdatasets left
    out): for each, its mode and blob in HEAD, its mode and blob in the
    index (mode '000000' where one side has none) and its path"""
    out = git.entries(repo, ['diff-index', '--cached', '-z', '--no-renames',
                             '--ignore-submodules=all', 'HEAD', '--'])
    found = []
    for meta, path in zip(out[::2], out[1::2]):
        head_mode, index_mode, head_sha, index_sha = meta[1:].split(' ')[:4]
        found.append((head_mode, head_sha, index_mode, index_sha, path))
    return found


def tracked_paths(repo: Path, paths: list[str]) -> list[str]:
    """Those of ``paths`` that the index of ``repo`` tracks"""
    return git.entries(repo, ['--literal-pathspecs', 'ls-files', '-z', '--',
                              *paths])


def touched_paths(repo: Path, base: str, source: str) -> set[str]:
    """Paths that bringing in ``source`` can change in a checkout that
    contains ``base``: those changed between the two"""
    return set(git.entries(repo, ['diff-tree', '-r', '-z', '--name-only',
                                  '--no-renames', base, source]))


def paths_differing_from(repo: Path, commit: str, paths: list[str]
                         ) -> set[str]:
    """Those of ``paths`` whose working copy in ``repo`` differs from
    ``commit``"""
    return set(git.entries(repo, [
        '--literal-pathspecs', 'diff', '-z', '--name-only', '--no-renames',
        '--ignore-submodules=all', commit, '--', *paths]))


def merge_conflicts(repo: Path, ours: str, theirs: str) -> list[str] | None:
    """Paths that merging ``theirs`` into ``ours`` would leave conflicted

    Computed without touching the working tree or index (``git merge-tree
    --write-tree``, git 2.38 or later). Returns None when this git cannot
    tell without merging.
    """
    try:
        git.run(repo, ['merge-tree', '--write-tree', '--name-only', '-z',
                       '--no-messages', ours, theirs])
    except CommandError as e:
        if e.returncode != 1:
            return None
        return [p for p in e.stdout.split('\0')[1:] if p]
    return []


def unmerged_paths(repo: Path) -> set[str]:
    """Paths left conflicted by a merge in progress"""
    return {r.split('\t', 1)[1]
            for r in git.entries(repo, ['ls-files', '-u', '-z'])}


def git_config(repo: Path, key: str, where: tuple = ()) -> str | None:
    """The value git keeps for ``key`` in the configuration of ``repo``
    (from the files ``where`` selects, such as ``('--local',)``), None if
    unset: for repository state (``annex.version``), not for settings of
    this package, which ``settings`` reads"""
    value = git.optional_text(repo, ['config', *where, '--get', key])
    return None if value is None else value.rstrip('\n')


def is_repo_root(path: Path) -> bool:
    """Whether ``path`` holds an installed repository (has its own .git)"""
    return os.path.lexists(path / '.git')
