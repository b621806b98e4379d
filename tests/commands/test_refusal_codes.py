"""Every refusal names a stable code (``refusal``, see ``Refusal``) next to
its message, and changes nothing; every error that an exception caused
keeps it (``exception``). A representative set, at least one per command."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from datalad import api as dl
from datalad_next.exceptions import CapturedException

from datalad_worktree.base.outcome import Refusal
from tests.helpers import (
    CODE,
    DERIVED,
    add,
    by_path,
    commit_file,
    git,
    quiet,
    snapshot,
)

CODES = {r.value for r in Refusal}


def codes(results) -> list[str | None]:
    """The refusal code of each result; every 'impossible' one has one of
    the known codes, no other result has one"""
    for r in results:
        if r['status'] == 'impossible':
            assert r.get('refusal') in CODES, r
        else:
            assert 'refusal' not in r, r
    return [r.get('refusal') for r in results]


def test_add(origin, tmp_path):
    before = snapshot(origin)
    # a branch name made from PATH that git does not take
    res = add(origin, tmp_path / 'my runs')
    assert codes(res) == ['bad-branch']
    # a PATH with files in it
    full = tmp_path / 'full'
    full.mkdir()
    (full / 'mine.txt').write_text('mine\n')
    assert codes(add(origin, full)) == ['exists']
    # the branch that the dataset has checked out itself
    branch = git(origin, 'symbolic-ref', '--short', 'HEAD')
    assert codes(add(origin, tmp_path / 'wt', branch=branch)) == \
        ['branch-in-use']
    assert snapshot(origin) == before
    # a branch with commits that the commit to check out lacks: refused in
    # that dataset, the only one reported then
    git(origin / CODE, 'branch', 'ahead')
    git(origin / CODE, 'checkout', '-q', 'ahead')
    commit_file(origin / CODE, 'ahead.txt', 'ahead\n', 'ahead of main')
    git(origin / CODE, 'checkout', '-q', '-')
    before = snapshot(origin)
    res = by_path(add(origin, tmp_path / 'wt2', branch='ahead',
                      recursive=True), tmp_path / 'wt2')
    assert list(res) == [CODE]
    assert codes([res[CODE]]) == ['unmerged-commits']
    assert snapshot(origin) == before
    for wt in ('my runs', 'wt', 'wt2'):
        assert not (tmp_path / wt).exists()
    assert os.listdir(full) == ['mine.txt']


def test_add_past_state(origin, tmp_path):
    """A COMMIT-ISH that names no commit, one like an option, and one
    whose state records a commit a subdataset lacks"""
    before = snapshot(origin)
    wt = tmp_path / 'wt'
    assert codes(add(origin, wt, commit='v0.0-none')) == ['unknown-revision']
    assert codes(add(origin, wt, commit='--upload-pack=x')) == \
        ['bad-revision']
    assert snapshot(origin) == before
    derived = origin / DERIVED
    git(derived, 'update-index', '--cacheinfo', f'160000,{"ab" * 20},code')
    tree = git(derived, 'write-tree')
    git(derived, 'reset', '-q')
    broken = git(derived, 'commit-tree', tree, '-p', 'HEAD', '-m', 'broken')
    before = snapshot(origin)
    res = add(dl.Dataset(derived), wt, commit=broken, recursive=True)
    assert [c for c in codes(res) if c] == ['missing-commit']
    assert snapshot(origin) == before
    assert not wt.exists()


def test_add_error_keeps_the_exception(origin, tmp_path):
    """A post-checkout hook that fails: git's error, with the exception it
    raised, and nothing of the worktree left, nor its branch"""
    code = origin / CODE
    hooks = Path(git(code, 'rev-parse', '--path-format=absolute',
                     '--git-path', 'hooks'))
    hooks.mkdir(exist_ok=True)
    hook = hooks / 'post-checkout'
    hook.write_text('#!/bin/sh\necho the hook says no >&2\nexit 1\n')
    hook.chmod(0o755)
    before = snapshot(code)
    wt = tmp_path / 'wt'
    res = add(code, wt, branch='job')
    assert [r['status'] for r in res] == ['error'], res
    assert 'git worktree add failed: the hook says no' in res[0]['message']
    assert isinstance(res[0]['exception'], CapturedException)
    assert 'refusal' not in res[0]
    assert snapshot(code) == before
    assert not wt.exists() or not any(wt.iterdir())


@pytest.mark.slow
def test_sync(origin, runs):
    before = snapshot(origin), snapshot(runs)
    res = dl.worktree_sync(dataset=origin, **quiet())
    assert codes(res) == ['not-a-linked-worktree']
    assert (snapshot(origin), snapshot(runs)) == before
    # new code in the main worktree, and an edit here that it would lose
    commit_file(origin / CODE, 'process.py', 'dev\n', 'development')
    (runs / CODE / 'process.py').write_text('unsaved edit\n')
    before = snapshot(origin), snapshot(runs)
    res = by_path(dl.worktree_sync(dataset=runs, recursive=True, **quiet()),
                  runs)
    assert codes([res[CODE]]) == ['uncommitted-changes']
    assert codes([res[DERIVED], res['.']]) == ['blocked', 'blocked']
    assert (snapshot(origin), snapshot(runs)) == before


@pytest.mark.slow
def test_merge(origin, runs):
    # notes.txt committed differently on both sides of derived/L5b
    commit_file(runs / DERIVED, 'notes.txt', 'runs notes\n', 'in runs')
    git(runs, 'commit', '-q', '-m', 'record', '--', DERIVED)
    commit_file(origin / DERIVED, 'notes.txt', 'main notes\n', 'in main')
    before = snapshot(origin)
    res = by_path(dl.worktree_merge(str(runs), dataset=origin,
                                    recursive=True, **quiet()), origin)
    assert codes([res[DERIVED]]) == ['conflicts']
    assert res[DERIVED]['conflicts'] == ['notes.txt']
    assert codes([res['.']]) == ['blocked']
    assert snapshot(origin) == before
    # SOURCEs that name nothing to merge: one, and among several
    for source, code in ((str(origin), 'same-dataset'),
                         ('runz', 'no-match'),
                         ('--upload-pack=x', 'bad-branch'),
                         (['runs', 'job-nope*'], 'no-match'),
                         (['runs', '-x'], 'bad-branch')):
        res = dl.worktree_merge(source, dataset=origin, recursive=True,
                                **quiet())
        assert codes(res) == [code], (source, res)
    assert snapshot(origin) == before


def test_get(origin, runs, tmp_path):
    before = snapshot(origin), snapshot(runs)
    res = dl.worktree_get(str(origin / CODE), dataset=origin, **quiet())
    assert codes(res) == ['not-a-linked-worktree']
    res = dl.worktree_get(str(tmp_path), dataset=runs, **quiet())
    assert codes(res) == ['bad-path']
    assert (snapshot(origin), snapshot(runs)) == before


def test_list(origin):
    """A subdataset path in .gitmodules that leads out of the dataset"""
    bpod = origin / 'raw/bpod'
    git(bpod, 'config', '-f', '.gitmodules', 'submodule.out.path',
        '../outside')
    git(bpod, 'add', '.gitmodules')
    git(bpod, 'commit', '-q', '-m', 'a path that leads out')
    git(origin, 'commit', '-q', '-m', 'record it', '--', 'raw/bpod')
    before = snapshot(origin)
    res = dl.worktree_list(dataset=origin, recursive=True, **quiet())
    refused = [r for r in res if r['status'] == 'impossible']
    assert codes(refused) == ['bad-path'], res
    assert "'../outside'" in refused[0]['message']
    assert snapshot(origin) == before


def test_remove(origin, runs, tmp_path):
    commit_file(runs / CODE, 'result.txt', 'r\n', 'unmerged result')
    (runs / 'raw/bpod' / 'scratch.out').write_text('scratch\n')
    git(origin / 'raw/2p', 'worktree', 'lock', '--reason', 'batch running',
        str(runs / 'raw/2p'))
    before = snapshot(origin)
    res = by_path(dl.worktree_remove(str(runs), dataset=origin, **quiet()),
                  runs)
    assert codes([res[CODE], res['raw/bpod'], res['raw/2p']]) == \
        ['unmerged-commits', 'untracked-files', 'locked']
    for path, code in ((origin, 'main-worktree'),
                       (tmp_path, 'not-a-linked-worktree'),
                       (str(tmp_path / 'nope-*'), 'no-match')):
        res = dl.worktree_remove(str(path), dataset=origin, **quiet())
        assert codes(res) == [code], (path, res)
    assert snapshot(origin) == before
    assert (runs / CODE / 'result.txt').exists()
    assert (runs / 'raw/bpod' / 'scratch.out').exists()


def test_repair_and_move(origin, runs, tmp_path):
    """A worktree moved by hand is 'moved' for the other commands; repair
    and move refuse what is not a moved worktree, or a place to go"""
    (tmp_path / 'full').mkdir()
    (tmp_path / 'full' / 'mine.txt').write_text('mine\n')
    before = snapshot(origin)
    for target, code in ((tmp_path / 'full', 'exists'),
                         (origin / 'inside', 'bad-path')):
        assert codes(dl.worktree_move(runs, target, **quiet())) == [code]
    assert codes(dl.worktree_repair(tmp_path / 'full', **quiet())) == \
        ['not-moved']
    assert snapshot(origin) == before
    moved = tmp_path / 'elsewhere' / 'runs'
    moved.parent.mkdir()
    os.rename(runs, moved)
    before = snapshot(origin)
    assert codes(dl.worktree_sync(dataset=moved, **quiet())) == ['moved']
    assert codes(dl.worktree_remove(str(moved), dataset=origin,
                                    **quiet())) == ['moved']
    assert snapshot(origin) == before
    assert codes(dl.worktree_repair(moved, dataset=origin, **quiet())) == \
        [None] * 7
