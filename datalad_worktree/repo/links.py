"""The links between a linked worktree and its registration, read and
rewritten

A linked worktree and the repository know each other by path: the
worktree's ``.git`` (a file ``gitdir: PATH``, as git writes it, or the
symbolic link to the same directory that git-annex puts in its place)
names its git directory ``<common>/worktrees/NAME``, and that directory's
``gitdir`` file names the worktree's ``.git``. A subdataset whose git
directory is absorbed into its superdataset has a ``.git`` naming
``<super>/.git/modules/NAME``. Moving a directory breaks the links that
lead across it.

git 2.39 resolves a relative path in a ``.git`` file against the working
tree (as it does for submodules), and keeps such a file in ``git worktree
repair`` while it leads to the right place; the ``gitdir`` file of a
registration it reads as an absolute path only. git 2.48 and later write
relative paths in both where ``worktree.useRelativePaths`` is set, and
then mark the repository with ``extensions.relativeWorktrees`` (which git
2.39 refuses): where either is set, these files are left to git.

Every write here is of one file or link, made beside it and renamed into
place, so that an interruption leaves the old one or the new one.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from datalad_worktree.repo.queries import git_config
from datalad_worktree.base.paths import same_path
from datalad_worktree.repo.store.refs import git_dirs, worktree_path
from datalad_worktree.runners import git


def written_target(worktree: Path) -> str | None:
    """What the ``.git`` of ``worktree`` names, as written: a symbolic
    link's target, a file's ``gitdir:`` path; None for a directory, a
    missing ``.git`` or a file that names none"""
    dotgit = worktree / '.git'
    if dotgit.is_symlink():
        return os.readlink(dotgit)
    if not dotgit.is_file():
        return None
    try:
        named = dotgit.read_text().partition('gitdir:')[2].strip()
    except (OSError, UnicodeDecodeError):
        return None
    return named or None


def leads_to(worktree: Path) -> Path | None:
    """The git directory that the ``.git`` of ``worktree`` (a file or a
    link) leads to (real), None where it leads nowhere or is a directory
    of its own"""
    named = written_target(worktree)
    if named is None:
        return None
    found = Path(os.path.realpath(worktree / named))
    return found if (found / 'HEAD').is_file() else None


def leads_nowhere(worktree: Path) -> bool:
    """Whether the ``.git`` of ``worktree`` is a file or link that names a
    git directory which is not there (moved away)"""
    return written_target(worktree) is not None and \
        leads_to(worktree) is None


def old_target(worktree: Path, old: Path) -> Path | None:
    """Where the ``.git`` of ``worktree`` led when the worktree was at
    ``old`` (a relative link is resolved against ``old``), normalized"""
    named = written_target(worktree)
    if named is None:
        return None
    return Path(os.path.normpath(old / named))


def is_registration(admin: Path) -> bool:
    """Whether ``admin`` is a linked worktree's git directory, below the
    ``worktrees`` of a repository's common git directory"""
    return admin.parent.name == 'worktrees' and \
        (admin / 'gitdir').is_file() and (admin / 'HEAD').is_file() and \
        (admin / 'commondir').is_file() and \
        (admin.parent.parent / 'HEAD').is_file()


def registered_at(admin: Path) -> Path | None:
    """Where the registration ``admin`` records its worktree, or None"""
    found = worktree_path(admin)
    return found or None


def links_broken(worktree: Path, main: Path) -> bool:
    """Whether the ``.git`` of the linked worktree ``worktree`` of the
    repository whose main worktree is ``main`` (its directory is there)
    does not lead to a registration of that repository that records it
    there: the worktree's, or its main dataset's, directory was moved; or
    the project was copied, and ``worktree`` is the original's. One read
    of each link, whatever the number of worktrees"""
    led = leads_to(worktree)
    if led is None:
        return os.path.lexists(worktree / '.git')
    return not same_path(registered_at(led) or Path('/'), worktree) or \
        not same_path(led.parent, git_dirs(main)[1] / 'worktrees')


def relative_by_git(repo: Path) -> bool:
    """Whether git itself writes (or may have written) relative links in
    the repository of ``repo`` (``worktree.useRelativePaths``,
    ``extensions.relativeWorktrees``): then they are left to git"""
    return any(git_config(repo, key, ('--bool',)) == 'true' for key in (
        'worktree.userelativepaths', 'extensions.relativeworktrees'))


def _replace(path: Path, write) -> None:
    staged = path.with_name(f'{path.name}.worktree-relink')
    if os.path.lexists(staged):
        staged.unlink()
    write(staged)
    os.replace(staged, path)


def write_registration(admin: Path, worktree: Path) -> None:
    """Record ``worktree`` in its registration ``admin`` (absolute, as git
    2.39 reads it)"""
    _replace(admin / 'gitdir',
             lambda p: p.write_bytes(os.fsencode(f'{worktree}/.git\n')))


def link_dotgit(worktree: Path, admin: Path) -> None:
    """Make the ``.git`` symbolic link of ``worktree`` (git-annex's) lead
    to ``admin``, by a relative path, as git-annex writes it"""
    _replace(worktree / '.git',
             lambda p: p.symlink_to(os.path.relpath(admin, worktree)))


def write_gitfile(worktree: Path, gitdir: Path) -> None:
    """Make the ``.git`` file of ``worktree`` name ``gitdir`` by a relative
    path (git 2.39 resolves it against the working tree)"""
    _replace(worktree / '.git', lambda p: p.write_bytes(os.fsencode(
        f'gitdir: {os.path.relpath(gitdir, worktree)}\n')))


def make_gitfile_relative(worktree: Path, repo: Path) -> bool:
    """Where the ``.git`` of the linked worktree ``worktree`` is a file
    that names its git directory by an absolute path, name it by a
    relative one instead, so that the worktree keeps working when it is
    moved together with its repository (``repo``); not where git writes
    these links itself (``relative_by_git``). Whether it was rewritten."""
    dotgit = worktree / '.git'
    named = written_target(worktree)
    if dotgit.is_symlink() or named is None or not os.path.isabs(named):
        return False
    gitdir = leads_to(worktree)
    if gitdir is None or relative_by_git(repo):
        return False
    write_gitfile(worktree, gitdir)
    return leads_to(worktree) == gitdir


def relink_annex(admin: Path) -> bool:
    """Where ``annex`` in the registration ``admin`` is a symbolic link
    that leads nowhere (or elsewhere than the shared annex of its
    repository), link it to the shared annex by a relative path; whether
    it was changed"""
    annex, shared = admin / 'annex', admin.parent.parent / 'annex'
    if not annex.is_symlink() or not shared.is_dir() or \
            os.path.realpath(annex) == os.path.realpath(shared):
        return False
    _replace(annex, lambda p: p.symlink_to(os.path.relpath(shared, admin)))
    return True


def path_pattern(old: Path) -> re.Pattern:
    """``old`` in a text, where it is the whole path or a leading part"""
    return re.compile(re.escape(str(old)) + r'(?=$|[/\s\'":;,)])')


def move_config_paths(worktree: Path, moved: dict[Path, Path]) -> list[str]:
    """Rewrite, in the own configuration of ``worktree``
    (``config.worktree``, as ``worktree-add`` writes container bind paths
    there), every value that names a path of ``moved``'s keys to name the
    path it maps to instead; the keys changed"""
    moved = {o: n for o, n in moved.items() if o != n}
    if not moved or git_config(worktree, 'extensions.worktreeConfig',
                               ('--local', '--bool')) != 'true':
        return []
    listed = git.entries(worktree, ['config', '--worktree', '-z', '--list'])
    changed = []
    for entry in listed:
        key, _, value = entry.partition('\n')
        new = value
        for old, now in moved.items():
            new = path_pattern(old).sub(lambda m: str(now), new)
        if new != value:
            # after '--': a value that looks like an option stays a value
            git.run(worktree, ['config', '--worktree', '--fixed-value',
                               '--replace-all', '--', key, new, value])
            changed.append(key)
    return changed
