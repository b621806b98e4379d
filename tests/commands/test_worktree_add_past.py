"""worktree-add PATH COMMIT-ISH: worktrees of past states of a hierarchy

One small hierarchy with a history is built once for the module; each test
makes worktrees of it at paths of its own, and changes nothing else but
what it says.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from datalad import api as dl

from tests.helpers import (
    add,
    by_path,
    datalad_cli,
    git,
    quiet,
    snapshot,
)

# the hierarchy and its history take about 9 s to build, once
pytestmark = pytest.mark.slow

PLOT_V1 = """\
import sys
from pathlib import Path
rows = Path(sys.argv[1]).read_text().splitlines()
Path(sys.argv[2]).parent.mkdir(exist_ok=True)
Path(sys.argv[2]).write_text(f"figure v1: {len(rows)} rows\\n")
"""
PLOT_V2 = PLOT_V1.replace('figure v1', 'figure v2, new style')
PLOT = (f'{sys.executable} code/plot.py data/values.csv figs/fig.txt')


def _save(ds, msg):
    dl.save(dataset=str(ds), recursive=True, message=msg,
            result_renderer='disabled')


def build_history(root: Path) -> dict:
    """super/ with code (plain git), data (annex), old and extra (clones
    of datasets in sources/); tagged v1 after a ``datalad run`` made
    figs/fig.txt. Since then: a new plot.py and a new run, old removed, new
    added, extra uninstalled in main; a commit on no branch (as Jujutsu
    makes them), and a tag 'broken' on one that records a commit of code
    that only its sibling 'lab' has"""
    q = dict(result_renderer='disabled')
    for name in ('old', 'extra'):
        src = dl.create(root / 'sources' / name, annex=False, **q)
        (src.pathobj / 'notes.txt').write_text(f'{name} notes\n')
        src.save(message=name, **q)
    sup = dl.create(root / 'super', **q)
    top = sup.pathobj
    code = dl.create(top / 'code', dataset=sup, annex=False, **q)
    (code.pathobj / 'plot.py').write_text(PLOT_V1)
    data = dl.create(top / 'data', dataset=sup, **q)
    (data.pathobj / 'values.csv').write_text('1\n2\n3\n')
    for name in ('old', 'extra'):
        dl.clone(source=str(root / 'sources' / name), path=top / name,
                 dataset=sup, **q)
    _save(top, 'code and data')
    sup.run(PLOT, inputs=['data/values.csv'], outputs=['figs/fig.txt'],
            message='figure for the lab meeting', **q)
    run_v1 = git(top, 'rev-parse', 'HEAD')
    git(top, 'tag', 'v1')
    (code.pathobj / 'plot.py').write_text(PLOT_V2)
    _save(top, 'new plot style')
    dl.remove(dataset=sup, path='old', reckless='kill', **q)
    dl.create(top / 'new', dataset=sup, annex=False, **q)
    _save(top, 'old out, new in')
    sup.run(PLOT, inputs=['data/values.csv'], outputs=['figs/fig.txt'],
            message='figure, new style', **q)
    dl.drop(dataset=sup, path='extra', what='datasets', reckless='kill',
            recursive=True,
            **q)
    jj = git(top, 'commit-tree', 'HEAD~1^{tree}', '-p', 'HEAD~1', '-m',
             'a commit on no branch')
    # a commit of code made elsewhere, never fetched
    lab = root / 'sources' / 'code-lab'
    git(root, 'clone', '-q', str(top / 'code'), str(lab))
    (lab / 'lab.py').write_text('print("lab")\n')
    git(lab, 'add', 'lab.py')
    git(lab, '-c', 'user.name=lab', '-c', 'user.email=lab@example.org',
        'commit', '-q', '-m', 'made in the lab')
    elsewhere = git(lab, 'rev-parse', 'HEAD')
    git(top / 'code', 'remote', 'add', 'lab', str(lab))
    index = root / 'broken-index'
    env = dict(os.environ, GIT_INDEX_FILE=str(index))
    for args in (['read-tree', 'HEAD'],
                 ['update-index', '--cacheinfo', f'160000,{elsewhere},code']):
        subprocess.run(['git', *args], cwd=top, env=env, check=True)
    tree = subprocess.run(['git', 'write-tree'], cwd=top, env=env, check=True,
                          capture_output=True, text=True).stdout.strip()
    broken = git(top, 'commit-tree', tree, '-p', 'HEAD', '-m', 'broken')
    git(top, 'tag', 'broken', broken)
    return dict(top=top, run_v1=run_v1, jj=jj, elsewhere=elsewhere,
                v1=git(top, 'rev-parse', 'v1'))


@pytest.fixture(scope='module')
def past(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp('past')
    found = build_history(root)
    found['root'] = root
    return found


def unchanged(top: Path) -> dict:
    """``snapshot`` without the worktree registrations"""
    return {ds: {k: v for k, v in state.items() if k != 'worktrees'}
            for ds, state in snapshot(top).items()}


def checked_out(wt: Path) -> str:
    return git(wt, 'rev-parse', 'HEAD')


def test_past_states_side_by_side(past):
    """A tag, HEAD~N and a commit on no branch, each detached, each
    dataset at what that state records; subdatasets that state lacks are
    not made; one main no longer has is cloned from the URL that state
    records (as worktree-get gets it), one main has not installed is left
    out with the worktree-get call (main is not changed); list says which
    state each worktree was made from; a past state that a ref holds is
    removed without --force, one on no branch is not"""
    top, root = past['top'], past['root']
    before, kept = snapshot(top), unchanged(top)
    v1 = root / 'v1'
    made = add(top, v1, commit='v1', recursive=True, jobs=2)
    assert [(os.path.relpath(r['path'], v1), r['action']) for r in made
            if r['action'] == 'install'] == [('old', 'install')]
    res = by_path([r for r in made if r['action'] != 'install'], v1)
    assert {k: (r['action'], r['status']) for k, r in res.items()} == {
        '.': ('worktree-add', 'ok'), 'code': ('worktree-add', 'ok'),
        'data': ('worktree-add', 'ok'),
        # removed since: a clone of its own, saying from where
        'old': ('worktree-add', 'ok'),
        # not installed in main: left out, main is not changed
        'extra': ('worktree-add', 'notneeded'),
    }, res
    assert all(res[k]['branch'] is None and res[k]['revision'] == 'v1'
               for k in ('.', 'code', 'data'))
    assert checked_out(v1) == past['v1']
    assert git(v1, 'rev-parse', '--abbrev-ref', 'HEAD') == 'HEAD'
    for sub in ('code', 'data', 'old'):
        assert checked_out(v1 / sub) == git(top, 'rev-parse', f'v1:{sub}')
    # the old figure, readable at once; the old code
    assert (v1 / 'figs/fig.txt').read_text() == 'figure v1: 3 rows\n'
    assert 'figure v1' in (v1 / 'code/plot.py').read_text()
    # added after v1: not made at all
    assert not (v1 / 'new').exists()
    # modification times as for HEAD: main's, where main holds the same
    same = 'data/values.csv'
    assert git(top / 'data', 'rev-parse', git(top, 'rev-parse', 'v1:data')
               + ':values.csv') == git(top / 'data', 'rev-parse',
                                       'HEAD:values.csv')
    assert os.lstat(v1 / same).st_mtime_ns == \
        os.lstat(top / same).st_mtime_ns
    url = str(root / 'sources' / 'old')
    assert res['old']['source_url'] == url and url in res['old']['message']
    assert (v1 / 'old/notes.txt').read_text() == 'old notes\n'
    assert f"worktree_get('{v1 / 'extra'}', dataset='{v1}')" in \
        res['extra']['message']
    assert not any((v1 / 'extra').iterdir())
    assert unchanged(top) == kept

    older = root / 'older'
    res2 = by_path(add(top, older, commit='HEAD~1', recursive=True), older)
    assert checked_out(older) == git(top, 'rev-parse', 'HEAD~1')
    assert res2['.']['branch'] is None
    assert 'figure v2' in (older / 'code/plot.py').read_text()
    assert (older / 'new').is_dir() and not (older / 'old').exists()
    jj = root / 'jj'
    res3 = by_path(add(top, jj, commit=past['jj'][:12]), jj)
    assert res3['.']['status'] == 'ok' and checked_out(jj) == past['jj']
    # main is as it was: HEAD, branches, subdatasets
    assert unchanged(top) == kept

    listed = dl.worktree_list(dataset=top, recursive=True,
                              **quiet())
    made = {(os.path.relpath(r['worktree_root'], root), r['relpath']):
            r['made_from'] for r in listed}
    assert made[('v1', '.')] == dict(revision='v1', commit=past['v1'])
    assert made[('v1', 'code')]['commit'] == git(top, 'rev-parse', 'v1:code')
    assert made[('older', '.')]['revision'] == 'HEAD~1'
    assert made[('jj', '.')]['revision'] == past['jj'][:12]
    out = datalad_cli('worktree-list', '-r', cwd=top).stdout
    assert 'made from v1' in out and 'made from HEAD~1' in out

    # worktree-get has nothing more to do for it. A commit of its own
    # keeps the worktree; without one the clone holds nothing its sibling
    # lacks, and goes with the worktree
    again = dl.worktree_get(str(v1 / 'old'), dataset=v1, **quiet())
    assert [r['status'] for r in again] == ['notneeded'], again
    git(v1 / 'old', 'commit', '-q', '--allow-empty', '-m', 'mine')
    res = dl.worktree_remove(str(v1), dataset=top, **quiet())
    assert [r['refusal'] for r in res] == ['separate-clone'], res
    assert (v1 / 'old/notes.txt').exists()
    git(v1 / 'old', 'reset', '-q', '--hard', 'HEAD~1')
    # v1 and HEAD~1 are contained in a tag and a branch: nothing to merge
    res = dl.worktree_remove([str(v1), str(older)], dataset=top, **quiet())
    assert {r['status'] for r in res} == {'ok'}, res
    assert not v1.exists() and not older.exists()
    # the commit on no branch would be lost: refused without --force
    res = dl.worktree_remove(str(jj), dataset=top, **quiet())
    assert [r['refusal'] for r in res] == ['unmerged-commits']
    assert 'a commit on no branch' in res[0]['message'] and jj.is_dir()
    res = dl.worktree_remove(str(jj), dataset=top, force=True, **quiet())
    assert {r['status'] for r in res} == {'ok'} and not jj.exists()
    assert snapshot(top) == before


def test_bad_revisions_are_refused(past):
    """An unknown revision, an option-like one (never given to git) and a
    state that records a commit its subdataset lacks: one refusal each,
    naming it and what to do, and nothing made or changed"""
    top, root = past['top'], past['root']
    before = snapshot(top)
    wt = root / 'bad'
    res = add(top, wt, commit='no-such-tag', recursive=True)
    assert [(r['status'], r['refusal']) for r in res] == [
        ('impossible', 'unknown-revision')]
    assert "unknown revision 'no-such-tag'" in res[0]['message']
    assert res[0]['revision'] == 'no-such-tag'
    for rev in ('--upload-pack=touch hacked', '-x', '--output=x'):
        res = add(top, wt, commit=rev, recursive=True)
        assert [r['refusal'] for r in res] == ['bad-revision'], res
        assert 'looks like an option' in res[0]['message']
        assert rev in res[0]['message']
    # on the command line too, after '--'
    out = datalad_cli('worktree-add', str(wt), '--', '--upload-pack=x',
                      cwd=top)
    assert out.returncode and 'looks like an option' in out.stdout + out.stderr
    # the state 'broken' records a commit of code that only the sibling
    # 'lab' has: refused before anything is made
    res = add(top, wt, commit='broken', recursive=True)
    refused = [r for r in res if r['status'] == 'impossible']
    assert [r['refusal'] for r in refused] == ['missing-commit'], res
    msg = refused[0]['message']
    assert past['elsewhere'][:10] in msg and 'recorded for code' in msg
    assert f"git -C {top / 'code'} fetch lab" in msg
    assert f"datalad update -d {top / 'code'} --sibling lab" in msg
    assert not wt.exists() and not (root / 'hacked').exists()
    assert not (top / 'hacked').exists()
    assert snapshot(top) == before


def test_branch_at_a_past_state_is_merged_back(past):
    """--branch B at v1 makes B in every dataset at what v1 records; work
    done there is merged into main with worktree-merge"""
    top, root = past['top'], past['root']
    wt = root / 'fix'
    res = by_path(add(top, wt, commit='v1', branch='fix-v1', recursive=True),
                  wt)
    assert {k: (r['status'], r.get('branch')) for k, r in res.items()
            if r['action'] == 'worktree-add'} == {
        **{k: ('ok', 'fix-v1') for k in ('.', 'code', 'data')},
        'extra': ('notneeded', 'fix-v1'),  # not installed in main
        'old': ('ok', None)}  # a clone: what main no longer has
    assert git(wt / 'code', 'rev-parse', 'fix-v1') == \
        git(top, 'rev-parse', 'v1:code')
    (wt / 'code' / 'check.py').write_text('print("checked")\n')
    _save(wt, 'a check, made on the v1 state')
    code_tip = git(wt / 'code', 'rev-parse', 'HEAD')
    res = dl.worktree_merge(str(wt), dataset=top, recursive=True, **quiet())
    assert {r['status'] for r in res} <= {'ok', 'notneeded'}, res
    assert (top / 'code' / 'check.py').read_text() == 'print("checked")\n'
    assert git(top / 'code', 'merge-base', '--is-ancestor', code_tip,
               'HEAD') == ''
    # main keeps what it had since v1
    assert 'figure v2' in (top / 'code' / 'plot.py').read_text()
    assert (top / 'new').is_dir()
    res = dl.worktree_remove(str(wt), dataset=top, **quiet())
    assert {r['status'] for r in res} == {'ok'}, res


def test_sparse_past_state_and_rerun(past):
    """A sparse worktree of v1 has only the parts asked for, as v1 has
    them; in a full one, 'datalad rerun' of v1's run record reproduces
    the figure of then"""
    top, root = past['top'], past['root']
    sparse = root / 'sparse'
    res = by_path(add(top, sparse, commit='v1', recursive=True,
                      sparse=['code']), sparse)
    assert sorted(k for k, r in res.items() if r['status'] == 'ok') == \
        ['.', 'code']
    assert 'sparse' not in res['code']  # it lies in the cone: full
    assert 'figure v1' in (sparse / 'code/plot.py').read_text()
    assert not (sparse / 'figs').exists()
    assert not any((sparse / 'data').iterdir())  # no worktree of data
    assert res['.']['sparse'] == ['.datalad', 'code']

    wt = root / 'rerun'
    add(top, wt, commit='v1', recursive=True)
    fig = wt / 'figs' / 'fig.txt'
    fig_key = git(wt, 'annex', 'lookupkey', 'figs/fig.txt')
    res = dl.rerun(past['run_v1'], dataset=str(wt), **quiet())
    assert not [r for r in res if r['status'] in ('error', 'impossible')], res
    # the old output was unlocked and made anew by the old code
    done = {(r['action'], r['status'], r['path']) for r in res}
    assert {('unlock', 'ok', str(fig)), ('run', 'ok', str(wt))} <= done
    assert fig.read_text() == 'figure v1: 3 rows\n'
    # the same content: nothing to save, the worktree is still at v1
    assert git(wt, 'annex', 'lookupkey', 'figs/fig.txt') == fig_key
    assert git(wt, 'rev-parse', 'HEAD') == past['v1']
    assert git(wt, 'status', '--porcelain') == ''
    res = dl.worktree_remove([str(wt), str(sparse)], dataset=top, **quiet())
    assert {r['status'] for r in res} == {'ok'}, res
