"""worktree-merge on a real hierarchy: real git, git-annex and DataLad"""

from __future__ import annotations

import json

import pytest
from datalad import api as dl

from tests.helpers import (
    CODE,
    DERIVED,
    RUN_CMD,
    by_path,
    clean,
    commit_file,
    datalad_cli,
    git,
    recorded,
    snapshot,
)

pytestmark = pytest.mark.slow


def merge(origin, source, **kw):
    kw.setdefault('on_failure', 'ignore')
    return by_path(dl.worktree_merge(str(source), dataset=origin,
                                     result_renderer='disabled',
                                     return_type='list', **kw), origin)


def batch(runs, name='again'):
    """What a batch leaves in the worktree: a code fix, a run record with an
    annexed output in derived/L5b, all saved up to the top"""
    commit_file(runs / CODE, f'{name}.py', 'print(1)\n', f'code for {name}')
    derived = dl.Dataset(runs / DERIVED)
    derived.save(path='code', message='record code', result_renderer='disabled')
    cmd = RUN_CMD.replace('results/summary.txt', f'results/{name}.txt')
    derived.run(cmd, message=f'batch {name}', outputs=[f'results/{name}.txt'],
                result_renderer='disabled')
    dl.Dataset(runs).save(path=DERIVED, message='record the batch',
                          result_renderer='disabled')
    return git(runs / DERIVED, 'rev-parse', 'HEAD')


def pointer_conflict(origin):
    """New code in the main worktree's code subdataset (on a detached HEAD,
    as jj leaves it), recorded in derived/L5b: merging a batch conflicts
    there only on the pointer of code"""
    git(origin / CODE, 'checkout', '-q', '--detach')
    commit_file(origin / CODE, 'dev.py', 'dev\n', 'development')
    git(origin / DERIVED, 'commit', '-q', '-m', 'record dev code', '--',
        'code')


def content_conflict(origin, runs):
    """notes.txt committed differently on both sides of derived/L5b, and an
    untracked scratch file in the main worktree"""
    commit_file(runs / DERIVED, 'notes.txt', 'runs notes\n', 'notes in runs')
    dl.Dataset(runs).save(path=str(runs / DERIVED),
                          result_renderer='disabled')
    commit_file(origin / DERIVED, 'notes.txt', 'main notes\n', 'notes in main')
    (origin / DERIVED / 'scratch.txt').write_text('untracked scratch\n')


def assert_left_as_it_was(origin, before):
    """derived/L5b is byte for byte as in ``before`` (its snapshot): branch,
    index, files; only the merged code below shows as modified"""
    after = snapshot(origin / DERIVED)
    for state in (before, after):
        state.pop(str(origin / DERIVED / 'code'))
    assert after[str(origin / DERIVED)].pop('status') == \
        'M code\n' + before[str(origin / DERIVED)].pop('status')
    assert after == before
    assert (origin / DERIVED / 'notes.txt').read_text() == 'main notes\n'
    assert (origin / DERIVED / 'scratch.txt').read_text() == \
        'untracked scratch\n'


def test_fast_forward_brings_results_home(origin, runs):
    run_commit = batch(runs)
    res = merge(origin, runs, recursive=True)
    for rel in (CODE, DERIVED, '.'):
        assert res[rel]['status'] == 'ok', res[rel]
        assert res[rel]['how'] == 'fast-forward'
        assert res[rel]['to_commit'] == git(runs / rel, 'rev-parse', 'HEAD')
        assert res[rel]['source'] == str(runs / rel)
    assert res['raw/bpod']['status'] == 'notneeded'
    assert git(origin / DERIVED, 'rev-parse', 'HEAD') == run_commit
    # the annexed output is readable at once: the annex is shared
    out = origin / DERIVED / 'results/again.txt'
    assert 'trials.tsv: 2 lines' in out.read_text()
    assert clean(origin)
    # and the merged run record can be rerun here
    dl.Dataset(origin / DERIVED).rerun(run_commit, result_renderer='disabled')
    assert 'trials.tsv: 2 lines' in out.read_text()
    assert clean(origin)
    # merging again finds nothing new
    again = merge(origin, runs, recursive=True)
    assert {r['status'] for r in again.values()} == {'notneeded'}


def test_diverged_main_gets_merge_commits(origin, runs):
    batch(runs)
    git(origin / CODE, 'checkout', '-q', '--detach')
    dev = commit_file(origin / CODE, 'dev.py', 'dev\n', 'development')
    res = merge(origin, runs, recursive=True)
    code = res[CODE]
    assert code['how'] == 'merge' and code['detached'] is True
    assert 'on a detached HEAD' in code['message']
    merged = git(origin / CODE, 'rev-parse', 'HEAD')
    assert git(origin / CODE, 'rev-parse', 'HEAD^1') == dev
    assert (origin / CODE / 'dev.py').exists()
    assert (origin / CODE / 'again.py').exists()
    # the parent fast-forwarded and records the merged code
    assert res[DERIVED]['how'] == 'fast-forward'
    assert res[DERIVED]['recorded'] == ['code']
    assert recorded(origin / DERIVED, 'code') == merged
    assert clean(origin)


def test_conflict_only_on_subdataset_pointers_is_resolved(origin, runs):
    batch(runs)
    pointer_conflict(origin)
    res = merge(origin, runs, recursive=True, message='Bring batch home')
    merged = git(origin / CODE, 'rev-parse', 'HEAD')
    assert res[DERIVED]['status'] == 'ok'
    assert res[DERIVED]['how'] == 'merge'
    assert recorded(origin / DERIVED, 'code') == merged
    assert git(origin / DERIVED, 'log', '-1', '--format=%s') == \
        'Bring batch home'
    assert len(git(origin / DERIVED, 'rev-list', '--parents', '-n1',
                   'HEAD').split()) == 3
    assert clean(origin)


def test_content_conflict_leaves_the_dataset_exactly_as_it_was(
        origin, runs):
    batch(runs)
    content_conflict(origin, runs)
    before = snapshot(origin / DERIVED)
    before_top = snapshot(origin)
    res = merge(origin, runs, recursive=True)
    assert res[DERIVED]['status'] == 'impossible'
    assert res[DERIVED]['conflicts'] == ['notes.txt']
    assert 'conflicts in notes.txt' in res[DERIVED]['message']
    # code below was merged and stays merged, the top is not merged
    assert res[CODE]['status'] == 'ok'
    assert res['.']['status'] == 'impossible'
    assert 'not merged' in res['.']['message']
    assert_left_as_it_was(origin, before)
    assert snapshot(origin)[str(origin)] == before_top[str(origin)]


def test_changes_the_merge_would_touch_are_refused(origin, runs):
    batch(runs)
    commit_file(runs / CODE, 'process.py', 'fixed\n', 'fix in runs')
    # uncommitted edits: one of a file the merge changes, one untouched
    (origin / CODE / 'process.py').write_text('mine\n')
    (origin / CODE / '.gitignore').write_text('.venv/\nscratch/\n')
    before = snapshot(origin)
    res = merge(origin, runs, recursive=True)
    assert res[CODE]['status'] == 'impossible'
    assert 'that this would change: process.py;' in res[CODE]['message']
    assert '.gitignore' not in res[CODE]['message']
    assert snapshot(origin) == before
    assert (origin / CODE / 'process.py').read_text() == 'mine\n'


def test_untracked_file_the_merge_would_overwrite_is_refused(origin, runs):
    batch(runs)
    (origin / CODE / 'again.py').write_text('my own again.py\n')
    before = snapshot(origin)
    res = merge(origin, runs, recursive=True)
    assert res[CODE]['status'] == 'impossible'
    assert 'that git does not track: again.py' in res[CODE]['message']
    assert snapshot(origin) == before
    assert (origin / CODE / 'again.py').read_text() == 'my own again.py\n'


def test_untouched_local_work_is_kept(origin, runs):
    batch(runs)
    (origin / CODE / 'process.py').write_text('local, untouched work\n')
    res = merge(origin, runs, recursive=True)
    assert res[CODE]['status'] == 'ok'
    assert (origin / CODE / 'process.py').read_text() == \
        'local, untouched work\n'
    assert (origin / CODE / 'again.py').exists()


def test_staged_untouched_work_stays_staged_across_a_merge_commit(
        origin, runs):
    # git's own merge refuses any staged change where it makes a commit
    batch(runs)
    code = origin / CODE
    git(code, 'checkout', '-q', '--detach')
    commit_file(code, 'dev.py', 'dev\n', 'development')
    (code / 'process.py').write_text('staged, untouched work\n')
    git(code, 'add', 'process.py')
    (code / 'process.py').write_text('and more on top\n')
    staged = git(code, 'diff', '--cached')
    res = merge(origin, runs, recursive=True)
    assert res[CODE]['status'] == 'ok', res[CODE]['message']
    assert res[CODE]['how'] == 'merge'
    assert (code / 'again.py').exists()
    assert git(code, 'diff', '--cached') == staged
    assert git(code, 'status', '--porcelain') == 'MM process.py'
    assert (code / 'process.py').read_text() == 'and more on top\n'


def test_merge_by_branch_name(origin, runs):
    batch(runs)
    res = merge(origin, 'runs', recursive=True)
    assert res[CODE]['status'] == 'ok'
    assert res[CODE]['source'] == 'branch runs'
    assert git(origin / DERIVED, 'rev-parse', 'HEAD') == \
        git(origin / DERIVED, 'rev-parse', 'runs')
    # a dataset without such a branch has nothing to merge
    git(origin / CODE, 'branch', 'batch2', 'runs')
    res = merge(origin, 'batch2', recursive=True)
    assert res[CODE]['status'] == 'notneeded'
    assert res['raw/2p']['status'] == 'notneeded'
    assert "no branch 'batch2'" in res['raw/2p']['message']


@pytest.mark.parametrize('source, says', [
    ('elsewhere', 'is not a worktree of'),
    ('itself', 'is the dataset itself'),
    ('--upload-pack=touch /tmp/pwned', 'looks like an option'),
    ('a..b', "'a..b' is not a valid branch name; and no worktree exists"),
    ('runz', "no dataset here has a branch 'runz', and no worktree exists"),
])
def test_bad_sources_are_refused(origin, runs, tmp_path, source, says):
    batch(runs)
    if source == 'elsewhere':
        source = tmp_path / 'elsewhere'
        source.mkdir()
    elif source == 'itself':
        source = origin
    before = snapshot(origin)
    res = dl.worktree_merge(str(source), dataset=origin, on_failure='ignore',
                            result_renderer='disabled', return_type='list')
    assert [r['status'] for r in res] == ['impossible']
    assert says in res[0]['message']
    assert '--detach' not in res[0]['message']
    assert snapshot(origin) == before


def test_a_pointer_conflict_without_r_says_that_r_resolves_it(origin, runs):
    batch(runs)
    pointer_conflict(origin)
    before = snapshot(origin)
    res = dl.worktree_merge(str(runs / DERIVED), dataset=origin / DERIVED,
                            on_failure='ignore', result_renderer='disabled',
                            return_type='list')
    assert [r['status'] for r in res] == ['impossible']
    assert res[0]['conflicts'] == ['code']
    assert 'code: subdataset(s); with recursive=True' in res[0]['message']
    assert snapshot(origin) == before
    assert merge(origin, runs, recursive=True)[DERIVED]['status'] == 'ok'


def test_merging_main_into_a_worktree_is_refused(origin, runs):
    batch(runs)
    before = snapshot(origin), snapshot(runs)
    res = dl.worktree_merge(str(origin), dataset=runs, recursive=True,
                            on_failure='ignore', result_renderer='disabled',
                            return_type='list')
    assert [r['status'] for r in res] == ['impossible']
    assert 'wrong way round' in res[0]['message']
    assert f'worktree-merge -d {origin} {runs}' in res[0]['message']
    assert f'worktree-sync -d {runs}' in res[0]['message']
    assert (snapshot(origin), snapshot(runs)) == before


def test_dry_run_predicts_resolved_pointer_conflicts(origin, runs):
    batch(runs)
    pointer_conflict(origin)
    before = snapshot(origin)
    plan = merge(origin, runs, recursive=True, dry_run=True)
    assert plan[DERIVED]['status'] == 'ok'
    assert plan[DERIVED]['message'].startswith('would merge')
    assert snapshot(origin) == before
    res = merge(origin, runs, recursive=True)
    assert res[DERIVED]['status'] == 'ok' and res[DERIVED]['how'] == 'merge'


def test_ff_only_and_dry_run(origin, runs):
    batch(runs)
    git(origin / CODE, 'checkout', '-q', '--detach')
    commit_file(origin / CODE, 'dev.py', 'dev\n', 'development')
    before = snapshot(origin)
    plan = merge(origin, runs, recursive=True, dry_run=True)
    assert plan[CODE]['status'] == 'ok' and plan[CODE]['dry_run'] is True
    assert plan[CODE]['message'].startswith('would merge')
    assert plan[DERIVED]['message'].startswith('would fast-forward')
    assert snapshot(origin) == before
    res = merge(origin, runs, recursive=True, ff_only=True)
    assert res[CODE]['status'] == 'impossible'
    assert 'no fast-forward is possible' in res[CODE]['message']
    assert res[DERIVED]['status'] == 'impossible'
    assert snapshot(origin) == before


def test_uncommitted_results_in_the_worktree_are_pointed_out(origin, runs):
    batch(runs)
    (runs / CODE / 'again.py').write_text('not saved\n')
    res = merge(origin, runs, recursive=True)
    assert res[CODE]['status'] == 'ok'
    assert 'uncommitted changes, which were not merged' in \
        res[CODE]['message']


def test_cli(origin, runs):
    batch(runs)
    out = datalad_cli('-f', 'json', 'worktree-merge', '-r', str(runs),
                      cwd=origin)
    assert out.returncode == 0, out.stderr
    records = {r['path']: r for r in map(json.loads, out.stdout.splitlines())}
    assert records[str(origin / DERIVED)]['how'] == 'fast-forward'
    bad = datalad_cli('worktree-merge', str(origin / 'nope'), cwd=origin)
    assert bad.returncode != 0
    assert 'Traceback' not in bad.stdout + bad.stderr
