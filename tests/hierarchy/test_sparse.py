"""Sparse worktrees (worktree-add --sparse) across dataset boundaries, and
how sync, list, merge and remove treat them"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from datalad import api as dl

from tests.helpers import (
    DERIVED,
    add,
    by_path,
    commit_file,
    datalad_cli,
    git,
    quiet,
    snapshot,
)
from datalad_worktree.repo.records import may_hold_unlocked_files

SUBJECT = f'{DERIVED}/inputs/bpod/sub-01'
CODE = f'{DERIVED}/code'


def cone(worktree) -> list[str]:
    return git(worktree, 'sparse-checkout', 'list').splitlines()


def job_worktree(origin, tmp_path, *paths, name='job-1'):
    wt = tmp_path / name
    res = add(origin, wt, branch=name, recursive=True, sparse=list(paths))
    assert all(r['status'] == 'ok' for r in res), res
    return wt, by_path(res, wt)


@pytest.mark.slow
def test_sparse_job_worktree_spans_datasets(origin, tmp_path):
    before = snapshot(origin)
    wt = tmp_path / 'job-1'
    out = datalad_cli('-f', 'json', 'worktree-add', '-d', str(origin), '-r',
                      '-b', 'job-1', '--sparse', SUBJECT, '--sparse',
                      CODE + '/', str(wt))
    assert out.returncode == 0, out.stderr
    found = by_path([json.loads(line) for line in out.stdout.splitlines()],
                    wt)
    # only the datasets on the way to a PATH, and the one inside it
    assert sorted(found) == sorted(['.', DERIVED, CODE,
                                    f'{DERIVED}/inputs/bpod'])
    assert all(r['status'] == 'ok' for r in found.values())
    assert found['.']['sparse'] == ['.datalad', CODE, SUBJECT]
    assert found[DERIVED]['sparse'] == ['.datalad', 'code',
                                        'inputs/bpod/sub-01']
    assert found[f'{DERIVED}/inputs/bpod']['sparse'] == ['.datalad',
                                                         'sub-01']
    assert 'sparse' not in found[CODE]
    assert cone(wt / DERIVED) == ['.datalad', 'code', 'inputs/bpod/sub-01']
    with pytest.raises(subprocess.CalledProcessError):
        git(wt / CODE, 'sparse-checkout', 'list')
    # what the job needs is there, annexed content readable at once
    assert (wt / SUBJECT / 'trials.tsv').read_text().startswith('bpod')
    assert (wt / CODE / 'process.py').is_file()
    assert (wt / 'README.md').is_file()
    assert (wt / DERIVED / '.datalad' / 'config').is_file()
    # modification times came along, also through the sparse datasets
    for rel in (f'{DERIVED}/.gitmodules', f'{SUBJECT}/trials.tsv'):
        assert os.lstat(wt / rel).st_mtime_ns == \
            os.lstat(origin / rel).st_mtime_ns
    # nothing else is
    assert not (wt / f'{DERIVED}/inputs/bpod/sub-02').exists()
    assert not (wt / f'{DERIVED}/results').exists()
    assert not (wt / 'raw').exists()
    for rel in found:
        assert git(wt / rel, 'status', '--porcelain') == ''
    # the main worktrees are as they were, also their sparse state
    for ds, state in snapshot(origin).items():
        assert (state['head'], state['status']) == \
            (before[ds]['head'], before[ds]['status'])
    with pytest.raises(subprocess.CalledProcessError):
        git(origin / DERIVED, 'sparse-checkout', 'list')


@pytest.mark.slow
def test_job_results_come_home_and_the_job_goes(origin, tmp_path):
    wt, _ = job_worktree(origin, tmp_path, SUBJECT, CODE)
    out = datalad_cli(
        'run', '--explicit', '-m', 'job 1', '-i', 'inputs/bpod/sub-01',
        '-o', 'results/job-1.txt',
        f'{sys.executable} code/process.py inputs/bpod/sub-01/trials.tsv '
        'results/job-1.txt', cwd=wt / DERIVED)
    assert out.returncode == 0, out.stderr
    # only the output was saved: nothing outside the cone counts as deleted
    assert git(wt / DERIVED, 'show', '--name-status', '--format=',
               'HEAD') == 'A\tresults/job-1.txt'
    listed = dl.worktree_list(dataset=origin, recursive=True,
                              **quiet())
    mine = {r['relpath']: r for r in listed if r['worktree_root'] == str(wt)}
    assert mine[DERIVED]['sparse'] == ['.datalad', 'code',
                                       'inputs/bpod/sub-01']
    assert mine[CODE]['sparse'] is None
    merged = dl.worktree_merge(str(wt), dataset=origin, recursive=True,
                               **quiet())
    assert all(r['status'] in ('ok', 'notneeded') for r in merged), merged
    result = origin / DERIVED / 'results' / 'job-1.txt'
    assert 'trials.tsv: 2 lines' in result.read_text()
    # main keeps everything the job did not check out
    assert (origin / DERIVED / 'results' / 'summary.txt').read_text()
    assert (origin / 'raw/2p/sub-01/F.csv').is_file()
    assert git(origin, 'status', '--porcelain',
               '--ignore-submodules=none') == ''
    removed = dl.worktree_remove(str(wt), dataset=origin, **quiet())
    assert all(r['status'] == 'ok' for r in removed), removed
    assert not wt.exists()
    assert 'job-1' not in git(origin / DERIVED, 'branch', '--list')


@pytest.mark.parametrize('path, says', [
    ('../outside', 'not a normalized path'),
    ('/etc', 'not a relative path'),
    ('.', 'the whole dataset'),
    ('derived/.git/x', "'.git' component"),
    ('README.md', 'is a file'),
    (f'{SUBJECT}/trials.tsv', 'is a file'),
    (f'{DERIVED}/containers/images', 'not installed'),
])
def test_unusable_sparse_paths_are_refused(origin, tmp_path, path, says):
    before = snapshot(origin)
    wt = tmp_path / 'job'
    res = add(origin, wt, branch='job', recursive=True,
              sparse=[CODE, path])
    assert res and all(r['status'] == 'impossible' for r in res), res
    assert says in ' | '.join(r['message'] for r in res)
    assert snapshot(origin) == before
    assert not wt.exists()


def test_option_like_sparse_path_is_only_a_directory_name(origin, tmp_path):
    wt, found = job_worktree(origin, tmp_path, '--upload-pack=x', '-f')
    assert found['.']['sparse'] == ['--upload-pack=x', '-f', '.datalad']
    assert (wt / 'README.md').is_file()
    assert sorted(found) == ['.']


def test_rerun_is_notneeded_and_another_cone_is_refused(origin, tmp_path):
    wt, _ = job_worktree(origin, tmp_path, CODE)
    again = add(origin, wt, branch='job-1', recursive=True, sparse=[CODE])
    assert again and all(r['status'] == 'notneeded' for r in again), again
    before = snapshot(origin)
    other = add(origin, wt, branch='job-1', recursive=True, sparse=[SUBJECT])
    assert any(r['status'] == 'impossible' and 'not sparse to' in
               r['message'] for r in other), other
    assert snapshot(origin) == before
    assert cone(wt) == ['.datalad', CODE]


def test_sync_keeps_a_sparse_worktree_sparse(origin, tmp_path):
    wt, _ = job_worktree(origin, tmp_path, CODE)
    derived = origin / DERIVED
    commit_file(derived / 'code', 'new.py', 'print(1)\n', 'new code')
    commit_file(derived, 'notes/outside.txt', 'x\n', 'outside the cone')
    dl.save(dataset=origin, recursive=True, message='record',
            result_renderer='disabled')
    synced = dl.worktree_sync(dataset=wt, recursive=True, **quiet())
    assert all(r['status'] in ('ok', 'notneeded') for r in synced), synced
    assert (wt / CODE / 'new.py').is_file()
    assert git(wt / DERIVED, 'rev-parse', 'HEAD') == \
        git(derived, 'rev-parse', 'HEAD')
    assert not (wt / DERIVED / 'notes').exists()
    assert cone(wt / DERIVED) == ['.datalad', 'code']
    # subdatasets outside the cone got no worktree
    for rel in ('raw/bpod', 'raw/2p', f'{DERIVED}/inputs/bpod'):
        assert str(wt) not in git(origin / rel, 'worktree', 'list')
    assert not (wt / 'raw').exists()


def test_get_refuses_a_subdataset_outside_the_cone(origin, tmp_path):
    wt, _ = job_worktree(origin, tmp_path, CODE)
    before = snapshot(origin)
    res = dl.worktree_get(str(wt / 'raw/bpod'), dataset=wt, **quiet())
    assert any(r['status'] == 'impossible' and 'outside the sparse '
               'checkout' in r['message'] for r in res), res
    assert snapshot(origin) == before
    assert not (wt / 'raw/bpod').exists()


def test_pointer_check_covers_only_the_cone(tmp_path):
    repo = tmp_path / 'repo'
    repo.mkdir()
    git(repo, 'init', '-q')
    commit_file(repo, 'data/big.dat',
                '/annex/objects/SHA256E-s5--0123abc.dat\n', 'pointer')
    commit_file(repo, 'code/run.py', 'print(1)\n', 'code')
    commit_file(repo, 'top.txt', 'top\n', 'top')
    assert may_hold_unlocked_files(repo, 'HEAD')
    assert may_hold_unlocked_files(repo, 'HEAD', cone=('data',))
    assert not may_hold_unlocked_files(repo, 'HEAD', cone=('code',))
    # files directly in a directory on the way count
    commit_file(repo, 'code/sub/x.txt', 'x\n', 'deeper')
    commit_file(repo, 'code/ptr', '/annex/objects/SHA256E-s1--ab\n', 'ptr')
    assert may_hold_unlocked_files(repo, 'HEAD', cone=('code/sub',))


def save_whole_dataset(worktree):
    """What a ``datalad save`` without paths does in a sparse worktree:
    it commits the files left out as deleted (datalad/datalad#7815)"""
    (worktree / 'results').mkdir(exist_ok=True)
    (worktree / 'results' / 'mine.txt').write_text('mine\n')
    dl.save(dataset=worktree, message='save everything',
            result_renderer='disabled')
    deleted = git(worktree, 'show', '--diff-filter=D', '--name-only',
                  '--format=', 'HEAD')
    assert 'results/summary.txt' in deleted


def test_merge_keeps_what_a_sparse_save_deleted(origin, tmp_path):
    """The deletions are undone by a commit on top of the source's, and
    the job's own change arrives (the hierarchy of the fixtures: the
    subdatasets outside the cone stay as they are)"""
    wt, _ = job_worktree(origin, tmp_path, CODE)
    save_whole_dataset(wt / DERIVED)
    derived = origin / DERIVED
    files = git(derived, 'ls-tree', '-r', 'HEAD')
    res = dl.worktree_merge(str(wt), dataset=origin, recursive=True,
                            **quiet())
    assert res and all(r['status'] in ('ok', 'notneeded') for r in res), res
    mine = by_path(res, origin)[DERIVED]
    assert 'kept the files outside the sparse checkout' in mine['message']
    assert (derived / 'results' / 'mine.txt').read_text() == 'mine\n'
    assert (derived / 'results' / 'summary.txt').is_symlink()
    assert 'inputs/bpod/sub-01/trials.tsv: 2 lines' in \
        (derived / 'results' / 'summary.txt').read_text()
    assert set(files.splitlines()) <= set(
        git(derived, 'ls-tree', '-r', 'HEAD').splitlines())
    assert git(derived, 'log', '-1', '--format=%s') == \
        "Restore files outside the sparse job's checkout"
    assert git(origin, 'status', '--porcelain',
               '--ignore-submodules=none') == ''
    removed = dl.worktree_remove(str(wt), dataset=origin, **quiet())
    assert removed and all(r['status'] == 'ok' for r in removed), removed


def test_among_many_sources_the_deleting_one_merges_too(origin, tmp_path):
    bad, _ = job_worktree(origin, tmp_path, CODE, name='job-bad')
    save_whole_dataset(bad / DERIVED)
    good, _ = job_worktree(origin, tmp_path, CODE, f'{DERIVED}/results',
                           name='job-good')
    commit_file(good / DERIVED, 'results/good.txt', 'good\n', 'good job')
    res = dl.worktree_merge(['job-*'], dataset=origin, recursive=True,
                            **quiet())
    assert res and all(r['status'] in ('ok', 'notneeded') for r in res), res
    mine = [r for r in res if r['path'] == str(origin / DERIVED)]
    assert mine[-1]['sources'] == ['branch job-bad', 'branch job-good']
    assert 'branch job-bad: ' in mine[-1]['message']
    assert (origin / DERIVED / 'results' / 'good.txt').read_text() == \
        'good\n'
    assert (origin / DERIVED / 'results' / 'mine.txt').read_text() == \
        'mine\n'
    assert (origin / DERIVED / 'results' / 'summary.txt').is_symlink()
    assert git(origin, 'status', '--porcelain',
               '--ignore-submodules=none') == ''
