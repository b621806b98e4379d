"""Container bind paths for linked worktrees

In a linked worktree of a git-annex dataset, an annexed file is a symlink
into ``.git/annex/objects``, and ``.git`` is itself a symlink into the main
repository's gitdir. A container that only sees the worktree (the bind
mounts of its runtime) cannot follow these links, so ``datalad
containers-run`` fails there on annexed inputs.

Containers whose committed ``cmdexec`` is left as it is (a collection
such as ReproNim/containers: ``singularity exec {img} {cmd}``, a wrapper
script such as ``{img_dspath}/scripts/singularity_cmd run {img} {cmd}``, or
``bwrap ... {cmd}``) get a ``cmdexec`` of the worktree's own (``git config
--worktree``, read before the committed one) that adds the bind mounts:
for ``bwrap``, its options, and for anything else the ``SINGULARITY_BIND``
and ``APPTAINER_BIND`` environment variables that singularity and
apptainer read, also when a script starts them. The values are read with
``git config`` when the command runs, so run records hold no paths and
rerun anywhere: where nothing is configured, nothing is added.

A dataset can also opt in by using one of the substitutions in
``SUBSTITUTIONS``
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

from datalad_worktree.base.outcome import Outcome, Refusal, failure
from datalad_worktree.repo.config import committed_config
from datalad_worktree.repo.queries import git_config
from datalad_worktree.repo.store.refs import common_dir
from datalad_worktree.runners import git
from datalad_worktree.runners.locks import lock_wait, retry_on_lock

ACTION = 'worktree-bindpaths'


PREFIX = 'datalad.run.substitutions.'


def _bwrap(binds: list[tuple[str, str]]) -> str:
    return ' '.join(f'--ro-bind {shlex.quote(src)} {shlex.quote(dest)}'
                    for src, dest in binds)


def _apptainer(binds: list[tuple[str, str]]) -> str:
    return ' '.join(f'--bind {shlex.quote(f"{src}:{dest}:ro")}'
                    for src, dest in binds)


def _env(binds: list[tuple[str, str]]) -> str:
    return ','.join(f'{src}:{dest}:ro' for src, dest in binds)


SUBSTITUTIONS = {
    'worktree-binds-bwrap': _bwrap,
    'worktree-binds-apptainer': _apptainer,
}
"""Substitution names, each with the runtime options it expands to"""


ENV_KEY = 'datalad.worktree.container-binds'
"""The binds as SINGULARITY_BIND and APPTAINER_BIND spell them"""


BIND_KEYS = {PREFIX + 'worktree-binds-bwrap': _bwrap, ENV_KEY: _env}
"""What a worktree-only cmdexec reads when it runs, with its formatting"""


def worktree_cmdexec(cmdexec: str) -> str:
    """``cmdexec`` with the bind mounts of the worktree it runs in added,
    read from git's configuration when it runs (nothing where unset)"""
    words = cmdexec.split(None, 1)
    if words and os.path.basename(words[0]) == 'bwrap':
        rest = words[1] if len(words) > 1 else ''
        return (f'{words[0]} $(git config --get '
                f'{PREFIX}worktree-binds-bwrap) {rest}')
    read = f'"$(git config --get {ENV_KEY})"'
    return f'SINGULARITY_BIND={read} APPTAINER_BIND={read} {cmdexec}'


def declared_substitutions(worktree: Path
                           ) -> tuple[list[str], dict[str, str]]:
    """The bind substitutions that the dataset checked out at ``worktree``
    uses in its committed ``.datalad/config``, and the containers there
    whose ``cmdexec`` uses none of them, with that ``cmdexec``"""
    config = worktree / '.datalad' / 'config'
    text = config.read_text(errors='replace') if config.is_file() else ''
    if 'containers' not in text and 'worktree-binds' not in text:
        return [], {}
    committed = committed_config(worktree)
    items = [(key, committed.get(key)) for key in committed.keys()
             if key.startswith(PREFIX) or (
                 key.startswith('datalad.containers.')
                 and key.endswith('.cmdexec'))]
    used, unbound = set(), {}
    for key, value in items:
        if key.startswith(PREFIX):
            used.update(n for n in SUBSTITUTIONS if key == PREFIX + n)
            continue
        found = {n for n in SUBSTITUTIONS if '{' + n + '}' in value}
        used |= found
        if not found:
            unbound[key[len('datalad.containers.'):-len('.cmdexec')]] = value
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


def configure_binds(worktree: Path, keys: dict[str, str],
                    binds: list[tuple[str, str]], names: list[str],
                    containers: list[str]) -> Outcome | None:
    """Set each configuration item ``keys`` names (with its value) in the
    own configuration of ``worktree``: the bind mounts ``binds`` of the
    worktree, as the substitutions ``names`` that the dataset uses and as
    the worktree-only cmdexec of ``containers`` reads them, and that
    cmdexec; None if all were set already"""
    repo_problem = worktree_config_problem(worktree)
    if repo_problem:
        return Outcome.refused(Refusal.CONFIGURATION, repo_problem)
    # 'git config --worktree' reads the registration of every worktree of
    # the repository: tried again while another git is making one (reading
    # changes nothing, and setting one value again does no more)
    wait = lock_wait()
    changed = [key for key, value in keys.items()
               if retry_on_lock(lambda: git_config(
                   worktree, key, ('--worktree',)), wait) != value]
    for key in changed:
        retry_on_lock(lambda: git.run(
            worktree, ['config', '--worktree', key, keys[key]]), wait)
    if not changed:
        return None
    dests = [dest for _, dest in binds]
    substitutions = [n for n in names if PREFIX + n in changed]
    what = f'set {", ".join(substitutions)}' if substitutions else \
        'set bind mounts'
    if containers:
        shown = ', '.join(containers[:3]) + (
            f' and {len(containers) - 3} more' if len(containers) > 3 else '')
        what += (f' and a cmdexec of its own for {len(containers)} '
                 f'container(s) ({shown}),')
    return Outcome('ok', (
        f'{what} for this worktree, so that containers see '
        f'{", ".join(dests) or "nothing more"}'),
        dict(bindpaths=dests, substitutions=substitutions,
             containers=len(containers)))


def worktree_config_problem(worktree: Path) -> str | None:
    """Enable per-worktree configuration in the repository of ``worktree``
    (``extensions.worktreeConfig``) where that is safe; why not, or None

    It is not safe where the shared configuration sets ``core.bare`` or
    ``core.worktree``: once enabled, every worktree would read them. It is
    set once, where it is not set yet; worktrees of the repository that
    are made at the same time may all find it unset, and each set it to
    the same value, waiting while another holds the lock of the shared
    configuration (``retry_on_lock``).
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
    retry_on_lock(lambda: git.run(
        worktree, ['config', '--local', 'extensions.worktreeConfig', 'true']),
        lock_wait())
    return None


def bind_hierarchy(worktrees: dict[PurePosixPath, Path]
                   ) -> Iterator[tuple[PurePosixPath, Outcome]]:
    """Configure container bind paths in each of ``worktrees`` (by the
    dataset's place in the hierarchy), covering the worktrees of the
    dataset and of all its subdatasets: where the dataset uses a bind
    substitution, that; where it has containers whose cmdexec uses none,
    a cmdexec of the worktree's own for them, and the bind mounts that
    reads in the dataset and in every dataset above it, from where such
    containers are run"""
    declared = {here: declared_substitutions(target)
                for here, target in worktrees.items()}
    runs_from = {up for here, (_, unbound) in declared.items() if unbound
                 for up in worktrees if up == here or up in here.parents}
    for here, target in worktrees.items():
        names, unbound = declared[here]
        if not names and not unbound and here not in runs_from:
            continue
        binds = list(dict.fromkeys(
            b for rel, wt in worktrees.items()
            if rel == here or here in rel.parents
            for b in annex_binds(wt)))
        keys = {PREFIX + n: SUBSTITUTIONS[n](binds) for n in names}
        if here in runs_from:
            keys.update({k: fmt(binds) for k, fmt in BIND_KEYS.items()})
        keys.update({f'datalad.containers.{name}.cmdexec':
                     worktree_cmdexec(cmdexec)
                     for name, cmdexec in unbound.items()})
        try:
            outcome = configure_binds(target, keys, binds, names,
                                      sorted(unbound))
        except CommandError as e:
            outcome = failure(target, e)
        if outcome:
            yield here, outcome
