"""worktree-remove on a real hierarchy: every refusal leaves all intact"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from datalad import api as dl

from tests.helpers import (
    CODE,
    DERIVED,
    INSTALLED,
    PARENT,
    add,
    by_path,
    commit_file,
    datalad_cli,
    git,
    quiet,
    snapshot,
)

ALL = INSTALLED


def remove(origin, path, **kw):
    kw.setdefault('on_failure', 'ignore')
    return dl.worktree_remove(path, dataset=origin, result_renderer='disabled',
                              return_type='list', **kw)


@pytest.fixture
def runs(runs):
    """conftest's 'runs' worktree, with an ignored .venv in code/"""
    (runs / CODE / '.venv').mkdir()
    (runs / CODE / '.venv/marker').write_text('an ignored environment\n')
    return runs


def branches(origin, rel):
    return git(origin / rel, 'branch', '--list', '--format=%(refname:short)')


def assert_refused_intact(res, origin, runs, before, *says):
    assert res and all(r['status'] == 'impossible' for r in res), res
    text = ' | '.join(r['message'] for r in res)
    for s in says:
        assert s in text
    assert 'nothing was removed' in text
    assert snapshot(origin) == before
    for rel in ALL:
        assert (runs / rel / '.git').exists()


@pytest.mark.slow
def test_remove_after_merge_bottom_up(origin, runs):
    commit_file(runs / CODE, 'result.txt', 'r\n', 'a result')
    dl.save(dataset=str(runs), recursive=True, message='save',
            result_renderer='disabled')
    dl.worktree_merge(str(runs), dataset=origin, recursive=True,
                      result_renderer='disabled')
    res = remove(origin, runs)
    order = [os.path.relpath(r['path'], runs) for r in res]
    assert sorted(order) == sorted(ALL)
    # every dataset's worktree goes before its parent's
    for rel, (parent, _) in PARENT.items():
        assert order.index(rel) < order.index(parent)
    assert all(r['status'] == 'ok' and r['branch_deleted'] for r in res)
    assert not runs.exists()
    for rel in ALL:
        assert 'runs' not in branches(origin, rel)
        assert git(origin / rel, 'worktree', 'list', '--porcelain').count(
            'worktree ') == 1
    # annexed content stays, readable from the main worktree
    assert 'trials.tsv' in (origin / 'derived/L5b/results/summary.txt'
                            ).read_text()
    assert (origin / CODE / 'result.txt').exists()


def test_keep_branch(origin, runs):
    commit_file(runs / CODE, 'result.txt', 'r\n', 'unmerged result')
    res = by_path(remove(origin, runs, keep_branch=True), runs)
    assert all(r['status'] == 'ok' for r in res.values())
    assert res[CODE]['branch_deleted'] is False
    assert 'kept branch runs' in res[CODE]['message']
    assert not runs.exists()
    assert git(origin / CODE, 'log', '-1', '--format=%s', 'runs') == \
        'unmerged result'


def test_unmerged_commits_refuse_and_force_gives_them_up(origin, runs):
    lost = commit_file(runs / CODE, 'result.txt', 'r\n', 'unmerged result')
    before = snapshot(origin)
    res = remove(origin, runs)
    # the advice in the caller's terms: Python arguments here, flags at a
    # shell
    assert_refused_intact(res, origin, runs, before, lost[:10],
                          '(worktree_merge()), keep the branch '
                          '(keep_branch=True), or give force=True')
    assert '--' not in ' '.join(r['message'] for r in res)
    out = datalad_cli('worktree-remove', str(runs), cwd=origin)
    assert out.returncode != 0
    assert '(datalad worktree-merge), keep the branch (--keep-branch), or ' \
        'give --force to give them up' in out.stdout, out.stdout
    assert '=True' not in out.stdout
    assert snapshot(origin) == before
    res = by_path(remove(origin, runs, force=True), runs)
    assert res[CODE]['status'] == 'ok'
    assert res[CODE]['given_up'] == [lost]
    assert 'gave up 1 commit(s)' in res[CODE]['message']
    assert 'runs' not in branches(origin, CODE)


def test_given_up_commits_are_named_with_their_subjects(origin, runs):
    lost = [commit_file(runs / CODE, f'r{i}.txt', 'r\n', f'result {i}')
            for i in range(7)]
    dry = by_path(remove(origin, runs, force=True, dry_run=True), runs)
    assert f"give up 7 commit(s): '{lost[-1][:10]} result 6'" in \
        dry[CODE]['message']
    assert 'and 2 more' in dry[CODE]['message']
    assert 'result 1' not in dry[CODE]['message']
    res = by_path(remove(origin, runs, force=True), runs)
    assert f"gave up 7 commit(s): '{lost[-1][:10]} result 6'" in \
        res[CODE]['message']


def test_every_blocker_of_every_dataset_is_reported_at_once(origin, runs):
    lost = commit_file(runs / CODE, 'result.txt', 'r\n', 'unmerged result')
    (runs / CODE / 'scratch.txt').write_text('untracked\n')
    (runs / 'raw/bpod/README').write_text('uncommitted\n')
    git(runs / 'raw/bpod', 'add', 'README')
    before = snapshot(origin)
    res = by_path(remove(origin, runs), runs)
    assert {r['status'] for r in res.values()} == {'impossible'}
    assert 'untracked files' in res[CODE]['message']
    assert f"'{lost[:10]} unmerged result'" in res[CODE]['message']
    assert 'uncommitted changes' in res['raw/bpod']['message']
    assert snapshot(origin) == before


def test_detached_worktree_with_commits_is_refused(origin, tmp_path):
    wt = tmp_path / 'snap'
    add(origin, wt, detach=True, recursive=True)
    lost = commit_file(wt / 'raw/2p', 'x.txt', 'x\n', 'detached work')
    before = snapshot(origin)
    res = remove(origin, wt)
    assert [r['status'] for r in res] == ['impossible']
    assert lost[:10] in res[0]['message']
    assert snapshot(origin) == before and (wt / 'raw/2p/x.txt').exists()


@pytest.mark.parametrize('mess, says', [
    ('modified', 'uncommitted changes in'),
    ('staged', 'uncommitted changes in'),
    ('untracked', 'untracked files in'),
])
def test_local_files_block_even_with_force(origin, runs, mess, says):
    target = runs / 'raw/bpod'
    if mess == 'untracked':
        (target / 'scratch.out').write_text('scratch\n')
    else:
        with open(target / '.gitattributes', 'a') as f:
            f.write('*.tmp annex.largefiles=nothing\n')
        if mess == 'staged':
            git(target, 'add', '.gitattributes')
    before = snapshot(origin)
    for force in (False, True):
        res = remove(origin, runs, force=force)
        assert_refused_intact(res, origin, runs, before, says,
                              str(target))


def test_ignored_files_do_not_block(origin, runs):
    assert (runs / CODE / '.venv/marker').exists()
    res = remove(origin, runs)
    assert all(r['status'] == 'ok' for r in res)
    assert not runs.exists()


def test_locked_worktree_is_refused_with_its_reason(origin, runs):
    git(origin / 'raw/2p', 'worktree', 'lock', '--reason', 'batch running',
        str(runs / 'raw/2p'))
    before = snapshot(origin)
    res = remove(origin, runs)
    assert_refused_intact(res, origin, runs, before, 'is locked',
                          'batch running', 'worktree unlock')


def test_directory_deleted_by_hand_is_pruned(origin, runs):
    """A worktree whose directory is gone may have been moved: its
    registration (which holds its HEAD and index) is not pruned before the
    user says it was deleted (--force); the refusal names the repair"""
    shutil.rmtree(runs)
    before = snapshot(origin)
    res = by_path(remove(origin, runs), runs)
    assert sorted(res) == sorted(ALL)
    assert {r['refusal'] for r in res.values()} == {'stale-registration'}
    message = res['raw/bpod']['message']
    assert 'is gone. If' in message and 'delete for good' in message
    assert f'If {runs} was moved' in message
    assert f"worktree_repair('NEWPATH', dataset='{origin}')" in message
    assert 'force=True' in message
    assert snapshot(origin) == before
    res = by_path(remove(origin, runs, force=True), runs)
    assert sorted(res) == sorted(ALL)
    assert all(r['status'] == 'ok' for r in res.values())
    assert 'already gone; pruned' in res['raw/bpod']['message']
    for rel in ALL:
        assert str(runs) not in git(origin / rel, 'worktree', 'list')


def test_a_separate_clone_with_work_of_its_own_is_never_removed(
        origin, runs, tmp_path):
    # a full clone where the worktree has a subdataset mount point, with a
    # commit that the main worktree's copy lacks (a clone holding nothing
    # of its own is deleted: tests/hierarchy/test_clones.py)
    shutil.rmtree(runs / 'derived/L5b/inputs/2p')
    git(origin / 'derived/L5b/inputs/2p', 'worktree', 'prune')
    subprocess.run(['git', 'clone', '-q', str(origin / 'raw/2p'),
                    str(runs / 'derived/L5b/inputs/2p')], check=True)
    commit_file(runs / 'derived/L5b/inputs/2p', 'notes.txt', 'mine\n',
                'work in a clone')
    before = snapshot(origin)
    res = remove(origin, runs)
    assert_refused_intact(res, origin, runs, before, 'a separate clone')
    assert (runs / 'derived/L5b/inputs/2p/.git').is_dir()


@pytest.mark.parametrize('which, says', [
    ('main', 'is the main worktree'),
    ('other', 'is not a linked worktree of'),
    ('sub-of-other', 'is not a linked worktree of'),
])
def test_paths_that_are_not_removable_worktrees(origin, runs, tmp_path,
                                                which, says):
    path = {'main': origin, 'other': tmp_path,
            'sub-of-other': runs / 'raw/bpod'}[which]
    before = snapshot(origin)
    res = remove(origin, path)
    assert [r['status'] for r in res] == ['impossible']
    assert says in res[0]['message']
    assert snapshot(origin) == before
    assert (runs / 'raw/bpod/.git').exists()


@pytest.mark.slow
def test_dry_run_and_cli(origin, runs):
    before = snapshot(origin)
    res = remove(origin, runs, dry_run=True)
    assert all(r['status'] == 'ok' and r['dry_run'] for r in res)
    assert snapshot(origin) == before and runs.exists()
    out = datalad_cli('worktree-remove', str(runs), cwd=origin)
    assert out.returncode == 0, out.stderr
    assert 'worktree-remove(ok): ../../runs (dataset) [removed, deleted ' \
        'branch runs]' in out.stdout
    assert 'worktree-remove (ok: 7)' in out.stdout
    again = datalad_cli('worktree-remove', str(runs), cwd=origin)
    assert again.returncode != 0
    assert 'is not a linked worktree of' in again.stdout
    assert 'Traceback' not in again.stderr


def jobs(origin, tmp_path, *names):
    """Worktrees of the whole hierarchy at tmp_path/jobs/NAME, on branch
    NAME"""
    made = []
    for name in names:
        wt = tmp_path / 'jobs' / name
        res = add(origin, wt, branch=name, recursive=True)
        assert {r['status'] for r in res} <= {'ok', 'notneeded'}, res
        made.append(wt)
    return made


def test_several_paths_and_a_pattern(origin, runs, tmp_path):
    a, b = jobs(origin, tmp_path, 'job-a', 'job-b')
    res = remove(origin, [str(runs), str(tmp_path / 'jobs' / 'job-*')])
    assert sorted(r['path'] for r in res) == sorted(
        str(wt / rel) if rel != '.' else str(wt)
        for wt in (runs, a, b) for rel in ALL)
    assert all(r['status'] == 'ok' for r in res), res
    for wt in (runs, a, b):
        assert not wt.exists()
    for rel in ALL:
        assert not {'runs', 'job-a', 'job-b'} & set(
            branches(origin, rel).split())
    assert git(origin, 'worktree', 'list', '--porcelain').count(
        'worktree ') == 1


def test_a_refused_worktree_is_named_and_the_others_removed(origin, tmp_path):
    a, b = jobs(origin, tmp_path, 'job-a', 'job-b')
    lost = commit_file(a / CODE, 'result.txt', 'r\n', 'unmerged result')
    res = by_path(remove(origin, str(tmp_path / 'jobs' / 'job-?')),
                  tmp_path / 'jobs')
    refused = res[f'job-a/{CODE}']
    assert refused['status'] == 'impossible'
    assert lost[:10] in refused['message']
    assert 'nothing was removed' in refused['message']
    assert all(r['status'] == 'ok' for k, r in res.items()
               if k.startswith('job-b'))
    assert not b.exists()
    assert all((a / rel / '.git').exists() for rel in ALL)
    assert git(origin / CODE, 'rev-parse', 'job-a') == lost


@pytest.mark.parametrize('paths, says', [
    (['JOBS/nope-*'], "the pattern '"),
    (['JOBS/job-a', 'ELSEWHERE'], 'is not a linked worktree of'),
    (['JOBS/job-*', 'MAIN'], 'is the main worktree'),
])
def test_bad_paths_among_several_remove_nothing(origin, tmp_path, paths,
                                                 says):
    a, = jobs(origin, tmp_path, 'job-a')
    (tmp_path / 'elsewhere').mkdir()
    paths = [p.replace('JOBS', str(tmp_path / 'jobs')).replace(
        'ELSEWHERE', str(tmp_path / 'elsewhere')).replace('MAIN', str(origin))
        for p in paths]
    before = snapshot(origin)
    res = remove(origin, paths)
    assert [r['status'] for r in res] == ['impossible']
    assert says in res[0]['message']
    assert snapshot(origin) == before
    assert all((a / rel / '.git').exists() for rel in ALL)


@pytest.mark.slow
def test_commits_that_only_record_subdatasets_do_not_block(origin, runs):
    # the main worktree's subdataset moves on; sync records it in the
    # worktree's superdataset, a commit of its own that main lacks
    commit_file(origin / 'raw/bpod', 'new.tsv', 'n\n', 'new raw data')
    dl.worktree_sync(dataset=runs, recursive=True, result_renderer='disabled')
    assert git(runs, 'log', '-1', '--format=%s') == \
        'Record the subdatasets updated by worktree-sync'
    listed = by_path(dl.worktree_list(dataset=origin, recursive=True,
                                      **quiet()), runs)
    assert (listed['.']['ahead'], listed['.']['unmerged']) == (1, 0)
    dry = remove(origin, runs, dry_run=True)
    assert all(r['status'] == 'ok' for r in dry), dry
    # a commit that changes a file counts, the record commit still not;
    # as does one that records a subdataset commit main's copy lacks
    mine = commit_file(runs, 'notes.txt', 'n\n', 'my notes')
    commit_file(runs / 'raw/2p', 'x.txt', 'x\n', 'work in 2p')
    git(runs, 'commit', '-q', '-m', 'record 2p', '--', 'raw/2p')
    recorded_2p = git(runs, 'rev-parse', 'HEAD')
    listed = by_path(dl.worktree_list(dataset=origin, recursive=True,
                                      **quiet()), runs)
    assert (listed['.']['ahead'], listed['.']['unmerged']) == (3, 2)
    assert listed['raw/2p']['unmerged'] == 1
    before = snapshot(origin)
    res = by_path(remove(origin, runs), runs)
    assert res['.']['refusal'] == 'unmerged-commits'
    assert 'has 2 commit(s)' in res['.']['message']
    assert mine[:10] in res['.']['message'] and \
        recorded_2p[:10] in res['.']['message']
    assert 'Record the subdatasets' not in res['.']['message']
    assert snapshot(origin) == before and (runs / 'notes.txt').exists()


def test_a_branch_name_removes_its_worktrees_also_where_gone(
        origin, runs, tmp_path, monkeypatch):
    # a nested part deleted by hand, and another worktree's registration
    # whose directory is gone too: only the branch's registrations go
    shutil.rmtree(runs / DERIVED)
    other = tmp_path / 'other'
    git(origin / CODE, 'worktree', 'add', '-q', '--detach', str(other))
    shutil.rmtree(other)
    monkeypatch.chdir(origin)
    assert not (origin / 'runs').exists()
    res = by_path(remove(origin, 'runs'), runs)
    assert res[CODE]['refusal'] == 'stale-registration'
    assert f'If {runs / CODE} was moved' in res[CODE]['message']
    assert 'move it back' in res[CODE]['message']
    res = by_path(remove(origin, 'runs', force=True), runs)
    assert sorted(res) == sorted(ALL)
    assert all(r['status'] == 'ok' and r['branch_deleted']
               for r in res.values()), res
    assert 'already gone; pruned' in res[CODE]['message']
    assert 'removed' in res['raw/bpod']['message']
    assert not runs.exists()
    for rel in ALL:
        assert 'runs' not in branches(origin, rel).split()
        assert str(runs) not in git(origin / rel, 'worktree', 'list')
    assert str(other) in git(origin / CODE, 'worktree', 'list')


@pytest.mark.slow
def test_a_branch_name_keeps_the_safety_rules(origin, runs, monkeypatch):
    lost = commit_file(runs / CODE, 'result.txt', 'r\n', 'unmerged result')
    monkeypatch.chdir(origin)
    before = snapshot(origin)
    res = remove(origin, 'runs')
    assert_refused_intact(res, origin, runs, before, lost[:10], 'force=True')
    assert [r['refusal'] for r in res] == ['unmerged-commits']
    # bad names: one record naming it, nothing changed
    main_branch = git(origin, 'symbolic-ref', '--short', 'HEAD')
    for name, code, says in [
            ('nope', 'no-match', "'nope' is neither a linked worktree"),
            ('-x', 'bad-branch', 'looks like an option'),
            (main_branch, 'no-match', 'only in the main worktree'),
            ('../nowhere', 'not-a-linked-worktree',
             'is not a linked worktree of')]:
        res = remove(origin, name)
        assert [(r['status'], r['refusal']) for r in res] == \
            [('impossible', code)], (name, res)
        assert says in res[0]['message'] and \
            'nothing was removed' in res[0]['message']
        assert snapshot(origin) == before
    assert all((runs / rel / '.git').exists() for rel in ALL)
    res = by_path(remove(origin, 'runs', force=True), runs)
    assert res[CODE]['given_up'] == [lost] and not runs.exists()


def test_a_path_wins_over_a_branch_of_its_name(origin, tmp_path,
                                               monkeypatch):
    feature = tmp_path / 'feature'
    git(origin, 'worktree', 'add', '-q', '--detach', str(feature))
    git(origin / 'raw/2p', 'worktree', 'add', '-q', '-b', 'feature',
        str(tmp_path / 'elsewhere'))
    monkeypatch.chdir(tmp_path)
    res = remove(origin, 'feature')
    assert [(r['path'], r['status']) for r in res] == [(str(feature), 'ok')]
    assert not feature.exists()
    assert (tmp_path / 'elsewhere' / '.git').exists()
    assert 'feature' in branches(origin, 'raw/2p').split()


def test_drop_in_a_worktree_as_the_docs_say(origin, runs):
    """troubleshooting.rst, 'Dropping annexed content in a worktree':
    DataLad refuses to drop there; git-annex drops for main too"""
    name = 'results/summary.txt'
    main_copy, here = origin / DERIVED / name, runs / DERIVED
    assert 'trials.tsv' in main_copy.read_text()
    # DataLad's own check: an AssertionError in Python, not a record
    with pytest.raises(AssertionError,
                       match='Dropping from a symlinked annex is unsupported'):
        dl.drop(str(here / name), dataset=str(here), **quiet())
    assert 'trials.tsv' in main_copy.read_text()
    out = subprocess.run(['git', 'annex', 'drop', '--', name], cwd=here,
                         capture_output=True, text=True, check=False)
    assert out.returncode == 1
    assert 'Could not verify the existence of the 1 necessary copy' in \
        out.stdout + out.stderr
    assert 'trials.tsv' in main_copy.read_text()
    git(here, 'annex', 'drop', '--force', '--', name)
    assert not main_copy.exists()
