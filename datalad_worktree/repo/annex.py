"""The shared annex of a linked worktree

A linked worktree of a dataset that uses git-annex reads annexed content
from the annex of its repository's common git directory, through a link
``annex`` in its own git directory that git-annex makes the first time it
runs there. git-annex does not make that link for a worktree of a
subdataset whose git directory is absorbed into its superdataset's
``.git/modules`` (it takes it for a submodule), and keeps an annex of the
worktree's own instead. This module checks the link, and makes it in place
of such a directory when that holds nothing unique.
"""

from __future__ import annotations

import logging
import os
import shlex
import tempfile
from pathlib import Path

from datalad.utils import rmtree
from datalad_next.runners import CommandError

from datalad_worktree.base.outcome import error_line
from datalad_worktree.base.paths import same_path
from datalad_worktree.repo.config import may_be_configured
from datalad_worktree.repo.queries import _branch_from_files, git_config, index_matches
from datalad_worktree.repo.store.guard import CONFIG, readable
from datalad_worktree.repo.store.refs import annex_version_in, git_dirs
from datalad_worktree.repo.worktrees import list_worktrees
from datalad_worktree.runners import git

lgr = logging.getLogger('datalad.worktree.sharedannex')


def has_annex_branch(repo: Path) -> bool:
    """Whether ``repo`` has a git-annex branch, local or from a remote"""
    if _branch_from_files(repo, 'refs/heads/git-annex'):
        return True
    return bool(git.text(repo, [
        'for-each-ref', '--count=1', '--format=%(refname)',
        'refs/heads/git-annex', 'refs/remotes/*/git-annex']).strip())


def uses_annex(repo: Path) -> bool:
    """Whether git-annex is initialized in ``repo``: the repository's own
    configuration file names an annex version (read without git where it
    plainly does), or git says so"""
    try:
        gitdir, common = git_dirs(repo)
        if readable(common, gitdir, CONFIG) and \
                annex_version_in(common / 'config'):
            return True
    except OSError:
        pass
    return bool(git_config(repo, 'annex.version'))


def has_own_annex(worktree: Path) -> bool:
    """Whether the linked worktree ``worktree`` keeps annexed content of
    its own (its git directory has an annex directory, not a link to the
    shared annex)"""
    annex = git_dirs(worktree)[0] / 'annex'
    return annex.is_dir() and not annex.is_symlink()


def annex_link_problem(worktree: Path) -> str | None:
    """Why annexed files of the linked worktree ``worktree``, of a dataset
    that uses git-annex, are not readable from the shared annex, or None

    git-annex makes a linked worktree's ``.git`` a symlink to its git
    directory, and links ``<gitdir>/annex`` to the shared annex, the first
    time it runs there (while the worktree is checked out). This verifies
    both: a real directory where the link belongs is a problem too.
    """
    gitdir, common = git_dirs(worktree)
    if gitdir == common:
        return None
    problem = dotgit_problem(worktree)
    if problem or links_to_shared_annex(gitdir, common):
        return problem
    return (f'{gitdir / "annex"} is not a link to the shared annex '
            f'{common / "annex"}; annexed files in {worktree} are not '
            'readable')


def dotgit_problem(worktree: Path) -> str | None:
    """Why git-annex has not run in the linked worktree ``worktree`` yet
    (its ``.git`` is no symbolic link), or None"""
    if (worktree / '.git').is_symlink():
        return None
    return (f'git-annex did not link {worktree} to the shared annex; '
            f"annexed files there are not readable. Run 'git annex init' "
            f'in {worktree} to repair it')


def links_to_shared_annex(gitdir: Path, common: Path) -> bool:
    """Whether ``annex`` in the git directory ``gitdir`` of a linked
    worktree is a symbolic link to the annex of the common one"""
    annex = gitdir / 'annex'
    return annex.is_symlink() and same_path(annex, common / 'annex')


def repair_annex_link(worktree: Path, dry_run: bool = False) -> str | None:
    """Make the linked worktree ``worktree`` read annexed files from the
    shared annex where it does not: link its git directory to the shared
    annex (see ``link_shared_annex``), then have git-annex update the
    annexed files that its filter left without content (``git annex
    fix``). Why that cannot be done, or None; with ``dry_run``, only why
    it could not be done. Nothing changes where the link is there already.

    git-annex leaves this to be done in a worktree of a submodule whose git
    directory is absorbed into its superdataset's ``.git/modules``: it
    treats that as a submodule, and keeps an annex of the worktree's own.
    """
    if not annex_link_problem(worktree):
        return None
    problem = dotgit_problem(worktree) or own_annex_problem(worktree)
    if problem or dry_run:
        return problem
    problem = link_shared_annex(worktree)
    if problem:
        return problem
    try:
        git.run(worktree, ['annex', 'fix', '--quiet'])
    except CommandError as e:
        return (f"linked {worktree} to the shared annex, but 'git annex fix' "
                f'failed there: {error_line(e)}')
    return annex_link_problem(worktree)


ANNEX_HOOK = ('#!/bin/sh\n# automatically configured by git-annex\n'
              'git annex smudge --update\n')
"""The post-checkout hook that ``git annex init`` installs"""


def annex_checkout_work_needless(repo: Path) -> bool:
    """Whether checking out a new worktree of ``repo`` needs nothing of
    git-annex but the links it makes on its first run there: the
    repository's hooks directory (no ``core.hooksPath`` configured) runs
    no hook during a checkout but git-annex's own ``post-checkout``, as
    ``git annex init`` installed it, whose ``smudge --update``, like
    git-annex's filter, only acts on unlocked files"""
    if may_be_configured(repo, 'core.hookspath'):
        return False
    hooks = git_dirs(repo)[1] / 'hooks'
    try:
        post_checkout = (hooks / 'post-checkout').read_text()
    except (OSError, UnicodeDecodeError):
        return False
    return post_checkout == ANNEX_HOOK and \
        not os.path.lexists(hooks / 'reference-transaction')


def link_like_annex(worktree: Path) -> str | None:
    """Do what git-annex does on its first run in the new linked worktree
    ``worktree``: replace its ``.git`` file by a symbolic link to its git
    directory, and link the git directory to the shared annex; why that
    cannot be done, or None"""
    gitdir, _ = git_dirs(worktree)
    dotgit = worktree / '.git'
    if not dotgit.is_symlink():
        staged = worktree / '.git.worktree-link'
        staged.symlink_to(os.path.relpath(gitdir, worktree))
        os.replace(staged, dotgit)
    return link_shared_annex(worktree)


def repair_own_annex(worktree: Path, dry_run: bool = False) -> str | None:
    """Where the linked worktree ``worktree`` keeps an annex directory of
    its own (as git-annex made for an absorbed git directory, before this
    package repaired it), make it use the shared annex (see
    ``repair_annex_link``; with ``dry_run``, only check) and log that; why
    that cannot be done, or None"""
    if not has_own_annex(worktree):
        return None
    problem = repair_annex_link(worktree, dry_run)
    if not problem and not dry_run:
        lgr.info('%s: linked to the shared annex, in place of an annex '
                 'directory of its own that held nothing unique', worktree)
    return problem


def link_shared_annex(worktree: Path) -> str | None:
    """Link ``annex`` in the git directory of the linked worktree
    ``worktree`` to the shared annex, in place of a link that leads
    elsewhere or of an annex directory of its own that holds nothing
    unique (see ``own_annex_problem``); why that cannot be done, or None

    The directory is moved aside in one step and checked again there
    before it is deleted: if git-annex wrote something unique into it
    meanwhile, it is moved back.
    """
    problem = own_annex_problem(worktree)
    if problem:
        return problem
    gitdir, common = git_dirs(worktree)
    if gitdir == common or links_to_shared_annex(gitdir, common):
        return None
    annex, aside = gitdir / 'annex', None
    if has_own_annex(worktree):
        aside = Path(tempfile.mkdtemp(prefix='annex-replaced-', dir=gitdir))
        os.rename(annex, aside / 'annex')
        problem = own_annex_dir_problem(worktree, aside / 'annex', common)
        if problem:
            os.rename(aside / 'annex', annex)
            aside.rmdir()
            return problem
    elif annex.is_symlink():
        annex.unlink()
    annex.symlink_to(os.path.relpath(common / 'annex', gitdir))
    if aside:
        # git-annex made its object directories read-only: DataLad's
        # rmtree makes every directory writable first
        rmtree(aside)
    return None


def own_annex_problem(worktree: Path) -> str | None:
    """Why the annex directory of its own that the linked worktree
    ``worktree`` keeps, where a link to the shared annex belongs, cannot be
    replaced by that link (see ``own_annex_dir_problem``); None when it
    holds nothing unique, or there is no such directory"""
    gitdir, common = git_dirs(worktree)
    if gitdir == common or not has_own_annex(worktree):
        return None
    return own_annex_dir_problem(worktree, gitdir / 'annex', common)


def own_annex_dir_problem(worktree: Path, own: Path, common: Path
                          ) -> str | None:
    """Why the annex directory ``own`` of the linked worktree ``worktree``
    (of the repository with the common git directory ``common``) holds
    something unique: annexed objects that the shared annex lacks,
    git-annex branch changes not committed yet (in its journal or in its
    index of the branch), or files in places that git-annex does not
    rebuild; or None"""
    missing = objects_missing(own / 'objects', common / 'annex' / 'objects')
    if missing:
        return own_objects_refusal(worktree, own, missing)
    where = f'{own}, the annex directory of {worktree} (not the shared one),'
    if files_below(own / 'journal') or not annex_index_committed(
            worktree, own):
        return (f'{where} holds git-annex branch changes not committed yet; '
                f"commit them with 'git -C {worktree} annex sync --only-annex "
                "--no-pull --no-push --no-content', then run this command "
                'again')
    kept = [name for name in sorted(os.listdir(own))
            if name not in ANNEX_REBUILT and files_below(own / name)]
    if kept:
        return (f'{where} holds files that git-annex does not rebuild, in '
                f'{", ".join(kept)}; move out what you need and delete them, '
                'then run this command again')
    return None


ANNEX_REBUILT = frozenset({
    'objects', 'journal', 'index',  # checked on their own
    'keysdb', 'keysdb.lck', 'keysdb.cache', 'fsck', 'fsckdb', 'fsck.lck',
    'smudge.log', 'smudge.lck', 'restage.log', 'restage.lck', 'index.lck',
    'journal.lck', 'gitqueue.lck', 'othertmp.lck', 'mergedrefs',
    'sentinal', 'sentinal.cache', 'verified-remote.log',
    'verified-remote.lck',
})
"""What git-annex keeps in its directory that can go with it: databases it
rebuilds from git (keys, fsck state), the lists of files its filter left
for later (``git annex fix`` updates them after the link is made), locks,
caches and the record of branches it merged. Anything else that holds a
file (its journal, temporary and transfer directories, content fsck set
aside as bad, credentials) keeps the directory from being replaced."""


def objects_missing(own: Path, shared: Path) -> list[Path]:
    """The annexed objects below ``own`` (an ``annex/objects`` directory)
    that the one at ``shared`` has not, at the same place and size"""
    missing = []
    for path in files_below(own):
        other = shared / path.relative_to(own)
        if not other.is_file() or \
                other.stat().st_size != path.lstat().st_size:
            missing.append(path)
    return missing


def files_below(path: Path) -> list[Path]:
    """The files (anything but a directory) at or below ``path``, without
    following symbolic links; empty where there is nothing"""
    if not path.is_dir() or path.is_symlink():
        return [path] if os.path.lexists(path) else []
    return [Path(top) / name for top, dirs, names in os.walk(path)
            for name in names + [d for d in dirs
                                 if (Path(top) / d).is_symlink()]]


def annex_index_committed(repo: Path, own: Path) -> bool:
    """Whether git-annex's index of its branch in the annex directory
    ``own`` holds nothing that the branch lacks: it matches the branch
    commit that git-annex last recorded for it (in ``index.lck``), or the
    branch's tip. True where there is no such index."""
    index = own / 'index'
    if not index.is_file():
        return True
    lock = own / 'index.lck'
    recorded = lock.read_text().strip() if lock.is_file() else ''
    candidates = ['refs/heads/git-annex']
    if recorded and all(c in '0123456789abcdef' for c in recorded):
        candidates.insert(0, recorded)
    for commit in candidates:
        try:
            if index_matches(repo, commit, index):
                return True
        except CommandError:
            continue
    return False


def own_objects_refusal(worktree: Path, own: Path, missing: list[Path]
                        ) -> str:
    """What to do about annexed objects that the linked worktree
    ``worktree`` keeps in its own annex directory ``own`` only"""
    main = list_worktrees(worktree)[0].path
    objects = shlex.quote(str(own / 'objects'))
    git_main = f'git -C {shlex.quote(str(main))} annex'
    return (
        f'{worktree} has annexed content of its own in {own}, not in the '
        f'shared annex: {len(missing)} object(s) that {main} does not have '
        f'(such as {missing[0].name}); nothing was changed. Move them into '
        f"the shared annex with 'chmod -R u+w {objects} && find {objects} "
        f"-type f -exec {git_main} reinject --guesskeys {{}} +', check with "
        f"'{git_main} fsck --fast', then run this command again")
