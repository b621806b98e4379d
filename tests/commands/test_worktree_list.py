"""worktree-list on a real hierarchy"""

from __future__ import annotations

import json
import shutil
from types import SimpleNamespace

import pytest

from datalad import api as dl

from tests.helpers import (
    CODE,
    add,
    commit_file,
    datalad_cli,
    git,
)


def listing(origin, **kw):
    res = dl.worktree_list(dataset=origin, result_renderer='disabled',
                           return_type='list', **kw)
    return {(r['worktree_root'], r['relpath']): r for r in res}


@pytest.mark.slow
def test_list_after_add_sync_and_merge(origin, runs):
    wt = listing(origin, recursive=True)
    assert {rel for root, rel in wt if root == str(runs)} == {
        '.', 'raw/bpod', 'raw/2p', 'derived/L5b', CODE,
        'derived/L5b/inputs/bpod', 'derived/L5b/inputs/2p'}
    code = wt[(str(runs), CODE)]
    assert code['action'] == 'worktree-list' and code['status'] == 'ok'
    assert code['path'] == str(runs / CODE)
    assert code['dataset'] == str(origin / CODE)
    assert code['branch'] == 'runs'
    assert code['head'] == git(runs / CODE, 'rev-parse', 'HEAD')
    assert (code['clean'], code['ahead'], code['behind'], code['stale'],
            code['locked']) == (True, 0, 0, False, None)
    # results in the worktree: ahead, and not clean while unsaved
    commit_file(runs / CODE, 'result.txt', 'r\n', 'a result')
    (runs / CODE / 'scratch.txt').write_text('unsaved\n')
    code = listing(origin, recursive=True)[(str(runs), CODE)]
    assert (code['ahead'], code['clean']) == (1, False)
    (runs / CODE / 'scratch.txt').unlink()
    # development in the main worktree: behind, until synced
    git(origin / 'raw/bpod', 'checkout', '-q', '--detach')
    commit_file(origin / 'raw/bpod', 'new.tsv', 'n\n', 'new raw data')
    assert listing(origin, recursive=True)[(str(runs), 'raw/bpod')]['behind'] \
        == 1
    dl.worktree_sync(dataset=runs, recursive=True, result_renderer='disabled')
    assert listing(origin, recursive=True)[(str(runs), 'raw/bpod')]['behind'] \
        == 0
    # after the merge, nothing is unmerged any more
    dl.worktree_merge(str(runs), dataset=origin, recursive=True,
                      result_renderer='disabled')
    after = listing(origin, recursive=True)
    assert after[(str(runs), CODE)]['ahead'] == 0
    assert all(r['clean'] for r in after.values())


def test_stale_and_locked_worktrees(origin, tmp_path):
    gone, kept = tmp_path / 'gone', tmp_path / 'kept'
    add(origin, gone, recursive=True)
    add(origin, kept, recursive=True)
    shutil.rmtree(gone)
    git(origin / 'raw/2p', 'worktree', 'lock', '--reason', 'on a USB disk',
        str(kept / 'raw/2p'))
    wt = listing(origin, recursive=True)
    assert wt[(str(gone), '.')]['stale'] is True
    assert wt[(str(gone), '.')]['clean'] is None
    assert wt[(str(gone), 'raw/bpod')]['stale'] is True
    assert wt[(str(kept), 'raw/2p')]['locked'] == 'on a USB disk'
    assert wt[(str(kept), 'raw/bpod')]['locked'] is None


def test_not_recursive_lists_the_dataset_only(origin, runs):
    assert list(listing(origin)) == [(str(runs), '.')]


@pytest.mark.slow
def test_cli_groups_by_worktree_root(origin, runs):
    commit_file(runs / CODE, 'result.txt', 'r\n', 'a result')
    out = datalad_cli('worktree-list', '-r', cwd=origin)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    # worktree roots relative to the current directory, as DataLad shows
    assert lines[0] == '../../runs  [1 with unmerged results]'
    code = next(ln for ln in lines if ln.strip().startswith(CODE))
    assert '1 unmerged commit(s)' in code and 'runs' in code
    js = datalad_cli('-f', 'json', 'worktree-list', '-r', cwd=origin)
    assert len([json.loads(ln) for ln in js.stdout.splitlines()]) == 7
    none = datalad_cli('worktree-list', cwd=origin / 'raw/2p')
    assert '../../../runs/raw/2p' in none.stdout


def test_summary_counts_only_unmerged_results(monkeypatch):
    """A worktree whose commits only record subdataset states is not one
    'with unmerged results'; its line says what they are"""
    from datalad_worktree.commands import worktree_list
    said = []
    monkeypatch.setattr(worktree_list, 'ui',
                        SimpleNamespace(message=said.append))
    base = dict(action='worktree-list', status='ok', worktree_root='/wt',
                branch='runs', head='0' * 40, clean=True, stale=False,
                locked=None, behind=0)
    worktree_list.WorktreeList.custom_result_summary_renderer([
        dict(base, relpath='.', ahead=2, unmerged=0),
        dict(base, relpath='raw', ahead=1, unmerged=1)])
    assert said[0] == '/wt  [1 with unmerged results]'
    assert '2 commit(s) only recording subdataset states' in said[1]
    assert 'unmerged commit(s)' not in said[1]
    assert '1 unmerged commit(s)' in said[2]
