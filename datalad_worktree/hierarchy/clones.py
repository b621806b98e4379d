"""Separate clones found where a linked worktree belongs

A subdataset obtained inside a linked worktree with ``datalad get -n`` (or
cloned there by hand) is a repository of its own: its commits and annexed
content are not in the main worktree's copy of that subdataset. This
module recognizes such a clone and says what it holds that the main
worktree's copy lacks, so that no command records, advises or deletes
anything that would lose it.
"""

from __future__ import annotations

import os
from pathlib import Path

from datalad.utils import rmtree

from datalad_worktree.repo.annex import uses_annex
from datalad_worktree.repo.queries import head_commit, is_repo_root
from datalad_worktree.repo.records import object_ids, submodule_paths
from datalad_worktree.repo.store.refs import git_dirs
from datalad_worktree.repo.worktrees import same_repository
from datalad_worktree.runners import git

REMOTE = 'worktree-clone'
"""The remote name the advice uses for bringing a clone's work home"""


def is_separate_clone(place: Path, main_copy: Path) -> bool:
    """Whether a repository at ``place`` (a subdataset's place in a linked
    worktree) is not a worktree of ``main_copy``, the main worktree's copy
    of that subdataset (which need not be installed)"""
    if not is_repo_root(place):
        return False
    return not is_repo_root(main_copy) or \
        not same_repository(place, main_copy)


def unique_holdings(clone: Path, main_copy: Path, files: bool = True,
                    ignored: bool = False) -> list[str]:
    """What the separate clone ``clone`` holds that ``main_copy`` (the main
    worktree's copy, installed or not) lacks, each as a phrase; empty when
    nothing: commits and annexed content, with ``files`` also uncommitted
    changes and untracked files, with ``ignored`` also ignored files and
    installed subdatasets (repositories of their own inside it)"""
    found = local_files(clone, ignored) if files else []
    if ignored:
        nested = [p for p in submodule_paths(clone, 'HEAD')
                  if is_repo_root(clone / p)]
        if nested:
            found.append(f'installed subdatasets ({", ".join(nested[:5])})')
    tips = unreachable_tips(clone, main_copy)
    if tips:
        found.append(f'commits that {main_copy} lacks (at '
                     f'{", ".join(t[:10] for t in tips[:5])})')
    keys = annexed_keys(clone) - (annexed_keys(main_copy)
                                  if is_repo_root(main_copy) else set())
    if keys:
        found.append(f'annexed content that {main_copy} lacks '
                     f'({len(keys)} key(s))')
    return found


def unreachable_tips(clone: Path, main_copy: Path) -> list[str]:
    """The branch tips and HEAD of ``clone`` that no ref of ``main_copy``
    reaches (its git-annex branch aside: what it records about content is
    not work, and content is compared by itself); where ``main_copy`` is
    not installed, those that none of the clone's remote-tracking
    branches reaches"""
    tips = {tip for tip, ref in (line.split(' ', 1) for line in git.lines(
        clone, ['for-each-ref', '--format=%(objectname) %(refname)',
                'refs/heads/'])) if ref != 'refs/heads/git-annex'}
    head = head_commit(clone)
    if head:
        tips.add(head)
    if not is_repo_root(main_copy):
        # nothing to compare with (not installed in the main worktree, or
        # no longer in it at all, as a subdataset of a past state): what
        # the clone's own remote-tracking branches hold came from the
        # siblings it was cloned from, and stays there
        return sorted(t for t in tips if not git.text(clone, [
            'for-each-ref', '--count=1', '--format=%(refname)',
            f'--contains={t}', 'refs/remotes/']).strip())
    present = [t for t, found in zip(sorted(tips),
                                     object_ids(main_copy, sorted(tips)))
               if found]
    reached = {t for t in present if git.text(main_copy, [
        'for-each-ref', '--count=1', '--format=%(refname)',
        f'--contains={t}']).strip()}
    return sorted(tips - reached)


def annexed_keys(repo: Path) -> set[str]:
    """The keys whose content the annex of ``repo`` holds, read from its
    object directory without starting git-annex"""
    objects = git_dirs(repo)[1] / 'annex' / 'objects'
    return {name for folder, _, files in os.walk(objects)
            for name in files if Path(folder).name == name}


def local_files(repo: Path, ignored: bool) -> list[str]:
    """What the working tree of ``repo`` has beyond its commit, each as a
    phrase: uncommitted changes, untracked files and (with ``ignored``)
    ignored files"""
    kinds: dict[str, list[str]] = {}
    for entry in git.entries(repo, [
            'status', '--porcelain', '-z', '--no-renames',
            f'--ignored={"traditional" if ignored else "no"}',
            '--untracked-files=normal', '--ignore-submodules=all']):
        kind = {'??': 'untracked files', '!!': 'ignored files'}.get(
            entry[:2], 'uncommitted changes')
        kinds.setdefault(kind, []).append(entry[3:])
    return [f'{kind} ({", ".join(paths[:5])})'
            for kind, paths in kinds.items()]


def clone_refusal(clone: Path, main_copy: Path, holdings: list[str],
                  then: str) -> str:
    """Why the separate clone ``clone`` stops a command, and what brings
    its work into ``main_copy`` (installing that first where it is not),
    after which ``then`` goes on"""
    what = (f'{clone} is a separate clone, not a linked worktree of '
            f'{main_copy}')
    if not is_repo_root(main_copy):
        return (f'{what} (the main worktree has not installed it), and it '
                f'holds {"; ".join(holdings)}. Install it in the main '
                f"worktree first ('{install_command(main_copy)}'), then "
                f'{then}')
    pull = [f"'git -C {main_copy} remote add {REMOTE} {clone}'",
            f"'git -C {main_copy} pull --no-rebase --no-edit {REMOTE} HEAD'"]
    if uses_annex(main_copy):
        pull.append(f"'git -C {main_copy} annex pull {REMOTE}'")
    return (f'{what}, and it holds {"; ".join(holdings)}. Commit or move '
            f'away there what is to be kept, bring its work into {main_copy} '
            f'({", ".join(pull)}), then {then}')


def install_command(main_copy: Path) -> str:
    """The DataLad command that installs the subdataset ``main_copy`` in
    the main worktree, from the source its parent records"""
    parent = next(p for p in main_copy.parents if is_repo_root(p))
    return f'datalad get -n -d {parent} {main_copy}'


def replace_advice(clone: Path, main_copy: Path, top: Path) -> str:
    """Why the separate clone ``clone`` in the linked worktree ``top`` is
    not handled like a linked worktree, and what replaces it with one"""
    get = f"'datalad worktree-get -d {top} {clone}'"
    holdings = unique_holdings(clone, main_copy, ignored=True)
    if not holdings:
        return (f'{clone} is a separate clone, not a linked worktree of '
                f'{main_copy}, and holds nothing that {main_copy} lacks: '
                f'replace it with a linked worktree ({get})')
    return clone_refusal(clone, main_copy, holdings,
                         f'replace it with a linked worktree ({get})')


def delete_clone(clone: Path, trash: Path) -> None:
    """Delete the separate clone ``clone``, once checked to hold nothing
    that the main worktree lacks: first moved, in one step, to ``trash``
    (a path on the same file system; what an interrupted deletion left
    there goes first), so that an interruption leaves it whole or gone;
    then deleted there, with the directories that git-annex made read-only
    made writable (DataLad's ``rmtree``)"""
    if trash.exists():
        rmtree(trash)
    os.rename(clone, trash)
    rmtree(trash)
