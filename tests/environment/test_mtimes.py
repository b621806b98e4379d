"""Modification times follow file content: real make, git, git-annex, DataLad

A small make pipeline in derived/L5b: results/x.txt (annexed) is made from
code/count.py, results/y.txt (in git) from code/fmt.py; code/ is a
subdataset of its own, the inputs are annexed files of two more.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from datalad import api as dl

from tests.helpers import (
    CODE,
    DERIVED,
    add,
    by_path,
    commit_file,
    datalad_cli,
    datasets_of,
    git,
)

MAKE = '/usr/bin/make'
ATTRS = '.gitattributes'
"""A file in git in every dataset (README.md is annexed: a symbolic link)"""
OLD = 1_000_000_000 * 10**9
"""A modification time (2001, in ns) that no checkout gives a file"""

COUNT_PY = """\
import sys
from pathlib import Path
print(len(Path(sys.argv[1]).read_text().splitlines()), 'lines')
"""

FMT_PY = """\
import sys
from pathlib import Path
print(Path(sys.argv[1]).read_text().upper(), end='')
"""

MAKEFILE = f"""\
PY = {sys.executable}

all: results/x.txt results/y.txt

results/x.txt: code/count.py inputs/bpod/sub-01/trials.tsv
\trm -f $@
\t$(PY) code/count.py inputs/bpod/sub-01/trials.tsv > $@

results/y.txt: code/fmt.py inputs/2p/sub-01/F.csv
\trm -f $@
\t$(PY) code/fmt.py inputs/2p/sub-01/F.csv > $@
"""


def make(where: Path, *args: str) -> int:
    """Run the real make in ``where``; its exit code (-q: 0 = up to date)"""
    return subprocess.run([MAKE, *args], cwd=where, capture_output=True
                          ).returncode


def mtime(path: Path) -> int:
    """The modification time of ``path`` itself (not a link's target)"""
    return os.lstat(path).st_mtime_ns


def save(top: Path, message: str) -> None:
    dl.save(dataset=top, recursive=True, message=message,
            result_renderer='disabled')


def stat_clean(top: Path) -> bool:
    """Whether git's stat cache matches every tracked file of every
    dataset below ``top`` (what plumbing such as diff-files relies on)"""
    return all(git(ds, 'diff-files', '--name-only',
                   '--ignore-submodules=all') == ''
               for ds in datasets_of(top))


def annex_objects(top: Path) -> dict[str, int]:
    """Modification time of every annexed object in the hierarchy"""
    found = {}
    for dirpath, _, files in os.walk(top):
        if f'{os.sep}.git{os.sep}annex{os.sep}objects' in dirpath:
            for f in files:
                found[os.path.join(dirpath, f)] = \
                    os.stat(os.path.join(dirpath, f)).st_mtime_ns
    return found


def merge(origin, source, **kw):
    return by_path(dl.worktree_merge(str(source), dataset=origin,
                                     on_failure='ignore',
                                     result_renderer='disabled',
                                     return_type='list', **kw), origin)


def sync(wt, **kw):
    return by_path(dl.worktree_sync(dataset=wt, on_failure='ignore',
                                    result_renderer='disabled',
                                    return_type='list', **kw), wt)


@pytest.fixture
def pipeline(origin):
    """The origin with the pipeline committed, run once, outputs saved"""
    code = origin / CODE
    (code / 'count.py').write_text(COUNT_PY)
    (code / 'fmt.py').write_text(FMT_PY)
    git(code, 'add', 'count.py', 'fmt.py')
    git(code, 'commit', '-q', '-m', 'pipeline code')
    derived = origin / DERIVED
    (derived / 'Makefile').write_text(MAKEFILE)
    with open(derived / '.gitattributes', 'a') as f:
        f.write('Makefile annex.largefiles=nothing\n'
                'results/y.txt annex.largefiles=nothing\n')
    assert make(derived) == 0
    save(origin, 'run the pipeline')
    assert (derived / 'results/x.txt').is_symlink()
    assert git(derived, 'cat-file', '-p', 'HEAD:results/y.txt') == \
        (derived / 'results/y.txt').read_text().strip()
    assert make(derived, '-q') == 0
    return origin


def test_new_worktree_is_up_to_date_for_make(pipeline, tmp_path):
    wt = tmp_path / 'runs'
    res = add(pipeline, wt, branch='runs', recursive=True)
    assert all(r['status'] in ('ok', 'notneeded') for r in res)
    assert make(wt / DERIVED, '-q') == 0
    for rel in ('code/count.py', 'code/fmt.py', 'Makefile',
                'results/y.txt', 'results/x.txt'):
        assert mtime(wt / DERIVED / rel) == mtime(pipeline / DERIVED / rel)
    # git's stat cache was refreshed: nothing looks modified
    assert stat_clean(wt)
    # and make really works there
    (wt / CODE / 'fmt.py').write_text(FMT_PY + '# changed\n')
    assert make(wt / DERIVED, '-q') == 1


@pytest.mark.slow
def test_merged_results_are_up_to_date_for_make(pipeline, tmp_path):
    wt = tmp_path / 'runs'
    add(pipeline, wt, branch='runs', recursive=True)
    y_blob = git(pipeline / DERIVED, 'rev-parse', 'HEAD:results/y.txt')
    # a batch: count.py changes its output, fmt.py only gets a comment,
    # so make reruns both, and y.txt comes out byte for byte the same
    (wt / CODE / 'count.py').write_text(COUNT_PY.replace("'lines'",
                                                         "'rows'"))
    (wt / CODE / 'fmt.py').write_text('# same output\n' + FMT_PY)
    time.sleep(0.05)
    assert make(wt / DERIVED) == 0
    assert (wt / DERIVED / 'results/x.txt').read_text() == '2 rows\n'
    save(wt, 'batch')
    assert make(wt / DERIVED, '-q') == 0
    res = merge(pipeline, wt, recursive=True)
    assert res[DERIVED]['status'] == 'ok', res[DERIVED]
    assert res[CODE]['status'] == 'ok', res[CODE]
    assert (pipeline / DERIVED / 'results/x.txt').read_text() == '2 rows\n'
    assert make(pipeline / DERIVED, '-q') == 0
    # the identical output was not changed by the merge, but has the time
    # of the rerun now, newer than the merged fmt.py
    assert git(pipeline / DERIVED, 'rev-parse', 'HEAD:results/y.txt') == \
        y_blob
    assert mtime(pipeline / DERIVED / 'results/y.txt') == \
        mtime(wt / DERIVED / 'results/y.txt')
    assert mtime(pipeline / CODE / 'fmt.py') == mtime(wt / CODE / 'fmt.py')
    assert stat_clean(pipeline)
    # nothing new: still up to date, and nothing to merge
    again = merge(pipeline, wt, recursive=True)
    assert {r['status'] for r in again.values()} == {'notneeded'}
    assert make(pipeline / DERIVED, '-q') == 0


@pytest.mark.slow
def test_merge_by_branch_name_uses_its_worktree(pipeline, tmp_path):
    wt = tmp_path / 'runs'
    add(pipeline, wt, branch='runs', recursive=True)
    (wt / CODE / 'fmt.py').write_text('# same output\n' + FMT_PY)
    time.sleep(0.05)
    assert make(wt / DERIVED) == 0
    save(wt, 'batch')
    res = merge(pipeline, 'runs', recursive=True)
    assert res[CODE]['status'] == 'ok'
    assert make(pipeline / DERIVED, '-q') == 0
    assert mtime(pipeline / CODE / 'fmt.py') == mtime(wt / CODE / 'fmt.py')


def test_differing_content_keeps_its_checkout_time(origin, tmp_path):
    code = origin / CODE
    # uncommitted change in the origin
    (code / 'process.py').write_text('# not committed\n')
    # a commit of the code subdataset that its parent does not record:
    # same name, other content than the new worktree checks out
    commit_file(code, '.gitignore', '.venv/\n*.log\n', 'ignore logs')
    # a staged change
    with open(origin / ATTRS, 'a') as f:
        f.write('# staged\n')
    git(origin, 'add', ATTRS)
    for rel in (f'{CODE}/process.py', f'{CODE}/.gitignore', ATTRS,
                f'{DERIVED}/.gitattributes'):
        os.utime(origin / rel, ns=(OLD, OLD))
    before = time.time_ns()
    wt = tmp_path / 'runs'
    add(origin, wt, branch='runs', recursive=True)
    for rel in (f'{CODE}/process.py', f'{CODE}/.gitignore', ATTRS):
        assert mtime(wt / rel) >= before - 10**9, rel
    assert (wt / CODE / '.gitignore').read_text() == '.venv/\n'
    # the same content does lend its time
    assert mtime(wt / DERIVED / '.gitattributes') == OLD
    assert stat_clean(wt)


@pytest.mark.slow
def test_annexed_objects_and_unlocked_files_are_left_alone(origin, tmp_path):
    derived = origin / DERIVED
    # an unlocked annexed file, committed as such
    git(derived, 'annex', 'unlock', 'results/summary.txt')
    git(derived, 'add', 'results/summary.txt')
    git(derived, 'commit', '-q', '-m', 'unlock the summary')
    save(origin, 'unlocked summary')
    unlocked = derived / 'results/summary.txt'
    assert not unlocked.is_symlink()
    assert git(derived, 'cat-file', '-p',
               'HEAD:results/summary.txt').startswith('/annex/objects/')
    os.utime(unlocked, ns=(OLD, OLD))
    git(derived, 'update-index', '-q', '--refresh')  # stat-clean again
    # a locked one: the link gets a time of its own, unlike its object
    link = origin / 'raw/bpod/sub-01/trials.tsv'
    assert link.is_symlink()
    os.utime(link, ns=(OLD, OLD), follow_symlinks=False)
    objects = annex_objects(origin)
    assert objects and os.stat(link).st_mtime_ns != OLD

    wt = tmp_path / 'runs'
    add(origin, wt, branch='runs', recursive=True)
    assert mtime(wt / 'raw/bpod/sub-01/trials.tsv') == OLD
    assert mtime(wt / DERIVED / 'results/summary.txt') != OLD
    assert annex_objects(origin) == objects

    # a batch in the worktree makes a new object; merging it back changes
    # no object either
    out = wt / DERIVED / 'results/again.txt'
    dl.Dataset(wt / DERIVED).run(
        f'{sys.executable} -c "open(\'results/again.txt\', \'w\')'
        '.write(\'again\\n\')"', outputs=['results/again.txt'],
        result_renderer='disabled')
    save(wt, 'batch')
    assert out.is_symlink()
    objects = annex_objects(origin)
    merged = merge(origin, wt, recursive=True)
    assert merged[DERIVED]['status'] == 'ok'
    assert annex_objects(origin) == objects
    assert mtime(derived / 'results/again.txt') == mtime(out)
    assert mtime(derived / 'results/summary.txt') == OLD


@pytest.mark.slow
def test_no_mtimes_gives_checkout_times(pipeline, tmp_path):
    os.utime(pipeline / ATTRS, ns=(OLD, OLD))
    wt = tmp_path / 'runs'
    add(pipeline, wt, branch='runs', recursive=True, mtimes=False)
    assert mtime(wt / ATTRS) != OLD
    assert make(wt / DERIVED, '-q') == 1
    # merging back without them: the merged code is newer than the output
    # make produced in the worktree
    (wt / CODE / 'count.py').write_text(COUNT_PY.replace("'lines'",
                                                         "'rows'"))
    assert make(wt / DERIVED) == 0
    save(wt, 'batch')
    time.sleep(0.05)
    merge(pipeline, wt, recursive=True, mtimes=False)
    assert mtime(pipeline / CODE / 'count.py') != \
        mtime(wt / CODE / 'count.py')
    assert make(pipeline / DERIVED, '-q') == 1
    # and the command line option
    cli = tmp_path / 'cli'
    out = datalad_cli('worktree-add', '--no-mtimes', '-d', str(pipeline),
                      str(cli))
    assert out.returncode == 0, out.stderr
    assert mtime(cli / ATTRS) != OLD


def test_snakemake_timestamps_travel_with_their_directory(origin, tmp_path):
    # a tracked marker whose origin copy differs is never overwritten
    commit_file(origin / CODE, '.snakemake_timestamp', 'committed\n',
                'a tracked marker')
    save(origin, 'record the marker')
    (origin / CODE / '.snakemake_timestamp').write_text('changed here\n')
    derived = origin / DERIVED
    marker = derived / 'results/.snakemake_timestamp'
    marker.write_text('')
    os.utime(marker, ns=(OLD, OLD))
    # a directory that git does not have: nothing of it travels
    (derived / 'scratch').mkdir()
    (derived / 'scratch/.snakemake_timestamp').write_text('')
    wt = tmp_path / 'runs'
    add(origin, wt, branch='runs', recursive=True)
    copy = wt / DERIVED / 'results/.snakemake_timestamp'
    assert copy.is_file() and mtime(copy) == OLD
    assert not (wt / DERIVED / 'scratch').exists()
    assert (wt / CODE / '.snakemake_timestamp').read_text() == 'committed\n'
    # it stays untracked there, as in the origin
    assert git(wt / DERIVED, 'status', '--porcelain', '--ignored',
               'results') == '?? results/.snakemake_timestamp'


@pytest.mark.slow
def test_sync_carries_times_into_the_worktree(pipeline, tmp_path):
    wt = tmp_path / 'runs'
    add(pipeline, wt, branch='runs', recursive=True)
    # development in the main worktree: new code, rerun, saved
    (pipeline / CODE / 'count.py').write_text(
        COUNT_PY.replace("'lines'", "'rows'"))
    time.sleep(0.05)
    assert make(pipeline / DERIVED) == 0
    save(pipeline, 'new counting')
    # and a file with the same content, rewritten
    (pipeline / ATTRS).write_text((pipeline / ATTRS).read_text())
    os.utime(pipeline / ATTRS, ns=(OLD, OLD))
    res = sync(wt, recursive=True)
    assert res[CODE]['status'] == 'ok', res[CODE]
    assert res[DERIVED]['status'] == 'ok', res[DERIVED]
    assert (wt / DERIVED / 'results/x.txt').read_text() == '2 rows\n'
    assert make(wt / DERIVED, '-q') == 0
    assert mtime(wt / CODE / 'count.py') == \
        mtime(pipeline / CODE / 'count.py')
    assert mtime(wt / ATTRS) == OLD
    assert stat_clean(wt)
    # without them, the synced code is newer than the output
    (pipeline / CODE / 'count.py').write_text(COUNT_PY)
    time.sleep(0.05)
    assert make(pipeline / DERIVED) == 0
    save(pipeline, 'old counting')
    sync(wt, recursive=True, mtimes=False)
    assert make(wt / DERIVED, '-q') == 1


def rerun_identically(wt: Path) -> None:
    """A batch in the worktree that changes nothing: fmt.py gets a new time
    there, make reruns y.txt byte for byte the same, and saving finds
    nothing to commit"""
    heads = {ds: git(ds, 'rev-parse', 'HEAD') for ds in datasets_of(wt)}
    time.sleep(0.05)
    assert make(wt / DERIVED, '-q') == 1
    assert make(wt / DERIVED) == 0
    save(wt, 'nothing new')
    assert {ds: git(ds, 'rev-parse', 'HEAD') for ds in datasets_of(wt)} == \
        heads
    assert make(wt / DERIVED, '-q') == 0


def new_code_synced(pipeline: Path, wt: Path) -> None:
    """Development in the main worktree that leaves y.txt out of date
    there (fmt.py gets a comment, committed), synced into the worktree"""
    (pipeline / CODE / 'fmt.py').write_text('# a comment\n' + FMT_PY)
    save(pipeline, 'comment fmt.py')
    assert make(pipeline / DERIVED, '-q') == 1
    res = sync(wt, recursive=True)
    assert {r['status'] for r in res.values()} <= {'ok', 'notneeded'}, res


@pytest.mark.slow
def test_identical_rerun_merged_home_is_up_to_date_for_make(pipeline,
                                                             tmp_path):
    wt = tmp_path / 'runs'
    add(pipeline, wt, branch='runs', recursive=True)
    new_code_synced(pipeline, wt)
    rerun_identically(wt)
    y = 'results/y.txt'
    res = merge(pipeline, wt, recursive=True)
    # nothing to merge anywhere, and yet the rerun's times came home
    assert {r['status'] for r in res.values()} == {'notneeded'}, res
    assert all('mtimes_withheld' not in r for r in res.values()), res
    assert mtime(pipeline / DERIVED / y) == mtime(wt / DERIVED / y)
    assert make(pipeline / DERIVED, '-q') == 0
    assert stat_clean(pipeline)
    # only newer times travel: an older one in the worktree is not taken
    os.utime(wt / ATTRS, ns=(OLD, OLD))
    before = mtime(pipeline / ATTRS)
    merge(pipeline, wt, recursive=True)
    assert mtime(pipeline / ATTRS) == before


@pytest.mark.slow
def test_no_times_where_main_moved_on_after_the_sync(pipeline, tmp_path):
    wt = tmp_path / 'runs'
    add(pipeline, wt, branch='runs', recursive=True)
    new_code_synced(pipeline, wt)
    rerun_identically(wt)
    # main changes the code again after the sync: the worktree's rerun
    # was made from other code than main has now
    (pipeline / CODE / 'fmt.py').write_text('# again\n' + FMT_PY)
    save(pipeline, 'comment fmt.py again')
    y = pipeline / DERIVED / 'results/y.txt'
    before = mtime(y)
    assert make(pipeline / DERIVED, '-q') == 1
    res = merge(pipeline, wt, recursive=True)
    assert {r['status'] for r in res.values()} == {'notneeded'}, res
    derived = res[DERIVED]
    assert derived['mtimes_withheld'] == 'other-tree', derived
    assert 'no modification times carried from' in derived['message']
    assert 'checked out' in derived['message']
    assert mtime(y) == before
    assert make(pipeline / DERIVED, '-q') == 1


@pytest.mark.slow
def test_no_times_where_a_side_has_uncommitted_changes(pipeline, tmp_path):
    wt = tmp_path / 'runs'
    add(pipeline, wt, branch='runs', recursive=True)
    new_code_synced(pipeline, wt)
    rerun_identically(wt)
    # main edits the code, not committed: the rerun was not made from it
    fmt = pipeline / CODE / 'fmt.py'
    fmt.write_text('# not committed\n' + FMT_PY)
    y = pipeline / DERIVED / 'results/y.txt'
    before = mtime(y)
    res = merge(pipeline, wt, recursive=True)
    assert {r['status'] for r in res.values()} == {'notneeded'}, res
    # the parent's output was made from the committed code, not from what
    # its subdataset holds now (which has no newer time to give)
    derived = res[DERIVED]
    assert derived['mtimes_withheld'] == 'uncommitted-changes', derived
    assert f'{pipeline / DERIVED} has uncommitted changes' in \
        derived['message']
    assert 'mtimes_withheld' not in res[CODE]
    assert mtime(y) == before
    assert make(pipeline / DERIVED, '-q') == 1
    assert fmt.read_text().startswith('# not committed')


@pytest.mark.slow
def test_sync_up_to_date_brings_main_s_newer_times(pipeline, tmp_path):
    wt = tmp_path / 'runs'
    add(pipeline, wt, branch='runs', recursive=True)
    new_code_synced(pipeline, wt)
    assert make(wt / DERIVED, '-q') == 1
    # main reruns, byte for byte the same: nothing to commit
    rerun_identically(pipeline)
    res = sync(wt, recursive=True)
    assert {r['status'] for r in res.values()} == {'notneeded'}, res
    assert make(wt / DERIVED, '-q') == 0
    assert mtime(wt / DERIVED / 'results/y.txt') == \
        mtime(pipeline / DERIVED / 'results/y.txt')
    assert stat_clean(wt)


@pytest.mark.slow
def test_several_sources_found_contained_lend_newer_times(pipeline,
                                                          tmp_path):
    one, two = tmp_path / 'runs1', tmp_path / 'runs2'
    add(pipeline, one, branch='runs1', recursive=True)
    add(pipeline, two, branch='runs2', recursive=True)
    new_code_synced(pipeline, one)
    sync(two, recursive=True)
    rerun_identically(one)
    res = merge(pipeline, 'runs*', recursive=True)
    assert {r['status'] for r in res.values()} == {'notneeded'}, res
    assert res[DERIVED]['already'] == ['branch runs1', 'branch runs2']
    y = 'results/y.txt'
    assert mtime(pipeline / DERIVED / y) == mtime(one / DERIVED / y)
    assert make(pipeline / DERIVED, '-q') == 0


@pytest.mark.slow
def test_after_a_merge_commit_only_written_files_get_times(pipeline,
                                                           tmp_path):
    wt = tmp_path / 'runs'
    add(pipeline, wt, branch='runs', recursive=True)
    derived, here = pipeline / DERIVED, wt / DERIVED
    # the worktree reruns y.txt identically and commits a new file
    (wt / CODE / 'fmt.py').touch()
    time.sleep(0.05)
    assert make(here) == 0
    commit_file(here, 'notes.txt', 'from the worktree\n', 'notes')
    # main moved on meanwhile: a parameter file of its own
    commit_file(derived, 'params.txt', 'main\n', 'params')
    y = derived / 'results/y.txt'
    before = mtime(y)
    res = merge(derived, here)
    outcome = res['.']
    assert outcome['status'] == 'ok' and outcome['how'] == 'merge', outcome
    # the merged file has the worktree's time, the rerun's output not
    assert mtime(derived / 'notes.txt') == mtime(here / 'notes.txt')
    assert mtime(y) == before
    assert outcome['mtimes_withheld'] == 'other-tree', outcome
    assert stat_clean(derived)
