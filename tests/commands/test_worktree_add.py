"""worktree-add on a real hierarchy: real git, git-annex and DataLad"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from datalad import api as dl
from datalad.distribution.dataset import Dataset
from datalad_next.constraints.exceptions import CommandParametrizationError

from tests.helpers import (
    DATALAD,
    INSTALLED,
    PARENT,
    RUN_CMD,
    add,
    by_path,
    clean,
    commit_file,
    datalad_cli,
    datasets_of,
    env_with_datalad,
    git,
    recorded,
    snapshot,
)


def assert_refused(results, origin, wt, before, *fragments):
    """Every result is a refusal, one says all ``fragments``, nothing changed"""
    assert results and all(r['status'] == 'impossible' for r in results), \
        results
    messages = ' | '.join(r['message'] for r in results)
    for fragment in fragments:
        assert fragment in messages
    assert snapshot(origin) == before
    assert not wt.exists() or not any(wt.iterdir())


@pytest.mark.slow
def test_recursive_add_builds_the_hierarchy(origin, tmp_path):
    wt = tmp_path / 'runs'
    res = add(origin, wt, branch='runs', recursive=True)
    found = by_path(res, wt)
    assert sorted(found) == sorted(INSTALLED + ['derived/L5b/containers'])
    for rel in INSTALLED:
        r = found[rel]
        assert r['status'] == 'ok', r
        assert r['action'] == 'worktree-add' and r['type'] == 'dataset'
        assert r['branch'] == 'runs'
        assert r['refds'] == str(origin)
        assert r['source'] == str(origin / rel)
        assert git(wt / rel, 'rev-parse', 'HEAD') == r['commit']
        assert git(wt / rel, 'symbolic-ref', 'HEAD') == 'refs/heads/runs'
        # a linked worktree of the dataset in the origin hierarchy
        assert Path(git(wt / rel, 'rev-parse', '--path-format=absolute',
                        '--git-common-dir')).parent == origin / rel
    # each subdataset is at the commit its parent records
    for rel, (parent, name) in PARENT.items():
        assert found[rel]['commit'] == recorded(wt / parent, name)
    # the uninstalled subdataset is reported and stays an empty mount point
    cont = found['derived/L5b/containers']
    assert cont['status'] == 'notneeded'
    assert 'not installed' in cont['message']
    assert (wt / 'derived/L5b/containers').is_dir()
    assert not any((wt / 'derived/L5b/containers').iterdir())
    # annexed content is readable at once, from the shared annex
    summary = wt / 'derived/L5b/results/summary.txt'
    assert summary.is_symlink()
    assert 'trials.tsv: 2 lines' in summary.read_text()
    assert (wt / 'raw/bpod/sub-01/trials.tsv').read_text().startswith('bpod')
    # also through an ephemeral clone, whose annex is a link to another's
    assert (wt / 'derived/L5b/inputs/2p/sub-01/F.csv').read_text() \
        .startswith('2p')
    # and the new hierarchy is clean for DataLad
    status = dl.status(dataset=wt, recursive=True, result_renderer='disabled',
                       return_type='list')
    assert [s for s in status if s['state'] != 'clean'] == []


def test_subdataset_follows_recorded_commit_not_its_head(origin, tmp_path):
    code = origin / 'derived/L5b/code'
    rec = recorded(origin / 'derived/L5b', 'code')
    (code / 'new.py').write_text('print("dev")\n')
    git(code, 'add', 'new.py')
    git(code, 'commit', '-m', 'unsaved in the parent')
    assert git(code, 'rev-parse', 'HEAD') != rec
    wt = tmp_path / 'runs'
    res = by_path(add(origin, wt, recursive=True), wt)
    assert res['derived/L5b/code']['commit'] == rec
    assert git(wt / 'derived/L5b/code', 'rev-parse', 'HEAD') == rec
    assert not (wt / 'derived/L5b/code/new.py').exists()


@pytest.mark.slow
def test_run_save_rerun_work_in_the_worktree(origin, runs):
    wt = runs  # conftest's: worktree-add -r --branch runs, restored
    derived = Dataset(wt / 'derived/L5b')
    # plain-git subdataset: save works
    (wt / 'derived/L5b/code/extra.py').write_text('x = 1\n')
    derived.save(path='code', recursive=True, message='more code',
                 result_renderer='disabled')
    assert git(wt / 'derived/L5b/code', 'status', '--porcelain') == ''
    # a new run with an annexed output, in the worktree
    cmd = RUN_CMD.replace('results/summary.txt', 'results/again.txt')
    derived.run(cmd, message='again', outputs=['results/again.txt'],
                result_renderer='disabled')
    again = wt / 'derived/L5b/results/again.txt'
    assert again.is_symlink()
    key = os.readlink(again).rsplit('/', 1)[-1]
    # the content landed in the shared annex of the origin dataset
    objects = origin / 'derived/L5b/.git/annex/objects'
    assert any(p.name == key for p in objects.rglob(key))
    # rerun of the run record made in the origin works here
    first = git(wt / 'derived/L5b', 'log', '--format=%H', '--grep',
                'summarize inputs')
    derived.rerun(first, result_renderer='disabled')
    assert 'trials.tsv' in (wt / 'derived/L5b/results/summary.txt').read_text()
    status = dl.status(dataset=wt / 'derived/L5b', recursive=True,
                       result_renderer='disabled', return_type='list')
    assert [s for s in status if s['state'] != 'clean'] == []


def test_default_branch_is_named_after_path(origin, tmp_path):
    wt = tmp_path / 'batch1'
    res = add(origin, wt, recursive=True)
    assert {r['branch'] for r in res if r['status'] == 'ok'} == {'batch1'}
    assert git(wt / 'raw/2p', 'symbolic-ref', 'HEAD') == 'refs/heads/batch1'


def test_detach(origin, tmp_path):
    wt = tmp_path / 'detached'
    res = add(origin, wt, detach=True, recursive=True)
    ok = [r for r in res if r['status'] == 'ok']
    assert len(ok) == len(INSTALLED)
    assert all(r['branch'] is None for r in ok)
    for ds in datasets_of(wt):
        assert subprocess.run(['git', 'symbolic-ref', '-q', 'HEAD'],
                              cwd=ds).returncode == 1
    assert 'detached' not in git(origin, 'branch', '--list', 'detached')


def test_existing_branch_at_recorded_commit_is_used(origin, tmp_path):
    code = origin / 'derived/L5b/code'
    git(code, 'branch', 'runs', recorded(origin / 'derived/L5b', 'code'))
    wt = tmp_path / 'wt'
    res = by_path(add(origin, wt, branch='runs', recursive=True), wt)
    assert res['derived/L5b/code']['status'] == 'ok'
    assert 'new branch' not in res['derived/L5b/code']['message']
    assert 'new branch' in res['derived/L5b']['message']


def test_existing_branch_elsewhere_is_refused_and_never_moved(
        origin, tmp_path):
    code = origin / 'derived/L5b/code'
    (code / 'result.py').write_text('unmerged work\n')
    git(code, 'add', 'result.py')
    git(code, 'commit', '-m', 'work on runs')
    tip = git(code, 'rev-parse', 'HEAD')
    git(code, 'branch', 'runs')
    git(code, 'reset', '--hard', 'HEAD~1')
    before = snapshot(origin)
    wt = tmp_path / 'wt'
    res = add(origin, wt, branch='runs', recursive=True)
    rec = recorded(origin / 'derived/L5b', 'code')
    assert_refused(res, origin, wt, before, "branch 'runs'", tip[:10],
                   rec[:10], str(code))
    assert git(code, 'rev-parse', 'runs') == tip


def test_branch_checked_out_elsewhere_is_refused(origin, tmp_path):
    before = snapshot(origin)
    wt = tmp_path / 'wt'
    main = git(origin, 'symbolic-ref', '--short', 'HEAD')
    res = add(origin, wt, branch=main, recursive=True)
    assert_refused(res, origin, wt, before, 'already checked out at',
                   str(origin))


@pytest.mark.parametrize('name, says', [
    ('-f', 'looks like an option'),
    ('--upload-pack=touch /tmp/pwned', 'looks like an option'),
    ('a..b', 'not a valid branch name'),
    ('with space', 'not a valid branch name'),
    ('@{-1}', 'branch name'),
])
def test_bad_branch_names_are_refused(origin, tmp_path, name, says):
    before = snapshot(origin)
    wt = tmp_path / 'wt'
    with pytest.raises(CommandParametrizationError) as e:
        add(origin, wt, branch=name, recursive=True)
    assert says in str(e.value) and repr(name) in str(e.value)
    assert snapshot(origin) == before and not wt.exists()


def test_path_named_like_an_option_makes_a_plain_worktree(origin, tmp_path):
    wt = tmp_path / '--force'
    res = add(origin, wt, branch='runs')
    assert res[0]['status'] == 'ok'
    assert git(wt, 'symbolic-ref', 'HEAD') == 'refs/heads/runs'


def test_default_branch_from_unusable_path_name(origin, tmp_path):
    before = snapshot(origin)
    wt = tmp_path / 'my runs'
    res = add(origin, wt)
    assert_refused(res, origin, wt, before, 'not a valid branch name',
                   '--branch', '--detach')


def test_branch_and_detach_together(origin, tmp_path):
    before = snapshot(origin)
    wt = tmp_path / 'wt'
    with pytest.raises(CommandParametrizationError) as e:
        add(origin, wt, branch='x', detach=True)
    assert 'either branch or detach=True' in str(e.value)
    assert snapshot(origin) == before and not wt.exists()


def test_non_empty_path_is_refused(origin, tmp_path):
    wt = tmp_path / 'wt'
    wt.mkdir()
    (wt / 'keep.txt').write_text('mine\n')
    before = snapshot(origin)
    res = add(origin, wt, recursive=True)
    assert [r['status'] for r in res] == ['impossible']
    assert 'exists and is not an empty directory' in res[0]['message']
    assert snapshot(origin) == before
    assert [p.name for p in wt.iterdir()] == ['keep.txt']


def test_empty_directory_is_accepted(origin, tmp_path):
    wt = tmp_path / 'wt'
    wt.mkdir()
    res = add(origin, wt, recursive=True)
    # the whole hierarchy was made there, not just nothing refused
    found = by_path(res, wt)
    assert sorted(found) == sorted(INSTALLED + ['derived/L5b/containers'])
    assert all(r['status'] in ('ok', 'notneeded') for r in res)
    assert sorted(rel for rel, r in found.items() if r['status'] == 'ok') \
        == sorted(INSTALLED)
    for rel in INSTALLED:
        assert git(wt / rel, 'rev-parse', '--show-toplevel') == str(wt / rel)


@pytest.mark.parametrize('where', ['inside-dataset', 'inside-subdataset',
                                   'inside-other-repo', 'file'])
def test_bad_locations_are_refused(origin, tmp_path, where):
    if where == 'inside-dataset':
        wt, says = origin / 'runs', 'is inside the dataset'
    elif where == 'inside-subdataset':
        wt, says = origin / 'derived/L5b/code/wt', 'is inside the dataset'
    elif where == 'inside-other-repo':
        other = tmp_path / 'other'
        other.mkdir()
        git(other, 'init', '-q')
        wt, says = other / 'deep/wt', 'inside the git working tree'
    else:
        wt, says = tmp_path / 'afile', 'exists and is not a directory'
        wt.write_text('x')
    before = snapshot(origin)
    res = add(origin, wt, recursive=True)
    assert [r['status'] for r in res] == ['impossible']
    assert says in res[0]['message']
    assert snapshot(origin) == before
    if where != 'file':
        assert not wt.exists()


def test_missing_recorded_commit_is_refused(origin, tmp_path):
    # the parent records a commit that the subdataset does not have
    derived = origin / 'derived/L5b'
    missing = '1234567890' * 4
    git(derived, 'update-index', '--cacheinfo',
        f'160000,{missing},code')
    git(derived, 'commit', '-m', 'record a commit that is not there')
    before = snapshot(derived)
    wt = tmp_path / 'wt'
    res = add(dl.Dataset(derived), wt, recursive=True)
    assert_refused(res, derived, wt, before, missing[:10],
                   'is not present in', str(derived / 'code'))


def test_uninitialized_annex_is_refused(origin, tmp_path):
    derived = origin / 'derived/L5b'
    sub = derived / 'inputs/bpod'
    url = git(sub, 'remote', 'get-url', 'origin')
    subprocess.run(['chmod', '-R', 'u+w', str(sub)], check=True)
    subprocess.run(['rm', '-rf', str(sub)], check=True)
    # a plain `git clone` of a DataLad dataset: git-annex not initialized
    subprocess.run(['git', 'clone', '-q', url, str(sub)], check=True)
    git(sub, 'checkout', '-q', recorded(derived, 'inputs/bpod'))
    before = snapshot(origin)
    wt = tmp_path / 'wt'
    res = add(origin, wt, recursive=True)
    assert_refused(res, origin, wt, before, 'git-annex is not initialized',
                   f"git -C {sub} annex init")


@pytest.mark.parametrize('bad, says', [
    ('../escape', 'not a normalized path'),
    ('/tmp/abs', 'not a relative path'),
    ('sub/.git/hooks', "'.git' component"),
])
def test_unsafe_gitmodules_paths_are_refused(origin, tmp_path, bad, says):
    git(origin, 'config', '-f', '.gitmodules', 'submodule.-f.path', bad)
    git(origin, 'config', '-f', '.gitmodules', 'submodule.-f.url',
        '--upload-pack=touch /tmp/pwned')
    git(origin, 'commit', '-qm', 'hostile .gitmodules', '.gitmodules')
    before = snapshot(origin)
    wt = tmp_path / 'wt'
    res = add(origin, wt, recursive=True)
    assert_refused(res, origin, wt, before, 'refusing the subdataset path',
                   repr(bad), says)
    assert not (tmp_path / 'escape').exists()


def test_symlinked_subdataset_location_is_refused(origin, tmp_path):
    # in the origin, the recorded location of a subdataset is a symlink
    raw = origin / 'raw'
    elsewhere = tmp_path / 'elsewhere'
    (raw / '2p').rename(elsewhere)
    (raw / '2p').symlink_to(elsewhere)
    wt = tmp_path / 'wt'
    res = add(origin, wt, recursive=True)
    assert [r['status'] for r in res] == ['impossible']
    assert 'symbolic link' in res[0]['message']
    assert not wt.exists()


def test_rerun_after_interruption_completes_the_hierarchy(origin, tmp_path):
    wt = tmp_path / 'wt'
    # an interrupted run: only the top and one subdataset were made
    add(origin, wt, branch='runs')
    git(origin / 'raw/bpod', 'worktree', 'add', '-q', '-b', 'runs',
        str(wt / 'raw/bpod'), recorded(origin, 'raw/bpod'))
    res = by_path(add(origin, wt, branch='runs', recursive=True), wt)
    assert res['.']['status'] == 'notneeded'
    assert res['raw/bpod']['status'] == 'notneeded'
    assert 'exists already' in res['raw/bpod']['message']
    assert res['raw/2p']['status'] == 'ok'
    assert res['derived/L5b/inputs/2p']['status'] == 'ok'
    again = add(origin, wt, branch='runs', recursive=True)
    assert {r['status'] for r in again} == {'notneeded'}


def test_rerun_keeps_worktrees_that_moved_on(origin, tmp_path):
    wt = tmp_path / 'wt'
    add(origin, wt, branch='runs', recursive=True)
    # work happened in the worktree and was saved up the hierarchy
    (wt / 'derived/L5b/code/more.py').write_text('y = 2\n')
    dl.save(dataset=wt, recursive=True, message='work in runs',
            result_renderer='disabled')
    moved = {rel: git(wt / rel, 'rev-parse', 'HEAD')
             for rel in ('.', 'derived/L5b', 'derived/L5b/code')}
    # one subdataset worktree is gone again
    shutil.rmtree(wt / 'derived/L5b/inputs/2p')
    git(origin / 'derived/L5b/inputs/2p', 'worktree', 'prune')
    (wt / 'derived/L5b/inputs/2p').mkdir()
    res = by_path(add(origin, wt, branch='runs', recursive=True), wt)
    for rel, head in moved.items():
        assert res[rel]['status'] == 'notneeded'
        assert res[rel]['commit'] == head
        assert git(wt / rel, 'rev-parse', 'HEAD') == head
    # the missing one follows what its parent's worktree records
    assert res['derived/L5b/inputs/2p']['status'] == 'ok'
    assert res['derived/L5b/inputs/2p']['commit'] == \
        recorded(wt / 'derived/L5b', 'inputs/2p')


def test_rerun_refuses_a_worktree_left_locked_by_git(origin, tmp_path):
    # git locks a worktree as 'initializing' while it checks it out; a
    # killed `git worktree add` leaves that lock and a partial checkout
    wt = tmp_path / 'wt'
    add(origin, wt, branch='runs', recursive=True)
    git(origin / 'raw/2p', 'worktree', 'lock', '--reason', 'initializing',
        str(wt / 'raw/2p'))
    before = snapshot(origin)
    res = add(origin, wt, branch='runs', recursive=True)
    assert res and all(r['status'] == 'impossible' for r in res)
    for says in ('is locked', '(initializing)', 'worktree unlock',
                 'worktree prune'):
        assert says in res[0]['message']
    assert snapshot(origin) == before
    # following the advice completes the hierarchy
    git(origin / 'raw/2p', 'worktree', 'unlock', str(wt / 'raw/2p'))
    shutil.rmtree(wt / 'raw/2p')
    git(origin / 'raw/2p', 'worktree', 'prune')
    (wt / 'raw/2p').mkdir()
    res = by_path(add(origin, wt, branch='runs', recursive=True), wt)
    assert res['raw/2p']['status'] == 'ok'
    assert (wt / 'raw/2p/sub-01/F.csv').read_text().startswith('2p')


def test_rerun_with_other_branch_is_refused(origin, tmp_path):
    wt = tmp_path / 'wt'
    add(origin, wt, branch='runs', recursive=True)
    before = snapshot(origin)
    res = add(origin, wt, branch='other', recursive=True)
    assert res and all(r['status'] == 'impossible' for r in res)
    assert 'is already a worktree of' in res[0]['message']
    assert snapshot(origin) == before


def test_recursion_limit(origin, tmp_path):
    wt = tmp_path / 'wt'
    res = by_path(add(origin, wt, recursion_limit=1), wt)
    assert sorted(res) == ['.', 'derived/L5b', 'raw/2p', 'raw/bpod']
    assert not any((wt / 'derived/L5b/code').iterdir())


def assert_parents_first(results, root):
    order = [os.path.relpath(r['path'], root) for r in results
             if r['status'] == 'ok']
    for rel, (parent, _) in PARENT.items():
        assert order.index(parent) < order.index(rel)


def test_parallel_jobs(origin, tmp_path):
    serial = add(origin, tmp_path / 'a', recursive=True)
    parallel = add(origin, tmp_path / 'b', recursive=True, jobs=2)
    assert_parents_first(serial, tmp_path / 'a')
    assert_parents_first(parallel, tmp_path / 'b')
    serial = by_path(serial, tmp_path / 'a')
    parallel = by_path(parallel, tmp_path / 'b')
    assert {k: (v['status'], v['commit']) for k, v in serial.items()} == \
        {k: (v['status'], v['commit']) for k, v in parallel.items()}
    assert (tmp_path / 'b/derived/L5b/inputs/2p/sub-01/F.csv').read_text()


def test_dry_run_creates_nothing(origin, tmp_path):
    before = snapshot(origin)
    wt = tmp_path / 'wt'
    res = by_path(add(origin, wt, recursive=True, dry_run=True), wt)
    assert res['raw/2p']['status'] == 'ok'
    assert res['raw/2p']['dry_run'] is True
    assert res['raw/2p']['message'].startswith('would create')
    assert not wt.exists()
    assert snapshot(origin) == before


def test_detached_origin_head_as_jujutsu_leaves_it(origin, tmp_path):
    # jj keeps git's HEAD detached in colocated repositories
    git(origin, 'checkout', '-q', '--detach')
    head = git(origin, 'rev-parse', 'HEAD')
    wt = tmp_path / 'wt'
    res = by_path(add(origin, wt, branch='runs', recursive=True), wt)
    assert res['.']['commit'] == head
    assert git(origin, 'rev-parse', 'runs') == head


def test_dataset_method_and_non_dataset(origin, tmp_path):
    res = Dataset(origin).worktree_add(tmp_path / 'wt', result_renderer=
                                       'disabled', return_type='list')
    assert res[0]['status'] == 'ok'
    plain = tmp_path / 'plain'
    plain.mkdir()
    with pytest.raises(CommandParametrizationError) as e:
        dl.worktree_add(tmp_path / 'x', dataset=plain)
    assert f'No installed dataset found at {plain}' in str(e.value)
    assert not (tmp_path / 'x').exists()


@pytest.mark.slow
def test_cli(origin, tmp_path):
    out = datalad_cli('worktree-add', '-r', '--branch', 'runs',
                      str(tmp_path / 'runs'), cwd=origin)
    assert out.returncode == 0, out.stderr
    # DataLad's form: paths relative to the current directory, the type,
    # nothing-to-do results only counted in the summary
    assert 'worktree-add(ok): ../../runs (dataset) [checked out new branch ' \
        'runs at' in out.stdout
    assert 'containers' not in out.stdout
    assert 'action summary:\n  worktree-add (notneeded: 1, ok: 7)' in \
        out.stdout
    # without -d, the dataset is the one at the current directory
    js = datalad_cli('-f', 'json', 'worktree-add', '-b', 'raw2p',
                     str(tmp_path / 'raw2p'), cwd=origin / 'raw/2p/sub-01')
    assert js.returncode == 0, js.stderr
    records = [json.loads(line) for line in js.stdout.splitlines()]
    assert [(r['status'], r['refds'], r['path']) for r in records] == [
        ('ok', str(origin / 'raw/2p'), str(tmp_path / 'raw2p'))]


@pytest.mark.slow
def test_cli_failure_is_a_message_not_a_traceback(origin, tmp_path):
    before = snapshot(origin)
    out = datalad_cli('worktree-add', '--branch=--upload-pack=evil',
                      str(tmp_path / 'wt'), cwd=origin)
    assert out.returncode != 0
    assert 'Traceback' not in out.stderr + out.stdout
    assert 'looks like an option' in out.stdout + out.stderr
    assert snapshot(origin) == before


@pytest.mark.slow
def test_readme_demo_runs(tmp_path):
    """The demo the README points to: a real nested dataset, made on the spot"""
    demo = Path(__file__).parents[2] / 'docs/examples/demo.sh'
    out = subprocess.run(['bash', str(demo), str(tmp_path)],
                         env=env_with_datalad(),
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert 'worktree-add (ok: 5)' in out.stdout
    assert '1,left' in out.stdout
    assert '[DATALAD RUNCMD] count trials' in out.stdout
    # the whole cycle: the new code synced into the worktree (a merge with
    # its result), the result merged home, the worktree removed
    assert 'worktree-sync(ok): code (dataset) [fast-forward' in out.stdout
    assert 'worktree-sync(ok): . (dataset) [merge' in out.stdout
    assert 'worktree-merge(ok): . (dataset) [fast-forward' in out.stdout
    assert 'worktree-remove (ok: 5)' in out.stdout
    assert out.stdout.rstrip().splitlines()[-5:-3] == [
        '1 trials', 'no linked worktrees']
    project = tmp_path / 'project'
    assert (project / 'counts.txt').read_text() == '1 trials\n'
    assert 'sum("left"' in (project / 'code/count.py').read_text()
    assert not (tmp_path / 'runs').exists()
    assert git(project, 'branch', '--list', 'runs') == ''
    assert git(project, 'status', '--porcelain') == ''


def test_missing_annex_link_is_reported_with_a_repair(origin, tmp_path):
    # git-annex is kept out of the checkout: no filter, no post-checkout hook
    raw = origin / 'raw/bpod'
    for key in ('process', 'smudge', 'clean'):
        git(raw, 'config', '--unset', f'filter.annex.{key}')
    (raw / '.git/hooks/post-checkout').unlink()
    wt = tmp_path / 'wt'
    res = by_path(add(origin, wt, recursive=True), wt)
    r = res['raw/bpod']
    assert r['status'] == 'error'
    assert 'annexed files there are not readable' in r['message']
    assert f"Run 'git annex init' in {wt / 'raw/bpod'}" in r['message']
    # the other datasets are fine, and the advice repairs it
    assert res['raw/2p']['status'] == 'ok'
    subprocess.run(['git', 'annex', 'init'], cwd=wt / 'raw/bpod', check=True,
                   capture_output=True)
    assert (wt / 'raw/bpod/sub-01/trials.tsv').read_text().startswith('bpod')


@pytest.mark.slow
def test_killed_run_converges_when_run_again(origin, tmp_path):
    """SIGKILL a real `datalad worktree-add -r` once it has made some
    worktrees; running it again completes the hierarchy (or names the one
    worktree git left locked, and how to recover), and the origin keeps
    everything it had"""
    before = snapshot(origin)
    wt = tmp_path / 'wt'
    # in a session of its own, so that its git children die with it
    proc = subprocess.Popen([DATALAD, 'worktree-add', '-r', '-b', 'runs',
                             str(wt)], cwd=origin, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 60
    while not (wt / 'raw/bpod/.git').exists() and time.time() < deadline \
            and proc.poll() is None:
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    res = add(origin, wt, branch='runs', recursive=True)
    locked = [r for r in res if 'is locked' in (r.get('message') or '')]
    for r in locked:
        # git was killed while creating this one: recover as advised
        sub = Path(r['path'])
        src = Path(r['source'])
        git(src, 'worktree', 'unlock', str(sub))
        shutil.rmtree(sub)
        git(src, 'worktree', 'prune')
        sub.mkdir()
    if locked:
        res = add(origin, wt, branch='runs', recursive=True)
    assert all(r['status'] in ('ok', 'notneeded') for r in res), res
    # the kill came in time: the rerun had work left to do
    assert any(r['status'] == 'ok' for r in res)
    for rel, (parent, name) in PARENT.items():
        assert git(wt / rel, 'rev-parse', 'HEAD') == recorded(wt / parent,
                                                              name)
    assert clean(wt)
    # the origin lost nothing: only the new branch and worktrees were added
    after = snapshot(origin)
    for ds, state in before.items():
        assert after[ds]['head'] == state['head']
        assert after[ds]['status'] == state['status']
        assert set(state['refs'].splitlines()) <= \
            set(after[ds]['refs'].splitlines()) | {
                line for line in state['refs'].splitlines()
                if line.startswith('refs/annex/')}


@pytest.mark.slow
def test_a_worktree_deleted_by_hand_is_cleared_by_the_advice(origin,
                                                             tmp_path):
    wt = tmp_path / 'wt'
    add(origin, wt, branch='runs', recursive=True)
    shutil.rmtree(wt)
    before = snapshot(origin)
    res = add(origin, wt, branch='runs', recursive=True)
    assert res and all(r['status'] == 'impossible' for r in res)
    # the advice, in Python terms, and what it says works
    advice = (f'worktree_remove({str(wt)!r}, dataset={str(origin)!r}, '
              'force=True)')
    assert advice in res[0]['message']
    assert f"worktree_repair('NEWPATH', dataset={str(origin)!r})" in \
        res[0]['message']
    assert 'keep_branch=True keeps its branches' in res[0]['message']
    assert snapshot(origin) == before
    done = dl.worktree_remove(str(wt), dataset=str(origin), force=True,
                              result_renderer='disabled', return_type='list')
    assert {r['status'] for r in done} == {'ok'}, done
    res = by_path(add(origin, wt, branch='runs', recursive=True), wt)
    assert {r['status'] for r in res.values()} <= {'ok', 'notneeded'}
    assert (wt / 'raw/2p/sub-01/F.csv').read_text().startswith('2p')


def test_forgotten_r_is_pointed_out(origin, tmp_path):
    wt = tmp_path / 'wt'
    res = add(origin, wt, branch='runs')
    assert [r['status'] for r in res] == ['ok']
    assert "its 3 installed subdataset(s) (raw/bpod, raw/2p, derived/L5b) " \
        'are left out as empty directories: give recursive=True' in \
        res[0]['message']
    res = by_path(add(origin, wt, branch='runs', recursive=True), wt)
    assert res['.']['status'] == 'notneeded'
    assert res['raw/bpod']['status'] == 'ok'
    # a dataset without installed subdatasets gets no such note
    res = add(origin / 'raw/2p', tmp_path / 'raw2p', branch='raw2p')
    assert 'left out' not in res[0]['message']


@pytest.mark.slow
def test_a_fully_merged_branch_is_moved_forward_and_used(origin, tmp_path):
    wt = tmp_path / 'wt'
    add(origin, wt, branch='runs', recursive=True)
    dl.worktree_remove(str(wt), dataset=origin, keep_branch=True,
                       result_renderer='disabled')
    old = git(origin / 'raw/bpod', 'rev-parse', 'refs/heads/runs')
    # development goes on: the kept branch is now behind, fully merged
    commit_file(origin / 'raw/bpod', 'more.txt', 'more\n', 'development')
    dl.save(dataset=origin, recursive=True, message='record it',
            result_renderer='disabled')
    res = by_path(add(origin, wt, branch='runs', recursive=True), wt)
    assert res['raw/bpod']['status'] == 'ok'
    assert f'moved it forward from {old[:10]}' in res['raw/bpod']['message']
    assert git(origin / 'raw/bpod', 'rev-parse', 'refs/heads/runs') == \
        recorded(origin, 'raw/bpod')
    assert (wt / 'raw/bpod/more.txt').read_text() == 'more\n'


def test_a_branch_with_commits_of_its_own_is_not_moved(origin, tmp_path):
    own = commit_file(origin / 'raw/bpod', 'own.txt', 'own\n', 'own work')
    git(origin / 'raw/bpod', 'branch', 'runs', own)
    git(origin / 'raw/bpod', 'reset', '-q', '--hard', 'HEAD~1')
    before = snapshot(origin)
    wt = tmp_path / 'wt'
    res = add(origin, wt, branch='runs', recursive=True)
    refused = [r for r in res if r['status'] == 'impossible']
    assert [r['path'] for r in refused] == [str(wt / 'raw/bpod')]
    assert 'with commits that the commit to check out' in \
        refused[0]['message']
    assert snapshot(origin) == before
    assert not wt.exists() or not any(wt.iterdir())
