"""worktree-sync on a real hierarchy: real git, git-annex and DataLad"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from datalad import api as dl

from tests.helpers import (
    CODE,
    by_path,
    clean,
    commit_file,
    datalad_cli,
    git,
    recorded,
    snapshot,
)


def sync(wt, **kw):
    kw.setdefault('on_failure', 'ignore')
    return by_path(dl.worktree_sync(dataset=wt, result_renderer='disabled',
                                    return_type='list', **kw), wt)


@pytest.fixture
def runs(runs):
    """conftest's 'runs' worktree of the whole hierarchy, with an ignored
    .venv in its code subdataset, as a user sets it up before a batch"""
    venv = runs / CODE / '.venv'
    (venv / 'bin').mkdir(parents=True)
    (venv / 'bin' / 'python').write_text('#!/bin/sh\n')
    return runs


def venv_intact(wt):
    return (wt / CODE / '.venv/bin/python').read_text() == '#!/bin/sh\n'


def develop_code(origin, detach=True, name='dev.py'):
    """New code in the main worktree, on a detached HEAD as jj leaves it"""
    code = origin / CODE
    if detach:
        git(code, 'checkout', '-q', '--detach')
    return commit_file(code, name, 'print("dev")\n', f'add {name}')


def test_detached_main_head_reaches_the_worktree(origin, runs):
    new = develop_code(origin)
    res = sync(runs, recursive=True)
    code = res[CODE]
    assert code['status'] == 'ok'
    assert code['how'] == 'fast-forward'
    assert code['to_commit'] == new
    assert code['source'] == str(origin / CODE)
    assert git(runs / CODE, 'rev-parse', 'HEAD') == new
    assert git(runs / CODE, 'symbolic-ref', 'HEAD') == 'refs/heads/runs'
    # the parents recorded it, bottom-up, one commit each
    assert res['derived/L5b']['recorded'] == ['code']
    assert res['.']['recorded'] == ['derived/L5b']
    assert recorded(runs / 'derived/L5b', 'code') == new
    assert clean(runs)
    assert venv_intact(runs)
    # annexed content stays readable
    assert 'trials.tsv' in (runs / 'derived/L5b/results/summary.txt').read_text()
    # and a second sync has nothing to do
    again = sync(runs, recursive=True)
    assert {r['status'] for k, r in again.items()
            if k != 'derived/L5b/containers'} == {'notneeded'}


def test_only_a_deep_subdataset_changed(origin, runs):
    deep = origin / 'derived/L5b/inputs/bpod'
    new = commit_file(deep, 'sub-03/trials.tsv', 'more\n', 'new subject')
    res = sync(runs, recursive=True)
    assert res['derived/L5b/inputs/bpod']['to_commit'] == new
    assert res['derived/L5b']['recorded'] == ['inputs/bpod']
    assert res['.']['recorded'] == ['derived/L5b']
    assert res['raw/bpod']['status'] == 'notneeded'
    assert res['derived/L5b/code']['status'] == 'notneeded'
    assert clean(runs)
    assert venv_intact(runs)


def stale_by_update_ref(origin, runs):
    """Move 'runs' of code underneath its worktree, like `jj bookmark set`"""
    new = develop_code(origin)
    git(origin / CODE, 'update-ref', 'refs/heads/runs', new)
    return new


def test_branch_moved_underneath_is_repaired(origin, runs):
    old = git(runs / CODE, 'rev-parse', 'HEAD')
    new = stale_by_update_ref(origin, runs)
    # the phantom changes the user would see
    assert git(runs / CODE, 'status', '--porcelain') != ''
    res = sync(runs, recursive=True)
    code = res[CODE]
    assert code['status'] == 'ok'
    assert code['repaired_from'] == old
    assert 'stale checkout' in code['message']
    assert git(runs / CODE, 'status', '--porcelain', '--untracked-files=no') \
        == ''
    assert (runs / CODE / 'dev.py').exists()
    assert recorded(runs / 'derived/L5b', 'code') == new
    assert clean(runs)
    assert venv_intact(runs)


def test_rewritten_branch_is_repaired(origin, runs):
    # runs was moved to a new commit (as above), synced, then jj squash
    # rewrote that commit and moved the bookmark again
    stale_by_update_ref(origin, runs)
    sync(runs, recursive=True)
    code = origin / CODE
    seen = git(runs / CODE, 'rev-parse', 'HEAD')
    (code / 'dev.py').write_text('print("squashed")\n')
    git(code, 'commit', '-q', '--amend', '-a', '--no-edit')
    rewritten = git(code, 'rev-parse', 'HEAD')
    git(code, 'update-ref', 'refs/heads/runs', rewritten)
    res = sync(runs, recursive=True)
    assert res[CODE]['repaired_from'] == seen
    assert (runs / CODE / 'dev.py').read_text() == 'print("squashed")\n'
    assert recorded(runs / 'derived/L5b', 'code') == rewritten
    assert clean(runs)
    assert venv_intact(runs)


@pytest.mark.parametrize('staged', [False, True])
def test_stale_checkout_with_local_changes_is_refused(origin, runs, staged):
    stale_by_update_ref(origin, runs)
    (runs / CODE / 'process.py').write_text('my edit\n')
    if staged:
        # staged on top of a stale checkout: not taken for staged work
        # that the update leaves alone
        git(runs / CODE, 'add', 'process.py')
    before = snapshot(runs / CODE)
    res = sync(runs, recursive=True)
    assert res[CODE]['status'] == 'impossible'
    assert res[CODE]['refusal'] == 'uncommitted-changes'
    assert ('uncommitted changes in' if staged else
            'local changes on top: process.py') in res[CODE]['message']
    assert (runs / CODE / 'process.py').read_text() == 'my edit\n'
    assert snapshot(runs / CODE) == before
    # its parents are left alone too
    assert res['derived/L5b']['status'] == 'impossible'
    assert 'could not be' in res['derived/L5b']['message']


def diverge(origin, runs):
    """A result committed in the worktree, new code in the main one"""
    mine = commit_file(runs / CODE, 'result.txt', 'result\n', 'a result')
    theirs = develop_code(origin)
    return mine, theirs


def test_diverged_merge(origin, runs):
    mine, theirs = diverge(origin, runs)
    res = sync(runs, recursive=True)
    code = res[CODE]
    assert code['status'] == 'ok' and code['how'] == 'merge'
    head = git(runs / CODE, 'rev-parse', 'HEAD')
    assert git(runs / CODE, 'rev-parse', 'HEAD^1', 'HEAD^2').split() == \
        [mine, theirs]
    assert (runs / CODE / 'result.txt').exists()
    assert (runs / CODE / 'dev.py').exists()
    assert recorded(runs / 'derived/L5b', 'code') == head
    assert clean(runs)
    assert venv_intact(runs)


def test_diverged_ff_only_is_refused(origin, runs):
    mine, theirs = diverge(origin, runs)
    before = snapshot(runs)
    res = sync(runs, recursive=True, how='ff-only')
    assert res[CODE]['status'] == 'impossible'
    assert 'diverged' in res[CODE]['message']
    assert snapshot(runs) == before
    assert venv_intact(runs)


def test_diverged_reset_refuses_to_orphan_commits(origin, runs):
    mine, theirs = diverge(origin, runs)
    before = snapshot(runs)
    res = sync(runs, recursive=True, how='reset')
    assert res[CODE]['status'] == 'impossible'
    assert mine[:10] in res[CODE]['message']
    assert 'give force=True to give them up' in res[CODE]['message']
    assert snapshot(runs) == before
    # with --force, the commit is given up, and the record says which
    res = sync(runs, recursive=True, how='reset', force=True)
    assert res[CODE]['status'] == 'ok'
    assert res[CODE]['orphaned'] == [mine]
    assert git(runs / CODE, 'rev-parse', 'HEAD') == theirs
    assert not (runs / CODE / 'result.txt').exists()
    assert clean(runs)
    assert venv_intact(runs)


def test_reset_is_allowed_when_another_branch_keeps_the_commits(
        origin, runs):
    mine, theirs = diverge(origin, runs)
    git(origin / CODE, 'branch', 'keep', mine)
    res = sync(runs, recursive=True, how='reset')
    assert res[CODE]['status'] == 'ok'
    assert 'orphaned' not in res[CODE]
    assert git(runs / CODE, 'rev-parse', 'HEAD') == theirs


def local_changes(repo):
    """Uncommitted changes of every kind in ``repo`` (the code subdataset,
    which has old.txt), none in a file that develop_code's commit changes:
    an unstaged edit, a staged edit with another edit on top, a staged new
    file, a staged deletion and an untracked file. Returns what must stay:
    git's status and the files' content"""
    (repo / 'process.py').write_text('unsaved edit\n')
    (repo / '.gitignore').write_text('.venv/\n# staged\n')
    git(repo, 'add', '.gitignore')
    (repo / '.gitignore').write_text('.venv/\n# staged\n# and not\n')
    git(repo, 'rm', '-q', 'old.txt')
    (repo / 'notes.md').write_text('staged new file\n')
    git(repo, 'add', 'notes.md')
    (repo / 'scratch.txt').write_text('untracked\n')
    return local_state(repo)


def local_state(repo):
    return (git(repo, 'status', '--porcelain', '--ignored'),
            git(repo, 'diff', '--cached'), git(repo, 'diff'),
            {p: (repo / p).read_text() for p in
             ('process.py', '.gitignore', 'notes.md', 'scratch.txt')})


@pytest.mark.parametrize('how', ['fast-forward', 'merge', 'reset'])
def test_unrelated_local_changes_stay(origin, runs, how):
    """Uncommitted changes, staged or not, and untracked files that the
    update does not touch stay exactly as they were: content and what is
    staged; also across a merge commit and a reset, which git itself
    would refuse or unstage"""
    code = runs / CODE
    git(origin / CODE, 'checkout', '-q', '--detach')
    commit_file(origin / CODE, 'old.txt', 'to be deleted\n', 'old.txt')
    assert sync(code)['.']['how'] == 'fast-forward'
    if how != 'fast-forward':
        mine = commit_file(code, 'result.txt', 'result\n', 'a result')
        if how == 'reset':
            git(origin / CODE, 'branch', 'keep', mine)
    new = develop_code(origin)
    before = local_changes(code)
    parent = runs / 'derived/L5b'
    (parent / 'staged.txt').write_text('staged in the parent\n')
    git(parent, 'add', 'staged.txt')
    parent_staged = git(parent, 'diff', '--cached', '--name-status',
                        '--ignore-submodules=all')
    res = sync(runs, recursive=True,
               how='reset' if how == 'reset' else 'merge')
    assert res[CODE]['status'] == 'ok', res[CODE]['message']
    assert res[CODE]['how'] == how
    if how == 'merge':
        assert git(code, 'rev-parse', 'HEAD^2') == new
    else:
        assert git(code, 'rev-parse', 'HEAD') == new
    assert (code / 'dev.py').exists()
    assert local_state(code) == before
    assert venv_intact(runs)
    # the parent recorded the subdataset's new commit, nothing else of it
    assert recorded(runs / 'derived/L5b', 'code') == \
        git(code, 'rev-parse', 'HEAD')
    assert git(parent, 'diff', '--cached', '--name-status',
               '--ignore-submodules=all') == parent_staged == 'A\tstaged.txt'


@pytest.mark.parametrize('where', ['untracked', 'ignored', 'directory'])
def test_change_that_would_overwrite_a_file_git_does_not_track(
        origin, runs, where):
    """An untracked or ignored file where the update adds one, or a file
    where it adds a directory, is named, and nothing changes; moved away,
    it no longer blocks"""
    name = {'untracked': 'dev.py', 'ignored': '.venv/bin/python',
            'directory': 'tools'}[where]
    if where == 'directory':
        develop_code(origin, name='tools/run.py')
        (runs / CODE / name).write_text('my scratch\n')
    elif where == 'ignored':
        git(origin / CODE, 'checkout', '-q', '--detach')
        (origin / CODE / '.venv/bin').mkdir(parents=True)
        (origin / CODE / name).write_text('tracked by mistake\n')
        git(origin / CODE, 'add', '-f', name)
        git(origin / CODE, 'commit', '-q', '-m', 'track a venv file')
    else:
        develop_code(origin)
        (runs / CODE / name).write_text('my scratch\n')
    mine = (runs / CODE / name).read_text()
    before = snapshot(runs)
    res = sync(runs, recursive=True)
    assert res[CODE]['status'] == 'impossible'
    assert res[CODE]['refusal'] == 'untracked-files'
    assert f'that git does not track: {name}; move them away first' in \
        res[CODE]['message']
    assert res[CODE]['untracked'] == [name]
    assert (runs / CODE / name).read_text() == mine
    assert snapshot(runs) == before
    os.rename(runs / CODE / name, runs / 'moved-away')
    assert sync(runs / CODE)['.']['status'] == 'ok'


@pytest.mark.slow
def test_new_subdataset_in_the_source_gets_a_worktree(origin, runs):
    """A subdataset new in the development state, installed in the main
    worktree, becomes a linked worktree of it at the recorded commit"""
    derived = dl.Dataset(origin / 'derived/L5b')
    derived.create('models', result_renderer='disabled')
    dl.Dataset(origin).save(path='derived/L5b', message='models',
                            result_renderer='disabled')
    res = sync(runs, recursive=True)
    new = res['derived/L5b/models']
    assert (new['action'], new['status']) == ('worktree-add', 'ok'), new
    assert new['branch'] == 'runs'
    assert res['derived/L5b']['status'] == 'ok'
    models = runs / 'derived/L5b/models'
    assert git(models, 'rev-parse', 'HEAD') == \
        recorded(runs / 'derived/L5b', 'models')
    assert Path(git(models, 'rev-parse', '--path-format=absolute',
                    '--git-common-dir')) == origin / 'derived/L5b/models/.git'
    assert clean(runs)


def test_main_worktree_is_refused_with_the_path_to_give(origin, runs):
    before = snapshot(origin)
    res = dl.worktree_sync(dataset=origin, on_failure='ignore',
                           result_renderer='disabled', return_type='list')
    assert [r['status'] for r in res] == ['impossible']
    assert 'is the main worktree' in res[0]['message']
    assert str(runs) in res[0]['message']
    assert snapshot(origin) == before


def test_dry_run_changes_nothing(origin, runs):
    develop_code(origin)
    before = snapshot(runs)
    res = sync(runs, recursive=True, dry_run=True)
    assert res[CODE]['status'] == 'ok' and res[CODE]['dry_run'] is True
    assert res[CODE]['message'].startswith('would fast-forward')
    assert snapshot(runs) == before


def test_parallel_jobs_and_non_recursive(origin, runs):
    new = develop_code(origin)
    top_only = sync(runs)
    assert list(top_only) == ['.']
    assert git(runs / CODE, 'rev-parse', 'HEAD') != new
    res = sync(runs, recursive=True, jobs=2)
    assert res[CODE]['to_commit'] == new
    assert clean(runs)


@pytest.mark.slow
def test_cli(origin, runs):
    new = develop_code(origin)
    out = datalad_cli('worktree-sync', '-r', cwd=runs / CODE)
    # from inside code/, only code/ is the dataset
    assert out.returncode == 0, out.stderr
    assert 'worktree-sync(ok): . (dataset) [fast-forward from' in out.stdout
    out = datalad_cli('-f', 'json', 'worktree-sync', '-r', cwd=runs)
    records = {r['path']: r for r in map(json.loads, out.stdout.splitlines())}
    assert records[str(runs / 'derived/L5b')]['recorded'] == ['code']
    assert records[str(runs / CODE)]['from_commit'] == new
    bad = datalad_cli('worktree-sync', '--how', 'rebase', cwd=runs)
    assert bad.returncode != 0
    assert 'Traceback' not in bad.stderr


def test_conflict_only_on_a_subdataset_pointer_is_resolved(origin, runs):
    # both sides recorded a different new commit of code in derived/L5b
    mine, theirs = diverge(origin, runs)
    for side in (runs, origin):
        git(side / 'derived/L5b', 'commit', '-q', '-m', 'record code', '--',
            'code')
    res = sync(runs, recursive=True)
    merged = git(runs / CODE, 'rev-parse', 'HEAD')
    assert res[CODE]['how'] == 'merge'
    derived = res['derived/L5b']
    assert derived['status'] == 'ok' and derived['how'] == 'merge'
    assert recorded(runs / 'derived/L5b', 'code') == merged
    assert git(runs / 'derived/L5b', 'rev-list', '--parents', '-n1',
               'HEAD').count(' ') == 2
    assert clean(runs)


def test_content_conflict_changes_nothing(origin, runs):
    commit_file(runs / CODE, 'process.py', 'mine\n', 'edit in runs')
    git(origin / CODE, 'checkout', '-q', '--detach')
    commit_file(origin / CODE, 'process.py', 'theirs\n', 'edit in main')
    before = snapshot(runs)
    res = sync(runs, recursive=True)
    assert res[CODE]['status'] == 'impossible'
    assert 'conflicts in process.py' in res[CODE]['message']
    assert 'nothing was changed' in res[CODE]['message']
    assert snapshot(runs) == before
    assert venv_intact(runs)


def test_staged_changes_are_never_taken_for_a_stale_checkout(origin, runs):
    # staging an earlier state by hand is the user's work, not staleness
    code = runs / CODE
    first = git(code, 'rev-parse', 'HEAD')
    commit_file(code, 'result.txt', 'result\n', 'a result')
    git(code, 'rm', '-q', '--cached', 'result.txt')
    assert git(code, 'write-tree') == git(code, 'rev-parse', f'{first}^{{tree}}')
    new = develop_code(origin)
    staged = git(code, 'status', '--porcelain')
    res = sync(runs, recursive=True)
    # merged as staged work that the update does not touch: the checkout
    # was not reset to the state the index holds
    assert res[CODE]['status'] == 'ok', res[CODE]['message']
    assert 'repaired_from' not in res[CODE]
    assert res[CODE]['how'] == 'merge'
    assert git(code, 'rev-parse', 'HEAD^2') == new
    assert git(code, 'cat-file', '-t', 'HEAD:result.txt') == 'blob'
    assert git(code, 'status', '--porcelain') == staged
    assert (code / 'result.txt').read_text() == 'result\n'


@pytest.mark.parametrize('index', ['updated', 'not updated'])
def test_interrupted_fast_forward_is_finished(origin, runs, index):
    """A fast-forward killed after git wrote the new files, with or without
    the index, but before the branch moved: the files hold what the source
    has, so the rerun finishes it instead of taking them for local work"""
    code = origin / CODE
    commit_file(code, 'process.py', 'print("v2")\n', 'change the script')
    new = commit_file(code, 'dev.py', 'print("dev")\n', 'add dev.py')
    wt = runs / CODE
    git(wt, 'checkout', new, '--', 'process.py', 'dev.py')
    if index == 'not updated':
        git(wt, 'reset', '-q', '--', 'process.py', 'dev.py')
    res = sync(runs / CODE)
    assert res['.']['status'] == 'ok', res['.']['message']
    assert git(wt, 'rev-parse', 'HEAD') == new
    assert git(wt, 'status', '--porcelain') == ''
    assert venv_intact(runs)


@pytest.mark.slow
@pytest.mark.parametrize('staged', [False, True])
def test_local_change_to_a_file_the_update_changes_is_refused(
        origin, runs, staged):
    """Only the changed file is named (an unrelated edit does not block),
    nothing changes; stashed away, the change no longer blocks"""
    code = origin / CODE
    new = commit_file(code, 'process.py', 'print("v2")\n',
                      'change the script')
    wt = runs / CODE
    (wt / 'process.py').write_text('print("my edit")\n')
    if staged:
        git(wt, 'add', 'process.py')
    (wt / '.gitignore').write_text('.venv/\n# unrelated\n')
    before = snapshot(runs)
    res = sync(runs, recursive=True)
    assert res[CODE]['status'] == 'impossible'
    assert res[CODE]['refusal'] == 'uncommitted-changes'
    assert res[CODE]['message'] == (
        f'uncommitted changes in {wt} that this would change: process.py; '
        'commit or discard them first')
    assert res[CODE]['uncommitted'] == ['process.py']
    assert res['derived/L5b']['status'] == 'impossible'
    assert snapshot(runs) == before
    assert (wt / 'process.py').read_text() == 'print("my edit")\n'
    git(wt, 'stash', '-q')
    res = sync(runs, recursive=True)
    assert res[CODE]['status'] == 'ok', res[CODE]['message']
    assert git(wt, 'rev-parse', 'HEAD') == new
    assert git(wt, 'stash', 'list').count('\n') == 0
    assert git(wt, 'status', '--porcelain') == ''


@pytest.mark.parametrize('lock', ['index.lock', 'HEAD.lock'])
def test_lock_left_by_a_killed_git_is_named(origin, runs, lock):
    develop_code(origin, detach=False)
    gitdir = Path(git(runs / CODE, 'rev-parse', '--path-format=absolute',
                      '--git-dir'))
    (gitdir / lock).write_text('')
    an_hour_ago = time.time() - 3600
    os.utime(gitdir / lock, (an_hour_ago, an_hour_ago))
    before = snapshot(runs / CODE)
    started = time.monotonic()
    res = sync(runs, recursive=True)
    assert time.monotonic() - started < 30, 'waited for an old lock file'
    assert res[CODE]['status'] == 'impossible'
    assert f'git left {gitdir / lock}' in res[CODE]['message']
    assert 'delete the lock file' in res[CODE]['message']
    assert res['derived/L5b']['status'] == 'impossible'
    assert snapshot(runs / CODE) == before
    (gitdir / lock).unlink()
    assert sync(runs, recursive=True)[CODE]['status'] == 'ok'


@pytest.mark.slow
def test_a_no_op_prints_only_the_summary_but_json_has_every_record(runs):
    out = datalad_cli('worktree-sync', '-r', cwd=runs)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines() == [
        'action summary:', '  worktree-sync (notneeded: 8)']
    js = datalad_cli('-f', 'json', 'worktree-sync', '-r', cwd=runs)
    records = [json.loads(line) for line in js.stdout.splitlines()]
    assert len(records) == 8
    assert {r['status'] for r in records} == {'notneeded'}
