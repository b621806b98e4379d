"""The whole cycle on a dataset of tens of thousands of files (the
``large`` fixture: 20 000 files in git, 200 annexed): what the many-file
paths (git's bulk reads, the quick checkout at any size) give is correct.
Correctness only; the timing is the benchmark's (bench_bigtree.py)."""

from __future__ import annotations

import json
import os

import pytest
from datalad import api as dl

from tests.fixtures import LARGE_ANNEXED, LARGE_GIT_FILES
from tests.helpers import (
    add,
    clean,
    git,
    quiet,
    recorded,
    snapshot,
)

pytestmark = pytest.mark.slow

SAMPLE = 'sub-123/func/sub-123_task-t45_bold.json'
ANNEXED = 'sub-007/func/sub-007_task-t00_bold.nii.gz'


def test_add_sync_merge_list_remove_at_twenty_thousand_files(
        large, tmp_path, monkeypatch):
    data = large / 'data'
    wt = tmp_path / 'wt'
    trace = tmp_path / 'trace.json'
    old = 1_500_000_000
    os.utime(data / SAMPLE, (old, old))
    git(data, '-c', 'filter.annex.process=', 'update-index', '-q',
        '--refresh')
    monkeypatch.setenv('GIT_TRACE2_EVENT', str(trace))
    res = add(large, wt, branch='b', recursive=True)
    monkeypatch.delenv('GIT_TRACE2_EVENT')
    assert [r['status'] for r in res] == ['ok', 'ok'], res
    # the quick checkout, at 20 200 files: git-annex's hook never ran
    events = [json.loads(line) for line in trace.read_text().splitlines()]
    assert not [e for e in events if e.get('hook_name') == 'post-checkout']
    assert (wt / 'data' / '.git').is_symlink()
    assert ((wt / 'data' / '.git' / 'annex').resolve()
            == (data / '.git' / 'annex').resolve())
    files = git(wt / 'data', 'ls-files').splitlines()
    assert files == git(data, 'ls-files').splitlines()
    # and DataLad's .gitattributes, .datalad/config, .datalad/.gitattributes
    assert len(files) == LARGE_GIT_FILES + LARGE_ANNEXED + 3
    assert (wt / 'data' / SAMPLE).read_text() == (data / SAMPLE).read_text()
    assert (wt / 'data' / ANNEXED).is_symlink()
    assert (wt / 'data' / ANNEXED).read_bytes() == \
        (data / ANNEXED).read_bytes()
    # modification times carried, the index refreshed
    assert os.lstat(wt / 'data' / SAMPLE).st_mtime == old
    assert git(wt / 'data', 'status', '--porcelain') == ''
    assert clean(wt)

    listed = {r['relpath']: r for r in dl.worktree_list(
        dataset=large, recursive=True, **quiet())
        if r['worktree_root'] == str(wt)}
    assert set(listed) == {'.', 'data'}
    assert listed['data']['clean'] and listed['data']['ahead'] == 0

    before = snapshot(large)
    res = dl.worktree_sync(dataset=wt, recursive=True, **quiet())
    assert {r['status'] for r in res} <= {'ok', 'notneeded'}, res
    assert snapshot(large) == before
    assert git(wt / 'data', 'status', '--porcelain') == ''

    # a result in the worktree, merged home
    (wt / 'data' / SAMPLE).write_text('{"RepetitionTime": 2}\n')
    git(wt / 'data', 'commit', '-q', '-am', 'a result')
    dl.Dataset(wt).save(path='data', message='record', **quiet())
    res = dl.worktree_merge(str(wt), dataset=large, recursive=True,
                            **quiet())
    assert {r['status'] for r in res} <= {'ok', 'notneeded'}, res
    assert (data / SAMPLE).read_text() == '{"RepetitionTime": 2}\n'
    assert recorded(large, 'data') == git(wt / 'data', 'rev-parse', 'HEAD')
    assert (data / ANNEXED).read_bytes() == (wt / 'data' / ANNEXED
                                             ).read_bytes()
    assert clean(large)

    res = dl.worktree_remove(str(wt), dataset=large, **quiet())
    assert {r['status'] for r in res} <= {'ok', 'notneeded'}, res
    assert not wt.exists()
    assert git(data, 'worktree', 'list', '--porcelain').count('worktree ') \
        == 1
    # annexed content stays
    assert (data / ANNEXED).read_bytes().startswith(b'nifti')
    assert clean(large)
