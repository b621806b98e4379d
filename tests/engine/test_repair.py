"""Nested worktrees moved by hand, and their main datasets: recognised by
every command, re-linked by worktree-repair, moved by worktree-move

Each test moves real datasets (git-annex and plain git subdatasets, an
absorbed git directory, a sparse worktree) and checks what the commands
say before the repair, that the repair changes only the links, and that
everything works after it."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from datalad import api as dl

from tests.engine.test_recover import write_journal
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

BPOD = 'raw/bpod'
ANNEXED = f'{BPOD}/sub-01/trials.tsv'


def statuses(results) -> set[str]:
    return {r['status'] for r in results}


def listed(origin) -> dict:
    return by_path(dl.worktree_list(dataset=origin, recursive=True,
                                    **quiet()), origin)


def well_linked(origin, wt):
    """Every dataset of ``wt`` is listed at its place, clean and linked;
    annexed content is readable there; git finds every registration"""
    found = {k: r for k, r in listed(origin).items()
             if r['worktree_root'] == str(wt)}
    assert len(found) == 7, found
    for r in found.values():
        assert (r['stale'], r['linked'], r['clean'], r['repair']) == \
            (False, True, True, None), r
    assert (wt / ANNEXED).read_text() == 'bpod row 1\nbpod row 2\n'
    assert str(wt) in git(origin / DERIVED, 'worktree', 'list')
    assert 'prunable' not in git(origin / CODE, 'worktree', 'list',
                                 '--porcelain')


def test_worktree_moved_deeper(origin, runs, tmp_path, monkeypatch):
    new = tmp_path / 'deep' / 'er' / 'runs'
    new.parent.mkdir(parents=True)
    os.rename(runs, new)
    before = snapshot(origin)
    # inside it: DataLad finds no dataset there; ours names the repair
    monkeypatch.chdir(new / DERIVED)
    res = dl.worktree_sync(recursive=True, **quiet())
    assert [(r['status'], r['refusal']) for r in res] == \
        [('impossible', 'moved')]
    assert f"worktree_repair('{new}')" in res[0]['message']
    monkeypatch.chdir(tmp_path)
    # in main: gone, with the command; merge and remove of NEWPATH refused
    found = listed(origin)
    assert found['../../runs']['stale'] and \
        'worktree_repair(' in found['../../runs']['repair']
    res = dl.worktree_merge(str(new), dataset=origin, recursive=True, **quiet())
    assert [r['refusal'] for r in res] == ['moved']
    res = dl.worktree_remove(new, dataset=origin, **quiet())
    assert [r['refusal'] for r in res] == ['moved']
    assert 'worktree_repair(' in res[0]['message']
    # the old place: a dry run says how to repair instead of pruning
    res = dl.worktree_remove(runs, dataset=origin, dry_run=True, **quiet())
    assert all('worktree_repair(' in r['message'] for r in res), res
    assert snapshot(origin) == before
    # repaired from main, naming the new place
    res = dl.worktree_repair(new, dataset=origin, **quiet())
    assert len(res) == 7 and statuses(res) == {'ok'}, res
    assert all(r['moved_from'] for r in res)
    # a relative .git file, also where git repaired it
    assert not os.path.isabs(
        (new / CODE / '.git').read_text().split(': ', 1)[1])
    well_linked(origin, new)
    assert statuses(dl.worktree_repair(new, **quiet())) == {'notneeded'}
    # sync, merge and remove work
    monkeypatch.chdir(new)
    assert statuses(dl.worktree_sync(recursive=True, **quiet())) <= \
        {'ok', 'notneeded'}
    monkeypatch.chdir(tmp_path)
    commit_file(new / CODE, 'new.py', 'print(1)\n', 'new code')
    res = by_path(dl.worktree_merge(str(new), dataset=origin, recursive=True,
                                    **quiet()), origin)
    assert res[CODE]['status'] == 'ok', res
    assert (origin / CODE / 'new.py').is_file()
    res = dl.worktree_remove(new, dataset=origin, **quiet())
    assert statuses(res) == {'ok'}, [r['message'] for r in res
                                     if r['status'] != 'ok']
    assert not new.exists()


def test_renamed_in_place_then_moved(origin, runs, tmp_path, monkeypatch):
    renamed = tmp_path / 'runs2'
    os.rename(runs, renamed)
    found = listed(origin)
    assert found['../../runs']['moved_to'] == str(renamed)
    assert found['../../runs']['repair'] == \
        f"worktree_repair('{renamed}', dataset='{origin}')"
    # repaired from inside, without naming main
    monkeypatch.chdir(renamed / DERIVED)
    res = dl.worktree_repair(**quiet())
    assert len(res) == 7 and statuses(res) == {'ok'}, res
    monkeypatch.chdir(tmp_path)
    # bad input: nothing changed
    before = snapshot(origin)
    copy = tmp_path / 'copy'
    shutil.copytree(renamed, copy, symlinks=True)
    for path in (copy, tmp_path / 'project', tmp_path / '--upload-pack=x'):
        res = dl.worktree_repair(path, **quiet())
        assert [(r['status'], r.get('refusal')) for r in res] == \
            [('impossible', 'not-moved')], (path, res)
    shutil.rmtree(copy)
    full = tmp_path / 'full'
    full.mkdir()
    (full / 'mine.txt').write_text('mine\n')
    git(origin / BPOD, 'worktree', 'lock', '--reason', 'on a USB disk',
        str(renamed / BPOD))
    for target, code in ((full, 'exists'), (origin / 'inside', 'bad-path'),
                         (renamed / 'sub', 'bad-path'),
                         (tmp_path / '--upload-pack=x', 'bad-path'),
                         (tmp_path / 'elsewhere', 'locked')):
        res = dl.worktree_move(renamed, target, **quiet())
        assert [(r['status'], r.get('refusal')) for r in res] == \
            [('impossible', code)], (target, res)
        assert not os.path.lexists(target) or target == full
    assert 'on a USB disk' in res[0]['message']
    assert os.listdir(full) == ['mine.txt']
    git(origin / BPOD, 'worktree', 'unlock', str(renamed / BPOD))
    # another run of ours, alive (its heartbeat is fresh), works there
    journal = write_journal(origin / 'raw/2p', 4242, [],
                            host='node-17.cluster', start='99', age=5)
    res = dl.worktree_move(renamed, tmp_path / 'elsewhere', **quiet())
    assert [r.get('refusal') for r in res] == ['locked'], res
    assert 'process 4242 on node-17.cluster' in res[0]['message']
    journal.unlink()
    assert snapshot(origin) == before
    # moved as a whole; a rerun after the move only re-links
    target = tmp_path / 'archive' / '2024' / 'runs'
    res = dl.worktree_move(renamed, target, **quiet())
    assert len(res) == 7 and statuses(res) == {'ok'}, res
    assert not renamed.exists()
    well_linked(origin, target)
    res = dl.worktree_move(renamed, target, **quiet())
    assert statuses(res) == {'notneeded'}, res


def test_main_moved_and_moved_together(origin, tmp_path, monkeypatch):
    """An absorbed plain-git subdataset named by an absolute path, a
    sparse worktree, a worktree's own configuration holding main's path"""
    code_git = origin / CODE / '.git'
    git(origin / DERIVED, 'submodule', 'absorbgitdirs', '--', 'code')
    absorbed = origin / DERIVED / '.git' / 'modules' / 'code'
    assert absorbed.is_dir()
    code_git.write_text(f'gitdir: {absorbed}\n')
    wt, sparse = tmp_path / 'wt', tmp_path / 'sparse'
    assert statuses(add(origin, wt, recursive=True)) == {'ok', 'notneeded'}
    assert statuses(add(origin, sparse, recursive=True,
                        sparse=[f'{BPOD}/sub-01'])) <= {'ok', 'notneeded'}
    git(wt / BPOD, 'config', 'extensions.worktreeConfig', 'true')
    common = Path(git(origin / BPOD, 'rev-parse', '--path-format=absolute',
                      '--git-common-dir'))
    git(wt / BPOD, 'config', '--worktree', 'datalad.worktree.container-binds',
        f'{common}:{common}:ro')
    # the main dataset moved: its absorbed subdataset and the worktrees'
    # links break; list names the repair
    moved = tmp_path / 'moved' / 'project'
    moved.parent.mkdir()
    os.rename(tmp_path / 'project', moved)
    main = moved / 'super'
    res = listed(main)
    assert res[CODE]['refusal'] == 'moved', res[CODE]
    assert res['../../../wt']['linked'] is False
    assert res['../../../wt']['repair'] == \
        f"worktree_repair(dataset='{main}')"
    # remove does not prune what is there with broken links
    def files():
        return sorted(str(p) for p in wt.rglob('*')) + sorted(
            os.listdir(main / '.git' / 'worktrees'))
    before = files()
    res = dl.worktree_remove(str(wt), dataset=main, **quiet())
    refused = [r for r in res if r['status'] == 'impossible']
    assert {r['refusal'] for r in refused} == {'moved'}, res
    assert all('worktree_repair(dataset=' in r['message'] for r in refused)
    assert files() == before
    res = dl.worktree_repair(dataset=main, **quiet())
    assert statuses(res) == {'ok'}, res
    assert (main / CODE / '.git').read_text() == 'gitdir: ../.git/modules/code\n'
    well_linked(main, wt)
    assert git(wt / BPOD, 'config', '--worktree',
               'datalad.worktree.container-binds') == \
        f'{str(common).replace(str(tmp_path / "project"), str(moved))}:' \
        f'{str(common).replace(str(tmp_path / "project"), str(moved))}:ro'
    res = by_path(listed(main).values(), main)
    assert all(r['linked'] for r in res.values()), res
    assert (sparse / ANNEXED).read_text().startswith('bpod row 1')
    assert statuses(dl.worktree_repair(dataset=main, **quiet())) == \
        {'notneeded'}
    # moved together: everything works inside without a repair
    together = tmp_path / 'disk2'
    together.mkdir()
    for name in ('moved', 'wt', 'sparse'):
        os.rename(tmp_path / name, together / name)
    main, wt = together / 'moved' / 'project' / 'super', together / 'wt'
    assert (wt / ANNEXED).read_text().startswith('bpod row 1')
    assert git(wt / CODE, 'status', '--porcelain') == ''
    monkeypatch.chdir(wt)
    assert statuses(dl.worktree_sync(recursive=True, **quiet())) == \
        {'notneeded'}
    res = dl.worktree_merge(str(wt), dataset=main, recursive=True, **quiet())
    assert statuses(res) == {'notneeded'}, res
    # main's registrations name the old places until repaired
    found = listed(main)
    assert found['../../../../wt']['moved_to'] == str(wt)
    res = dl.worktree_repair(dataset=main, **quiet())
    assert statuses(res) == {'ok'}, res
    well_linked(main, wt)
    assert statuses(dl.worktree_remove(
        [wt, together / 'sparse'], dataset=main, **quiet())) == {'ok'}


def test_a_past_state_worktree_moved_by_hand_and_by_worktree_move(
        origin, tmp_path, monkeypatch):
    """A worktree of a past state (detached, its state in its own
    configuration) moved with mv is re-linked, keeps what it was made
    from, moves again with worktree-move, and goes without --force"""
    past = tmp_path / 'past'
    state = git(origin, 'rev-parse', 'HEAD')
    commit_file(origin, 'NEWS.txt', 'since then\n', 'main moves on')
    res = add(origin, past, commit='HEAD~1', recursive=True)
    assert statuses(res) == {'ok', 'notneeded'}, res  # containers: not
    made = {os.path.relpath(r['path'], past) for r in res  # installed
            if r['status'] == 'ok'}
    moved = tmp_path / 'visits' / 'past'
    moved.parent.mkdir()
    os.rename(past, moved)
    monkeypatch.chdir(moved / BPOD)
    res = dl.worktree_repair(**quiet())
    assert statuses(res) == {'ok'}, res
    monkeypatch.chdir(tmp_path)
    again = tmp_path / 'again'
    res = dl.worktree_move(moved, again, **quiet())
    assert 'ok' in statuses(res) and statuses(res) <= {'ok', 'notneeded'}
    found = {r['relpath']: r for r in listed(origin).values()
             if r['worktree_root'] == str(again)}
    assert set(found) == made, found
    assert found['.']['made_from'] == dict(revision='HEAD~1', commit=state)
    assert all(r['linked'] and not r['stale'] and r['branch'] is None
               for r in found.values()), found
    assert git(again, 'rev-parse', 'HEAD') == state
    assert git(again / BPOD, 'rev-parse', 'HEAD') == git(
        origin, 'rev-parse', f'HEAD~1:{BPOD}')
    # its annexed files, readable through the re-linked shared annex
    annexed = [f for f in (again / BPOD).rglob('*')
               if f.is_symlink() and '.git' not in f.parts]
    assert annexed and all(f.read_bytes() for f in annexed)
    res = dl.worktree_remove(str(again), dataset=origin, **quiet())
    assert statuses(res) == {'ok'}, res
    assert not again.exists()


def test_a_project_copied_with_its_worktrees(origin, runs, tmp_path):
    """A copy of the whole project (cp -a) with the original kept: the
    copy's main registers the original's worktrees, which it must never
    touch; list says their links are broken, remove refuses them, and
    worktree-repair in the copy links the copy's own worktrees; the
    original is unchanged throughout"""
    project = tmp_path / 'project'
    copied = tmp_path / 'disk2'
    copied.mkdir()
    subprocess.run(['cp', '-a', str(project), str(runs), str(copied)],
                   check=True)
    main, wt = copied / 'project' / 'super', copied / 'runs'
    original = snapshot(origin), sorted(str(p) for p in runs.rglob('*'))
    found = {r['relpath']: r for r in listed(main).values()
             if r['worktree_root'] == str(runs)}
    assert found and all(r['linked'] is False and r['repair'] ==
                         f"worktree_repair(dataset='{main}')"
                         for r in found.values()), found
    res = dl.worktree_remove(str(runs), dataset=main, **quiet())
    assert {r['refusal'] for r in res if r['status'] == 'impossible'} == \
        {'moved'}, res
    assert 'leads elsewhere' in res[0]['message']
    assert (snapshot(origin), sorted(str(p) for p in runs.rglob('*'))) == \
        original
    res = dl.worktree_repair(dataset=main, **quiet())
    assert statuses(res) == {'ok'}, res
    well_linked(main, wt)
    well_linked(origin, runs)
    assert (snapshot(origin), sorted(str(p) for p in runs.rglob('*'))) == \
        original
