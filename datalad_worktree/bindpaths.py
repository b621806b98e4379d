"""Container bind paths for linked worktrees

In a linked worktree of a git-annex dataset, an annexed file is a symlink
into ``.git/annex/objects``, and ``.git`` is itself a symlink into the main
repository's gitdir. A container that only sees the worktree (the bind
mounts of its runtime) cannot follow these links, so ``datalad
containers-run`` fails there on annexed inputs.

A dataset opts in by using one of the substitutions in ``SUBSTITUTIONS``
in the ``cmdexec`` of its containers, written ``{{worktree-binds-bwrap}}``
(the doubled braces survive ``containers-run``'s own formatting, and
``datalad run`` fills in the value), with an empty default committed in
its ``.datalad/config``::

    datalad.run.substitutions.worktree-binds-bwrap =

In the main worktree and in any clone the value is empty. In a worktree
made by ``worktree-add`` it is set, in that worktree's own configuration
(``git config --worktree``, never committed), to read-only bind mounts of
the repository locations that the annex links of the dataset and of all
its subdatasets lead to. Run records keep the placeholder, not the paths,
so they can be rerun anywhere.
"""

from __future__ import annotations

import os
import shlex
from pathlib import (
    Path,
    PurePosixPath,
)
from typing import Iterator

from datalad_next.runners import CommandError

from . import git
from .outcome import Outcome
from .repo import (
    common_dir,
    git_config,
)
from .settings import committed_config

ACTION = 'worktree-bindpaths'
PREFIX = 'datalad.run.substitutions.'


def _bwrap(binds: list[tuple[str, str]]) -> str:
    return ' '.join(f'--ro-bind {shlex.quote(src)} {shlex.quote(dest)}'
                    for src, dest in binds)


def _apptainer(binds: list[tuple[str, str]]) -> str:
    return ' '.join(f'--bind {shlex.quote(f"{src}:{dest}:ro")}'
                    for src, dest in binds)


SUBSTITUTIONS = {
    'worktree-binds-bwrap': _bwrap,
    'worktree-binds-apptainer': _apptainer,
}
"""Substitution names, each with the runtime options it expands to"""


def declared_substitutions(worktree: Path) -> tuple[list[str], list[str]]:
    """The bind substitutions that the dataset checked out at ``worktree``
    uses in its committed ``.datalad/config``, and the containers there
    whose ``cmdexec`` uses none of them"""
    config = worktree / '.datalad' / 'config'
    text = config.read_text(errors='replace') if config.is_file() else ''
    if 'containers' not in text and 'worktree-binds' not in text:
        return [], []
    committed = committed_config(worktree)
    items = [(key, committed.get(key)) for key in committed.keys()
             if key.startswith(PREFIX) or (
                 key.startswith('datalad.containers.')
                 and key.endswith('.cmdexec'))]
    used, unbound = set(), []
    for key, value in items:
        if key.startswith(PREFIX):
            used.update(n for n in SUBSTITUTIONS if key == PREFIX + n)
            continue
        found = {n for n in SUBSTITUTIONS if '{' + n + '}' in value}
        used |= found
        if not found:
            unbound.append(key.split('.')[2])
    return sorted(used), unbound


def annex_binds(worktree: Path) -> list[tuple[str, str]]:
    """What a container must see of the repository so that the annexed
    files of ``worktree`` resolve: (source, destination) pairs, where the
    destination is the path as the links spell it

    Empty for a worktree whose ``.git`` is not a symlink (git-annex did not
    link it: a plain git dataset, or the main worktree).
    """
    dotgit = worktree / '.git'
    if not dotgit.is_symlink():
        return []
    common = common_dir(_follow(dotgit))
    wanted = [common]
    for link in (common / 'annex', common / 'annex' / 'objects'):
        if link.is_symlink():
            wanted.append(_follow(link))
    unique = list(dict.fromkeys(wanted))
    return [(os.path.realpath(d), str(d)) for d in unique
            if not any(other in d.parents for other in unique)]


def _follow(link: Path) -> Path:
    """Where a symbolic link points, as written, made absolute"""
    return Path(os.path.normpath(link.parent / os.readlink(link)))


def configure_binds(worktree: Path, names: list[str],
                    binds: list[tuple[str, str]]) -> Outcome | None:
    """Set each substitution in ``names`` to ``binds`` in the own
    configuration of ``worktree``; None if all were set already"""
    repo_problem = _worktree_config_problem(worktree)
    if repo_problem:
        return Outcome('impossible', repo_problem)
    changed = []
    for name in names:
        value = SUBSTITUTIONS[name](binds)
        if git_config(worktree, PREFIX + name, ('--worktree',)) != value:
            git.run(worktree, ['config', '--worktree', PREFIX + name, value])
            changed.append(name)
    if not changed:
        return None
    dests = [dest for _, dest in binds]
    return Outcome('ok', (
        f'set {", ".join(changed)} for this worktree, so that containers '
        f'see {", ".join(dests) or "nothing more"}'),
        dict(bindpaths=dests, substitutions=changed))


def _worktree_config_problem(worktree: Path) -> str | None:
    """Enable per-worktree configuration in the repository of ``worktree``
    (``extensions.worktreeConfig``) where that is safe; why not, or None

    It is not safe where the shared configuration sets ``core.bare`` or
    ``core.worktree``: once enabled, every worktree would read them.
    """
    if git_config(worktree, 'extensions.worktreeConfig',
                  ('--local', '--bool')) == 'true':
        return None
    shared = git.lines(worktree, ['config', '--local', '--list'])
    blocking = [s.split('=')[0] for s in shared
                if s == 'core.bare=true' or s.startswith('core.worktree=')]
    if blocking:
        return (f'cannot give {worktree} a configuration of its own: the '
                f'repository sets {", ".join(blocking)}; container bind '
                'paths were not configured')
    git.run(worktree, ['config', '--local', 'extensions.worktreeConfig',
                       'true'])
    return None


def unbound_outcome(containers: list[str]) -> Outcome:
    """The report for containers whose cmdexec uses no bind substitution"""
    return Outcome('notneeded', (
        f'the containers {", ".join(containers)} cannot read annexed files '
        "in this worktree: their cmdexec uses no bind substitution; add "
        "'{{worktree-binds-bwrap}}' (or '{{worktree-binds-apptainer}}') to "
        'it and commit an empty default, see the documentation of '
        'worktree-add'), dict(containers=containers))


def bind_hierarchy(worktrees: dict[PurePosixPath, Path],
                   new: set[PurePosixPath]
                   ) -> Iterator[tuple[PurePosixPath, Outcome]]:
    """Configure container bind paths in each of ``worktrees`` (by the
    dataset's place in the hierarchy) whose dataset uses a bind
    substitution, covering the worktrees of the dataset and of all its
    subdatasets; report containers that cannot use them in the ``new``
    worktrees"""
    for here, target in worktrees.items():
        names, unbound = declared_substitutions(target)
        if unbound and here in new:
            yield here, unbound_outcome(unbound)
        if not names:
            continue
        binds = [b for rel, wt in worktrees.items()
                 if rel == here or here in rel.parents
                 for b in annex_binds(wt)]
        try:
            outcome = configure_binds(target, names,
                                      list(dict.fromkeys(binds)))
        except CommandError as e:
            outcome = Outcome('error', f'git failed in {target}: '
                                       f'{git.error_line(e)}')
        if outcome:
            yield here, outcome
