"""Which state a linked worktree was made from

``worktree-add PATH COMMIT-ISH`` checks out a past state of the hierarchy.
What was asked (the COMMIT-ISH as given, such as ``v1`` or ``HEAD~3``,
which names another commit once the branch moves on) and the commit each
dataset's worktree checked out for it are kept in that worktree's own git
configuration (``git config --worktree``, never committed):
``datalad.worktree.revision`` and ``datalad.worktree.commit``.
``worktree-list`` reports them. A worktree made from HEAD has neither.
"""

from __future__ import annotations

from pathlib import Path

from datalad_next.runners import CommandError

from datalad_worktree.environment.bindpaths import worktree_config_problem
from datalad_worktree.repo.store.refs import git_dirs
from datalad_worktree.runners import git
from datalad_worktree.runners.locks import lock_wait, retry_on_lock

REVISION_KEY = 'datalad.worktree.revision'
COMMIT_KEY = 'datalad.worktree.commit'


def record_made_from(worktree: Path, revision: str, commit: str
                     ) -> str | None:
    """Keep in the own configuration of ``worktree`` that it was made from
    ``revision`` (as asked), checking out ``commit``; why it could not be
    kept, or None"""
    problem = worktree_config_problem(worktree)
    if problem:
        return problem
    wait = lock_wait()
    for key, value in ((REVISION_KEY, revision), (COMMIT_KEY, commit)):
        # 'git config --worktree' reads every worktree's registration:
        # tried again while another git is making one
        retry_on_lock(lambda: git.run(
            worktree, ['config', '--worktree', key, value]), wait)
    return None


def made_from(worktree: Path) -> dict | None:
    """What ``worktree`` was made from: ``revision`` (as asked) and
    ``commit`` (checked out for it), or None for one made from HEAD. Asks
    git only where the worktree has a configuration of its own"""
    try:
        if not (git_dirs(worktree)[0] / 'config.worktree').exists():
            return None
        found = git.optional_text(worktree, [
            'config', '--worktree', '--get-regexp',
            r'^datalad\.worktree\.(revision|commit)$'])
    except (OSError, CommandError):
        return None
    values = dict(line.split(' ', 1) for line in (found or '').splitlines()
                  if ' ' in line)
    if REVISION_KEY not in values:
        return None
    return dict(revision=values[REVISION_KEY],
                commit=values.get(COMMIT_KEY))
