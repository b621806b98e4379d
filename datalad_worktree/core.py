"""Shared core: walk a dataset hierarchy and talk to git

Everything here works on plain paths and commits, reads git's own records
(``.gitmodules`` and gitlinks of a commit, ``git worktree list``) and never
passes user- or repository-supplied names to git where they could be taken
for options.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections import deque
from concurrent.futures import (
    FIRST_COMPLETED,
    ThreadPoolExecutor,
    wait,
)
from dataclasses import (
    dataclass,
    field,
)
from pathlib import (
    Path,
    PurePosixPath,
)
from typing import (
    Callable,
    Iterator,
)

from datalad.interface.common_opts import (
    jobs_opt,
    recursion_flag,
    recursion_limit,
)
from datalad.interface.utils import generic_result_renderer
from datalad.support.param import Parameter
from datalad.support import ansi_colors as ac
from datalad.ui import ui
from datalad_next.commands import (
    ValidatedInterface,
    get_status_dict,
)
from datalad_next.constraints import (
    EnsureBool,
    EnsureChoice,
    EnsureInt,
    EnsureRange,
)
from datalad_next.runners import CommandError

GITLINK_MODE = '160000'

HIERARCHY_PARAMS = dict(
    recursive=recursion_flag,
    recursion_limit=Parameter(
        args=recursion_limit.cmd_args,
        metavar='LEVELS',
        doc="""limit recursion into subdatasets to the given number of
        levels (implies [CMD: --recursive CMD][PY: recursive=True PY])."""),
    jobs=Parameter(
        args=jobs_opt.cmd_args,
        metavar='NJOBS',
        doc="""how many datasets to handle in parallel ('auto': one per CPU
        core). A dataset and its subdatasets are never handled at the same
        time. Default: one at a time."""),
)
"""The -r/-R/-J parameters of every command that walks a hierarchy"""

HIERARCHY_VALIDATORS = dict(
    recursive=EnsureBool(),
    recursion_limit=EnsureInt() & EnsureRange(min=0),
    jobs=(EnsureInt() & EnsureRange(min=1)) | EnsureChoice('auto'),
)


def max_depth(recursive: bool, recursion_limit: int | None) -> int | None:
    """How deep to walk: -R wins, -r alone is unlimited, neither is 0"""
    if recursion_limit is not None:
        return recursion_limit
    return None if recursive else 0


def worker_count(jobs: int | str | None) -> int:
    """Parallel workers for -J: a number, 'auto' (CPU cores) or one"""
    if jobs == 'auto':
        return os.cpu_count() or 1
    return jobs or 1


def git_out(repo: Path, args: list[str], input: str | None = None) -> str:
    """Run git in ``repo`` and return its standard output, exactly

    Raises ``CommandError`` (with git's stderr) when git fails.
    """
    cmd = ['git', *args]
    res = subprocess.run(cmd, cwd=repo, input=input, capture_output=True,
                         text=True)
    if res.returncode:
        raise CommandError(cmd=cmd, code=res.returncode, stdout=res.stdout,
                           stderr=res.stderr, cwd=repo)
    return res.stdout


def git_lines(repo: Path, args: list[str]) -> list[str]:
    """Run git in ``repo`` and return its output split at newlines"""
    return git_out(repo, args).split('\n')[:-1]


def git_records(repo: Path, args: list[str]) -> list[str]:
    """Run git with ``-z`` output in ``repo``; return the NUL-ended records"""
    return git_out(repo, args).split('\0')[:-1]


def git_error(exc: CommandError) -> str:
    """The last line git wrote to stderr, for a message a person can read"""
    stderr = exc.stderr or ''
    if isinstance(stderr, bytes):
        stderr = stderr.decode(errors='replace')
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    return lines[-1] if lines else str(exc)


def absolute_path(path: Path, dataset) -> Path:
    """PATH made absolute: relative to a Dataset instance given as dataset,
    otherwise to the current directory (DataLad's convention)"""
    if not path.is_absolute():
        from datalad.distribution.dataset import Dataset
        base = dataset.ds.pathobj if isinstance(dataset.original, Dataset) \
            else Path.cwd()
        path = base / path
    return Path(os.path.normpath(path))


def branch_name_problem(repo: Path, name: str) -> str | None:
    """Why ``name`` cannot be used as a branch name, or None"""
    if name.startswith('-'):
        return f'refusing branch name {name!r}: it looks like an option'
    try:
        normalized = git_lines(repo, ['check-ref-format', '--branch', name])
    except CommandError:
        return (f'{name!r} is not a valid branch name; choose another with '
                '--branch, or use --detach')
    if normalized != [name]:
        return f'refusing branch name {name!r}: give a plain branch name'
    return None


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
    real = Path(os.path.realpath(path))
    root = Path(os.path.realpath(root))
    return real == root or root in real.parents


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
    problem: str | None = None
    """Why this dataset cannot be handled, if it cannot"""

    def at(self, root: Path) -> Path:
        """Location of this dataset below another worktree ``root``"""
        return root if self.relpath == PurePosixPath('.') else root / self.relpath


def recorded_subdatasets(repo: Path, commit: str) -> list[tuple[str, str | None]]:
    """(path, gitlink commit) of each subdataset recorded in ``commit``

    Paths are read from the ``.gitmodules`` file of that commit, and only
    those with a gitlink in the commit's tree are returned. An unsafe path
    is returned with ``None`` as its commit.
    """
    try:
        records = git_records(repo, [
            'config', '-z', '--blob', f'{commit}:.gitmodules',
            '--get-regexp', r'^submodule\..*\.path$'])
    except CommandError as e:
        if e.returncode == 1:
            # no .gitmodules, or no path in it
            return []
        raise
    paths = [r.split('\n', 1)[1] for r in records if '\n' in r]
    unsafe = [(p, None) for p in paths if unsafe_relpath(p)]
    safe = [p for p in paths if not unsafe_relpath(p)]
    recorded = gitlinks(repo, commit, safe)
    return unsafe + [(p, recorded[p]) for p in safe if p in recorded]


def is_repo_root(path: Path) -> bool:
    """Whether ``path`` holds an installed repository (has its own .git)"""
    return os.path.lexists(path / '.git')


def walk_hierarchy(
        top: Path,
        commit: str,
        max_depth: int | None,
        descend: Callable[[Node], str] | None = None,
) -> Iterator[Node]:
    """Yield the top dataset and its subdatasets, every parent before its children

    Subdatasets are those recorded in a parent's commit: ``descend(parent)``,
    called after the parent was yielded, or else the parent's own ``commit``.
    Each is looked for at the recorded location in the parent's working
    tree. ``max_depth`` limits the recursion (0: only the top, None:
    unlimited).
    """
    queue = [Node(path=top, relpath=PurePosixPath('.'), commit=commit,
                  depth=0)]
    while queue:
        node = queue.pop(0)
        yield node
        if not node.installed or node.problem:
            continue
        if max_depth is not None and node.depth >= max_depth:
            continue
        queue.extend(_children(
            node, descend(node) if descend else node.commit))


def _children(parent: Node, commit: str) -> Iterator[Node]:
    for path, sha in recorded_subdatasets(parent.path, commit):
        relpath = parent.relpath / path
        location = parent.path / path
        child = dict(path=location, relpath=relpath, depth=parent.depth + 1,
                     parent=parent.relpath)
        if sha is None:
            yield Node(commit='', **child, installed=False, problem=(
                f'refusing the subdataset path {path!r} recorded in '
                f'{parent.path}/.gitmodules: {unsafe_relpath(path)}'))
        elif redirected(parent.path, path):
            yield Node(commit=sha, **child, installed=False, problem=(
                f'refusing the subdataset at {location}: a symbolic link on '
                'its path leads elsewhere'))
        else:
            yield Node(commit=sha, **child, installed=is_repo_root(location))


@dataclass(frozen=True)
class Worktree:
    """One entry of ``git worktree list --porcelain``"""
    path: Path
    head: str | None
    branch: str | None
    """Full ref name of the checked-out branch, None when detached"""
    locked: str | None
    """The lock reason ('' without one), None when not locked"""
    prunable: bool


def list_worktrees(repo: Path) -> list[Worktree]:
    """All worktrees of ``repo``'s repository, the main worktree first"""
    entries = []
    record: dict = {}
    for line in git_lines(repo, ['worktree', 'list', '--porcelain']) + ['']:
        if not line:
            if record:
                entries.append(Worktree(
                    path=Path(record['worktree']),
                    head=record.get('HEAD'),
                    branch=record.get('branch'),
                    locked=record.get('locked'),
                    prunable='prunable' in record,
                ))
            record = {}
            continue
        key, _, value = line.partition(' ')
        record[key] = value
    return entries


def redirected(root: Path, relpath) -> bool:
    """Whether a symbolic link below ``root`` on the way to ``root/relpath``
    leads somewhere else"""
    real_root = Path(os.path.realpath(root))
    return Path(os.path.realpath(root / relpath)) != real_root / relpath


def same_path(a: Path, b: Path) -> bool:
    """Whether two paths lead to the same location"""
    return os.path.realpath(a) == os.path.realpath(b)


def config_value(repo: Path, key: str, where: tuple = ()) -> str | None:
    """The value of git configuration item ``key`` in ``repo`` (from the
    files ``where`` selects, such as ``('--local',)``), None if unset"""
    try:
        return git_out(repo, ['config', *where, '--get', key]).rstrip('\n')
    except CommandError as e:
        if e.returncode == 1:
            return None
        raise


def uses_annex(repo: Path) -> bool:
    """Whether git-annex is initialized in ``repo``"""
    return bool(config_value(repo, 'annex.version'))


def run_ordered(
        items: list,
        prerequisites: Callable[[object], list],
        work: Callable[[object], object],
        workers: int,
        failed: Callable[[object], bool] = bool,
) -> Iterator[tuple[object, object, object | None]]:
    """Run ``work`` on every item, each only after all its prerequisites

    Up to ``workers`` items run at the same time, and no more are handed to
    the workers, so when the caller stops early (an interrupt), only the
    items at hand are finished. Yields ``(item, outcome,
    blocker)`` as items finish. When ``failed(outcome)`` is true, the items
    that depend on that item are not run: they are yielded with ``None`` as
    their outcome and the failed item as their ``blocker``.
    """
    waiting = {id(i): set(map(id, prerequisites(i))) for i in items}
    dependents: dict[int, list] = {}
    for item in items:
        for pre in waiting[id(item)]:
            dependents.setdefault(pre, []).append(item)
    blocked: set[int] = set()

    def block(failed_item, blocker):
        for dep in dependents.get(id(failed_item), []):
            if id(dep) not in blocked:
                blocked.add(id(dep))
                yield dep, None, blocker
                yield from block(dep, blocker)

    ready = deque(i for i in items if not waiting[id(i)])
    running: dict = {}
    with ThreadPoolExecutor(max_workers=workers) as pool:
        # never more submitted than run: when the caller stops (Ctrl-C),
        # only the items at hand are finished
        while ready or running:
            while ready and len(running) < workers:
                item = ready.popleft()
                running[pool.submit(work, item)] = item
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                item = running.pop(future)
                outcome = future.result()
                yield item, outcome, None
                if failed(outcome):
                    yield from block(item, item)
                    continue
                for dep in dependents.get(id(item), []):
                    waiting[id(dep)].discard(id(item))
                    if not waiting[id(dep)]:
                        ready.append(dep)


def head_commit(repo: Path) -> str | None:
    """The commit checked out in ``repo``, None when there is none yet"""
    try:
        return git_lines(repo, ['rev-parse', '--verify', '-q',
                                'HEAD^{commit}'])[0]
    except CommandError:
        return None


def current_branch(repo: Path) -> str | None:
    """The short name of the branch checked out in ``repo``, None if detached"""
    try:
        return git_lines(repo, ['symbolic-ref', '-q', '--short', 'HEAD'])[0]
    except CommandError:
        return None


def is_ancestor(repo: Path, commit: str, of: str) -> bool:
    """Whether ``commit`` is ``of`` or one of its ancestors"""
    try:
        git_out(repo, ['merge-base', '--is-ancestor', commit, of])
    except CommandError as e:
        if e.returncode == 1:
            return False
        raise
    return True


def commits_only_in(repo: Path, commit: str, others: list[str],
                    own_branch: str | None) -> list[str]:
    """Commits of ``commit`` that none of ``others`` and no branch but
    ``own_branch`` (a short name) contains: what is lost without them"""
    # --exclude patterns for --branches are given without refs/heads/
    exclude = [f'--exclude={own_branch}'] if own_branch else []
    return git_lines(repo, ['rev-list', commit, '--not', *others, *exclude,
                            '--branches', '--'])


def changed_paths(repo: Path) -> list[str]:
    """Tracked files with changes in ``repo``, staged or not

    Subdatasets are left out: their new commits are recorded, not lost.
    """
    return git_records(repo, ['diff-index', '-z', '--name-only',
                              '--ignore-submodules=all', 'HEAD', '--'])


def worktree_changes(repo: Path) -> tuple[list[str], list[str]]:
    """Tracked files with uncommitted changes, and untracked files that are
    not ignored, in ``repo`` (subdatasets' new commits are not counted)"""
    changed, untracked = [], []
    for record in git_records(repo, ['status', '--porcelain', '-z',
                                     '--no-renames', '--ignore-submodules=all',
                                     '--untracked-files=normal']):
        (untracked if record[:2] == '??' else changed).append(record[3:])
    return changed, untracked


def overwritten_paths(repo: Path, old: str, new: str) -> list[str]:
    """Files on disk that git does not track (untracked or ignored) and
    that the change from ``old`` to ``new`` would overwrite: paths it adds
    that exist already (an empty directory where a subdataset appears is
    fine)"""
    records = git_records(repo, ['diff-tree', '-r', '-z', '--no-renames',
                                 '--diff-filter=A', old, new])
    found = []
    for meta, path in zip(records[::2], records[1::2]):
        where = repo / path
        if not os.path.lexists(where):
            continue
        new_mode = meta.split(' ')[1]
        if new_mode == GITLINK_MODE and where.is_dir() and \
                not any(where.iterdir()):
            continue
        found.append(path)
    if found:
        tracked = set(git_records(repo, ['--literal-pathspecs', 'ls-files',
                                         '-z', '--', *found]))
        found = [p for p in found if p not in tracked]
    return found


def touched_paths(repo: Path, base: str, source: str) -> set[str]:
    """Paths that bringing in ``source`` can change in a checkout that
    contains ``base``: those changed between the two"""
    return set(git_records(repo, ['diff-tree', '-r', '-z', '--name-only',
                                  '--no-renames', base, source]))


def merge_base(repo: Path, a: str, b: str) -> str:
    return git_lines(repo, ['merge-base', a, b])[0]


def merge_conflicts(repo: Path, ours: str, theirs: str) -> list[str] | None:
    """Paths that merging ``theirs`` into ``ours`` would leave conflicted

    Computed without touching the working tree or index (``git merge-tree
    --write-tree``, git 2.38 or later). Returns None when this git cannot
    tell without merging.
    """
    try:
        git_out(repo, ['merge-tree', '--write-tree', '--name-only', '-z',
                       '--no-messages', ours, theirs])
    except CommandError as e:
        if e.returncode != 1:
            return None
        out = e.stdout if isinstance(e.stdout, str) else e.stdout.decode()
        return [p for p in out.split('\0')[1:] if p]
    return []


def gitlinks(repo: Path, commit: str, paths: list[str]) -> dict[str, str]:
    """The commit recorded for each of ``paths`` that is a gitlink in ``commit``"""
    if not paths:
        return {}
    found = {}
    for entry in git_records(repo, ['--literal-pathspecs', 'ls-tree', '-z',
                                    commit, '--', *paths]):
        meta, path = entry.split('\t', 1)
        mode, _, sha = meta.split(' ')
        if mode == GITLINK_MODE:
            found[path] = sha
    return found


def render_result(action: str, res: dict) -> None:
    """One readable line per result: ``action(status): path [message]``"""
    if res.get('action') != action:
        generic_result_renderer(res)
        return
    message = res.get('message')
    ui.message('{action}({status}): {path}{msg}'.format(
        action=ac.color_word(action, ac.BOLD),
        status=ac.color_status(res['status']),
        path=res['path'],
        msg=f' [{message}]' if message else '',
    ))


def summarize_results(action: str, results: list, words: dict) -> None:
    """One line counting the results of ``action`` per status, in the order
    of ``words``, which names each status"""
    mine = [r for r in results if r.get('action') == action]
    counts = [(sum(r['status'] == s for r in mine), word)
              for s, word in words.items()]
    if mine:
        ui.message('worktrees: ' + ', '.join(
            f'{n} {word}' for n, word in counts if n))


@dataclass
class Outcome:
    """What a command did to one dataset, or why it did not"""
    status: str
    message: str
    keys: dict = field(default_factory=dict)
    """Further keys of the result record"""

    @property
    def failed(self) -> bool:
        return self.status in ('impossible', 'error')


def subpath(child: Node) -> str:
    """Where a subdataset is, relative to its parent"""
    return str(child.relpath.relative_to(child.parent))


def local_work_problem(repo: Path, base: str, source: str,
                       keep_untouched: bool) -> str | None:
    """Why local work in ``repo`` blocks bringing in ``source``, or None

    Uncommitted changes to tracked files block it (with ``keep_untouched``:
    only changes to files it would change), and so do untracked or ignored
    files it would overwrite.
    """
    return work_problem(repo, base, source, keep_untouched,
                        changed_paths(repo),
                        overwritten_paths(repo, base, source))


def work_problem(repo: Path, base: str, source: str, keep_untouched: bool,
                 dirty: list[str], blocked: list[str]) -> str | None:
    """Why the uncommitted changes ``dirty`` and the files ``blocked`` that
    git does not track block bringing ``source`` into ``repo``, or None
    (see ``local_work_problem``)"""
    if keep_untouched and dirty:
        touched = touched_paths(repo, base, source)
        dirty = [p for p in dirty if p in touched]
    if dirty:
        which = ' that this would change' if keep_untouched else ''
        return (f'uncommitted changes in {repo}{which}: {", ".join(dirty)}; '
                'commit or discard them first')
    if blocked:
        return (f'this would overwrite files in {repo} that git does not '
                f'track: {", ".join(blocked)}; move them away first')
    return None


def integrate(repo: Path, source: str, *, what: str, ff_only: bool,
              message: str, subdatasets: list[Node], dry_run: bool,
              keep_untouched: bool, keys: dict) -> Outcome:
    """Bring commit ``source`` (described as ``what``) into the checkout
    of ``repo``: fast-forward where possible, else a merge commit

    Everything is checked before the checkout is touched: local work (see
    ``local_work_problem``) and conflicts, computed with ``git merge-tree``
    where git can. A merge commit records the current commits of
    ``subdatasets``, which also resolves conflicts on their pointers; any
    other conflict refuses the merge and leaves everything as it was.
    """
    head = head_commit(repo)
    keys.update(from_commit=head, to_commit=head, how=None)
    if is_ancestor(repo, source, head):
        return Outcome('notneeded', f'already contains {what}', keys)
    ff = is_ancestor(repo, head, source)
    if not ff and ff_only:
        return Outcome('impossible', (
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
        return Outcome('impossible', problem, keys)
    pointers = {subpath(c): c for c in subdatasets}
    if not ff:
        other = [p for p in merge_conflicts(repo, head, source) or []
                 if p not in pointers]
        if other:
            return Outcome('impossible', (
                f'merging {what} into {head[:10]} conflicts in '
                f'{", ".join(other)}; nothing was changed'),
                dict(keys, conflicts=other))
    keys['how'] = 'fast-forward' if ff else 'merge'
    if dry_run:
        return Outcome('ok', f'would {keys["how"]} from {head[:10]} to '
                             f'{what}', dict(keys, dry_run=True))
    if ff:
        stage_as_in(repo, source, written)
        git_out(repo, ['merge', '--ff-only', '--no-edit', source])
    else:
        try:
            git_out(repo, ['merge', '--no-ff', '--no-commit', '-m', message,
                           source])
        except CommandError as e:
            unmerged = unmerged_paths(repo)
            if not unmerged:
                raise
            conflicts = sorted(unmerged - set(pointers))
            if conflicts:
                # only possible where git could not compute the merge first
                git_out(repo, ['merge', '--abort'])
                return Outcome('impossible', (
                    f'merging {what} conflicts in {", ".join(conflicts)} '
                    f'({git_error(e)}); the merge was undone'),
                    dict(keys, conflicts=conflicts))
        stage_subdatasets(repo, pointers)
        git_out(repo, ['commit', '--quiet', '--no-edit'])
    keys['to_commit'] = head_commit(repo)
    return Outcome('ok', f'{keys["how"]} from {head[:10]} to '
                         f'{keys["to_commit"][:10]}', keys)


def lock_problem(repo: Path) -> str | None:
    """Why lock files that git left in ``repo`` block changing it, or None

    git holds ``index.lock``, ``HEAD.lock`` and the lock of the branch
    checked out while it changes them, and a killed git leaves them.
    Whether a git command still runs cannot be known, so they are reported,
    never removed.
    """
    gitdir, _ = git_dirs(repo)
    locks = [p for p in (gitdir / 'index.lock', gitdir / 'HEAD.lock')
             if p.exists()]
    head = (gitdir / 'HEAD').read_text().strip()
    if head.startswith('ref: refs/heads/'):
        locks += branch_locks(repo, head[len('ref: refs/heads/'):])
    return lock_message(repo, locks)


def branch_locks(repo: Path, branch: str, packed: bool = False
                 ) -> list[Path]:
    """The lock files of ``branch`` (with ``packed``: also of the packed
    refs, which deleting a branch needs) that git left in ``repo``"""
    _, common = git_dirs(repo)
    candidates = [common / 'refs' / 'heads' / f'{branch}.lock']
    if packed:
        candidates.append(common / 'packed-refs.lock')
    return [c for c in candidates if c.exists()]


def git_dirs(repo: Path) -> tuple[Path, Path]:
    """The git directory of the working tree ``repo`` and the repository's
    common one, read from ``.git`` (a directory, a link to one, or a file
    naming one) without starting git"""
    dotgit = repo / '.git'
    if dotgit.is_file() and not dotgit.is_symlink():
        gitdir = Path(dotgit.read_text().split('gitdir:', 1)[1].strip())
        gitdir = repo / gitdir if not gitdir.is_absolute() else gitdir
    else:
        gitdir = Path(os.path.realpath(dotgit))
    commondir = gitdir / 'commondir'
    common = gitdir / commondir.read_text().strip() \
        if commondir.is_file() else gitdir
    return gitdir, Path(os.path.normpath(common))


def lock_message(repo: Path, locks: list[Path]) -> str | None:
    """What to do about lock files a git command left in ``repo``, or None
    if there are none"""
    if not locks:
        return None
    return (f'git left {" and ".join(map(str, locks))} in {repo}: a git '
            'command there is still running, or was interrupted. If none '
            'is running, delete the lock file and run the command again')


def written_towards(repo: Path, source: str, candidates: list[str]
                    ) -> list[str]:
    """Those of ``candidates`` (files of ``repo`` with uncommitted changes,
    or not tracked) that hold exactly what ``source`` has: what a checkout
    towards ``source`` that was interrupted wrote (tracked files changed or
    removed, new files added)"""
    if not candidates:
        return []
    differ = set(git_records(repo, [
        '--literal-pathspecs', 'diff', '-z', '--name-only', '--no-renames',
        '--ignore-submodules=all', source, '--', *candidates]))
    untracked = set(candidates) - set(git_records(repo, [
        '--literal-pathspecs', 'ls-files', '-z', '--', *candidates]))
    wanted = tree_entries(repo, source, sorted(untracked))
    return [p for p in candidates if (
        p in wanted and wanted[p][1] == blob_of(repo / p, len(source))
        if p in untracked else p not in differ)]


def tree_entries(repo: Path, commit: str, paths: list[str]
                 ) -> dict[str, tuple[str, str]]:
    """Mode and blob of each of ``paths`` that is a file in ``commit``"""
    if not paths:
        return {}
    found = {}
    for entry in git_records(repo, ['--literal-pathspecs', 'ls-tree', '-r',
                                    '-z', commit, '--', *paths]):
        meta, path = entry.split('\t', 1)
        mode, _, blob = meta.split(' ')
        found[path] = (mode, blob)
    return found


def blob_of(path: Path, digits: int = 40) -> str | None:
    """The blob id (of ``digits`` hex digits: SHA-1 or SHA-256) git would
    give the file or symbolic link at ``path``, without any filter; None
    for anything else"""
    try:
        if path.is_symlink():
            data = os.fsencode(os.readlink(path))
        elif path.is_file():
            data = path.read_bytes()
        else:
            return None
    except OSError:
        return None
    return blob_id(data, digits)


def blob_id(data: bytes, digits: int = 40) -> str:
    """git's object name of a blob with content ``data``: SHA-1, or SHA-256
    where object names have 64 hex ``digits``"""
    algo = hashlib.sha256 if digits == 64 else hashlib.sha1
    return algo(b'blob %d\0' % len(data) + data).hexdigest()


def stage_as_in(repo: Path, commit: str, paths: list[str]) -> None:
    """Set the index entries of ``paths`` to what ``commit`` has (removing
    those it does not have), so that a checkout of ``commit`` keeps the
    files already written for it"""
    if not paths:
        return
    found = tree_entries(repo, commit, paths)
    null = '0' * len(commit)
    lines = [f'{found[p][0]} {found[p][1]}\t{p}' if p in found
             else f'0 {null}\t{p}' for p in paths]
    git_out(repo, ['update-index', '-z', '--index-info'],
            input='\0'.join(lines) + '\0')


def unmerged_paths(repo: Path) -> set[str]:
    """Paths left conflicted by a merge in progress"""
    return {r.split('\t', 1)[1]
            for r in git_records(repo, ['ls-files', '-u', '-z'])}


def stage_subdatasets(repo: Path, pointers: dict) -> None:
    """Stage the current commit of each subdataset in ``pointers`` (path:
    Node) where the index has another, conflicted or not"""
    if not pointers:
        return
    staged = {}
    for r in git_records(repo, ['--literal-pathspecs', 'ls-files', '-s', '-z',
                                '--', *pointers]):
        meta, path = r.split('\t', 1)
        mode, sha, stage = meta.split(' ')
        if mode == GITLINK_MODE:
            staged.setdefault(path, set()).add(sha if stage == '0' else '')
    for path, shas in staged.items():
        head = head_commit(pointers[path].path)
        if shas != {head}:
            git_out(repo, ['update-index', '--cacheinfo',
                           f'160000,{head},{path}'])


def record_subdatasets(repo: Path, children: list[Node],
                       message: str) -> list[str]:
    """Commit the current commits of the subdatasets in ``children`` where
    the parent records others; returns their paths"""
    paths = {subpath(c): c for c in children}
    recorded = gitlinks(repo, 'HEAD', list(paths))
    changed = [p for p, c in paths.items()
               if recorded.get(p) != head_commit(c.path)]
    if changed:
        git_out(repo, ['commit', '--quiet', '-m', message, '--only',
                       '--', *changed])
    return changed


def record(action: str, path: Path, refds: Path, outcome: Outcome) -> dict:
    """The result record of ``outcome`` for the dataset at ``path``"""
    return get_status_dict(
        action=action, path=str(path), type='dataset', refds=str(refds),
        status=outcome.status, message=outcome.message, **outcome.keys)


class WorktreeInterface(ValidatedInterface):
    """What the worktree commands share: one readable line per result, and
    a summary counting them per status"""
    result_renderer = 'tailored'
    _action_ = ''
    _summary_: dict = {}
    """What each status means for this command, in the summary"""
    _dry_run_ok_ = ''
    """What status 'ok' means on a dry run"""

    @classmethod
    def custom_result_renderer(cls, res, **kwargs):
        render_result(cls._action_, res)

    @classmethod
    def custom_result_summary_renderer(cls, results):
        words = dict(cls._summary_)
        if any(r.get('dry_run') for r in results):
            words['ok'] = cls._dry_run_ok_
        summarize_results(cls._action_, results, words)
