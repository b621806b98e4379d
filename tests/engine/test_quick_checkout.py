"""git-annex's checkout work is skipped only where it has nothing to do

A worktree of a dataset without unlocked files is checked out without
git-annex's filter and post-checkout hook, and gets the links git-annex
would make on its first run there; it reads every annexed file as before.
An unlocked file, a post-checkout hook of the user's own, or a configured
hooks path keep git's and git-annex's checkout exactly as it is.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from datalad_worktree.repo.annex import uses_annex

from tests.helpers import (
    add,
    clean,
    commit_file,
    datasets_of,
    git,
)

HOOK_MARK = 'hook-ran'


def traced_add(origin: Path, target: Path, trace: Path,
               monkeypatch) -> list[dict]:
    """``worktree-add -r`` with git's trace2 events written to ``trace``;
    the results"""
    monkeypatch.setenv('GIT_TRACE2_EVENT', str(trace))
    res = add(origin, target, recursive=True)
    monkeypatch.delenv('GIT_TRACE2_EVENT')
    assert res and all(r['status'] in ('ok', 'notneeded') for r in res), res
    return res


def post_checkout_runs(trace: Path) -> int:
    """How many post-checkout hooks git started"""
    events = [json.loads(line) for line in trace.read_text().splitlines()]
    return sum(1 for e in events if e.get('event') == 'child_start'
               and e.get('hook_name') == 'post-checkout')


def annexed_files_readable(worktree: Path) -> None:
    """Every annexed file whose content the annex has, in every dataset
    of ``worktree``, leads to that content"""
    checked = 0
    for ds in datasets_of(worktree):
        for line in git(ds, 'annex', 'find').splitlines() \
                if (ds / '.git').is_symlink() else []:
            assert (ds / line).read_bytes(), ds / line
            checked += 1
    assert checked


def test_no_unlocked_files_no_annex_checkout(origin, tmp_path, monkeypatch):
    trace = tmp_path / 'trace.json'
    wt = tmp_path / 'wt'
    traced_add(origin, wt, trace, monkeypatch)
    assert post_checkout_runs(trace) == 0
    for ds in datasets_of(wt):
        if uses_annex(ds):
            dotgit = ds / '.git'
            assert dotgit.is_symlink()
            assert not os.path.isabs(os.readlink(dotgit))
            assert (dotgit / 'annex').is_symlink()
    annexed_files_readable(wt)
    assert clean(wt)


def test_an_unlocked_file_keeps_the_annex_checkout(origin, tmp_path,
                                                   monkeypatch):
    bpod = origin / 'raw' / 'bpod'
    git(bpod, 'annex', 'unlock', 'sub-01/trials.tsv')
    git(bpod, 'commit', '-q', '-m', 'unlock', 'sub-01/trials.tsv')
    git(origin, 'commit', '-q', '-m', 'record', 'raw/bpod')
    content = (bpod / 'sub-01' / 'trials.tsv').read_text()
    trace = tmp_path / 'trace.json'
    wt = tmp_path / 'wt'
    traced_add(origin, wt, trace, monkeypatch)
    assert post_checkout_runs(trace) == 1
    unlocked = wt / 'raw' / 'bpod' / 'sub-01' / 'trials.tsv'
    assert not unlocked.is_symlink()
    assert unlocked.read_text() == content
    annexed_files_readable(wt)
    assert clean(wt)


def test_hooks_of_the_users_own_still_run(origin, tmp_path, monkeypatch):
    """A post-checkout hook that is not only git-annex's, and a hooks path
    in the configuration, each keep git's hooks running"""
    bpod, twop = origin / 'raw' / 'bpod', origin / 'raw' / '2p'
    hook = Path(git(bpod, 'rev-parse', '--git-path', 'hooks/post-checkout'))
    hook = hook if hook.is_absolute() else bpod / hook
    hook.write_text(hook.read_text() + f'touch {HOOK_MARK}\n')
    hooks = tmp_path / 'my-hooks'
    hooks.mkdir()
    (hooks / 'post-checkout').write_text(f'#!/bin/sh\ntouch {HOOK_MARK}\n')
    (hooks / 'post-checkout').chmod(0o755)
    git(twop, 'config', 'core.hooksPath', str(hooks))
    commit_file(origin, 'notes.txt', 'unchanged hierarchy\n', 'a note')
    trace = tmp_path / 'trace.json'
    wt = tmp_path / 'wt'
    traced_add(origin, wt, trace, monkeypatch)
    assert post_checkout_runs(trace) == 2
    assert (wt / 'raw' / 'bpod' / HOOK_MARK).exists()
    assert (wt / 'raw' / '2p' / HOOK_MARK).exists()
    assert not (wt / HOOK_MARK).exists()
    annexed_files_readable(wt)
