"""A subdataset whose git directory is absorbed into its superdataset's
``.git/modules`` (``git submodule add``, ``git clone --recurse-submodules``,
``git submodule absorbgitdirs``)

git-annex takes a linked worktree of such a repository for a submodule:
it makes the worktree's ``.git`` a link, but not ``<gitdir>/annex`` a link
to the shared annex, and then keeps an annex of the worktree's own. Each
test here fails where that is left as git-annex made it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from datalad import api as dl

from tests.fixtures import built_once
from tests.helpers import (
    add,
    by_path,
    git,
    snapshot,
)

QUIET = dict(result_renderer='disabled')


def build_absorbed(root: Path) -> Path:
    """A superdataset with the annex subdataset ``sub`` (a locked and an
    unlocked annexed file) whose git directory is absorbed"""
    sup = dl.create(root / 'super', **QUIET)
    sub = dl.create(sup.pathobj / 'sub', dataset=sup, **QUIET)
    (sub.pathobj / 'locked.dat').write_text('locked content\n')
    (sub.pathobj / 'unlocked.dat').write_text('unlocked content\n')
    sub.save(message='data', **QUIET)
    git(sub.pathobj, 'annex', 'unlock', 'unlocked.dat')
    git(sub.pathobj, 'commit', '-q', '-m', 'unlock', 'unlocked.dat')
    sup.save(message='record sub', **QUIET)
    git(sup.pathobj, 'submodule', 'absorbgitdirs')
    # any git-annex command turns the .git file into a link, as it does
    # after 'git submodule add' or 'git clone --recurse-submodules'
    git(sub.pathobj, 'annex', 'info', '--fast')
    return sup.pathobj


@pytest.fixture(scope='session')
def absorbed_template(tmp_path_factory) -> Path:
    return built_once(tmp_path_factory, 'absorbed', build_absorbed) / 'super'


@pytest.fixture
def origin(absorbed_template, tmp_path) -> Path:
    """A private copy of the superdataset with the absorbed subdataset"""
    dest = tmp_path / 'project' / 'super'
    shutil.copytree(absorbed_template, dest, symlinks=True)
    assert (dest / 'sub/.git').is_symlink()
    assert git(dest, 'rev-parse', '--git-path', 'modules') == \
        '.git/modules'
    assert (dest / '.git/modules/sub/annex').is_dir()
    return dest


@pytest.fixture
def wt(origin, tmp_path) -> Path:
    """A worktree of the hierarchy made by worktree-add -r"""
    wt = tmp_path / 'runs'
    res = add(origin, wt, recursive=True)
    assert [r['status'] for r in res] == ['ok', 'ok'], res
    return wt


def gitdir_annex(worktree: Path) -> Path:
    """``annex`` in the git directory of ``worktree``"""
    return Path(os.path.realpath(worktree / '.git')) / 'annex'


def shared_annex(origin: Path) -> Path:
    return origin / '.git/modules/sub/annex'


def fsck(repo: Path) -> subprocess.CompletedProcess:
    return subprocess.run(['git', 'annex', 'fsck', '--quiet'], cwd=repo,
                          capture_output=True, text=True)


def old_own_annex(worktree: Path) -> Path:
    """Leave the linked worktree with an annex directory of its own, as
    git-annex made it before this package repaired it, with the
    bookkeeping git-annex writes there (its branch index, journal, keys
    database); returns that directory"""
    annex = gitdir_annex(worktree)
    if annex.is_symlink():
        annex.unlink()
        annex.mkdir()
    # checked out with the content out of reach, git-annex's filter
    # writes a pointer file in place of the unlocked file's content
    (worktree / 'unlocked.dat').unlink()
    git(worktree, 'checkout', '--', 'unlocked.dat')
    assert (worktree / 'unlocked.dat').read_text().startswith('/annex/')
    git(worktree, 'annex', 'metadata', '--set', 'tag=old', 'locked.dat')
    assert (annex / 'index').is_file() and (annex / 'keysdb').is_dir()
    return annex


def own_object(worktree: Path) -> Path:
    """Annex a new file in a worktree with an annex of its own: its content
    lands there only; returns the object file"""
    old_own_annex(worktree)
    (worktree / 'new.dat').write_text('only here\n')
    git(worktree, 'annex', 'add', '--quiet', 'new.dat')
    git(worktree, 'commit', '-q', '-m', 'new result')
    objects = [p for p in (gitdir_annex(worktree) / 'objects').rglob('*')
               if p.is_file()]
    assert len(objects) == 1
    return objects[0]


def merge(origin, source, **kw):
    return by_path(dl.worktree_merge(str(source), dataset=origin,
                                     on_failure='ignore', return_type='list',
                                     **QUIET, **kw), origin)


def sync(worktree, **kw):
    return by_path(dl.worktree_sync(dataset=worktree, on_failure='ignore',
                                    return_type='list', **QUIET, **kw),
                   worktree)


def remove(origin, path, **kw):
    return by_path(dl.worktree_remove(path, dataset=origin,
                                      on_failure='ignore',
                                      return_type='list', **QUIET, **kw),
                   path)


@pytest.mark.slow
def test_worktree_reads_the_shared_annex(origin, wt):
    annex = gitdir_annex(wt / 'sub')
    assert annex.is_symlink()
    assert os.path.samefile(annex, shared_annex(origin))
    assert (wt / 'sub/locked.dat').read_text() == 'locked content\n'
    # the unlocked file has its content, not a pointer
    assert (wt / 'sub/unlocked.dat').read_text() == 'unlocked content\n'
    assert git(wt / 'sub', 'status', '--porcelain') == ''


def test_run_fsck_merge_and_remove(origin, wt):
    sub = wt / 'sub'
    # a Dataset instance: the command runs in its root
    dl.Dataset(sub).run('echo result > out.dat', outputs=['out.dat'],
                        message='make a result', **QUIET)
    assert (sub / 'out.dat').read_text() == 'result\n'
    key = git(sub, 'annex', 'lookupkey', 'out.dat')
    assert list(shared_annex(origin).rglob(key))
    for repo in (sub, origin / 'sub'):
        done = fsck(repo)
        assert done.returncode == 0, done.stdout + done.stderr
    res = merge(origin, wt, recursive=True)
    assert {res[p]['status'] for p in ('.', 'sub')} == {'ok'}, res
    assert (origin / 'sub/out.dat').read_text() == 'result\n'
    res = remove(origin, wt)
    assert {r['status'] for r in res.values()} == {'ok'}, res
    assert not wt.exists()
    done = fsck(origin / 'sub')
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize('command', ['sync', 'merge', 'add'])
def test_own_annex_without_unique_content_is_repaired(origin, wt, command):
    sub = wt / 'sub'
    old_own_annex(sub)
    if command == 'sync':
        res = sync(wt, recursive=True)
    elif command == 'merge':
        res = merge(origin, wt, recursive=True)
    else:
        res = by_path(add(origin, wt, recursive=True), wt)
    assert not [r for r in res.values() if r['status'] in
                ('impossible', 'error')], res
    annex = gitdir_annex(sub)
    assert annex.is_symlink()
    assert os.path.samefile(annex, shared_annex(origin))
    assert [p.name for p in annex.parent.iterdir()
            if p.name.startswith('annex')] == ['annex']
    assert (sub / 'locked.dat').read_text() == 'locked content\n'
    assert (sub / 'unlocked.dat').read_text() == 'unlocked content\n'
    for repo in (sub, origin / 'sub'):
        done = fsck(repo)
        assert done.returncode == 0, done.stdout + done.stderr


def test_list_shows_an_own_annex(origin, wt):
    def listed():
        return {r['path']: r['own_annex'] for r in dl.worktree_list(
            dataset=origin, recursive=True, return_type='list', **QUIET)}

    assert listed() == {str(wt): False, str(wt / 'sub'): False}
    old_own_annex(wt / 'sub')
    assert listed() == {str(wt): False, str(wt / 'sub'): True}


def test_own_annex_without_unique_content_does_not_block_remove(origin, wt):
    old_own_annex(wt / 'sub')
    res = remove(origin, wt)
    assert {r['status'] for r in res.values()} == {'ok'}, res
    assert not wt.exists()
    assert git(origin / 'sub', 'worktree', 'list', '--porcelain').count(
        'worktree ') == 1
    assert (origin / 'sub/locked.dat').read_text() == 'locked content\n'


@pytest.mark.slow
def test_own_object_is_refused_kept_and_can_be_moved(origin, wt):
    sub = wt / 'sub'
    obj = own_object(sub)
    content = obj.read_text()
    before = snapshot(origin)
    removed = remove(origin, wt)
    message = removed['sub']['message']
    assert removed['sub']['status'] == 'impossible'
    assert 'annexed content of its own' in message
    assert 'reinject --guesskeys' in message
    assert sync(wt, recursive=True)['sub']['status'] == 'impossible'
    assert merge(origin, wt, recursive=True)['sub']['status'] == \
        'impossible'
    # nothing was lost, nothing changed
    assert obj.read_text() == content
    assert (sub / 'new.dat').read_text() == 'only here\n'
    assert snapshot(origin) == before
    # what the message says to do works
    for command in re.findall(r"'((?:chmod|git -C) [^']*)'", message):
        subprocess.run(command, shell=True, check=True, capture_output=True)
    assert not obj.exists()
    res = merge(origin, wt, recursive=True)
    assert {res[p]['status'] for p in ('.', 'sub')} == {'ok'}, res
    assert (origin / 'sub/new.dat').read_text() == 'only here\n'
    assert gitdir_annex(sub).is_symlink()
    res = remove(origin, wt)
    assert {r['status'] for r in res.values()} == {'ok'}, res
    done = fsck(origin / 'sub')
    assert done.returncode == 0, done.stdout + done.stderr


def test_uncommitted_annex_branch_changes_are_refused(origin, wt):
    sub = wt / 'sub'
    old_own_annex(sub)
    git(sub, '-c', 'annex.alwayscommit=false', 'annex', 'metadata',
        '--set', 'tag=pending', 'locked.dat')
    res = sync(wt, recursive=True)
    assert res['sub']['status'] == 'impossible'
    message = res['sub']['message']
    assert 'not committed yet' in message
    assert not gitdir_annex(sub).is_symlink()
    command = re.search(r"'(git -C [^']*)'", message).group(1)
    subprocess.run(command, shell=True, check=True, capture_output=True)
    res = sync(wt, recursive=True)
    assert res['sub']['status'] in ('ok', 'notneeded'), res
    assert gitdir_annex(sub).is_symlink()
    assert 'tag=pending' in git(origin / 'sub', 'annex', 'metadata',
                                'locked.dat')


def test_main_worktree_is_where_the_superdataset_checks_it_out(origin, wt):
    # git names the absorbed git directory as the main worktree, once
    # git-annex has unset its core.worktree
    assert git(origin / 'sub', 'worktree', 'list').startswith(
        str(origin / '.git/modules/sub'))
    (origin / 'sub/more.txt').write_text('more\n')
    dl.save(dataset=origin, recursive=True, message='more', **QUIET)
    res = sync(wt, recursive=True)
    assert res['sub']['status'] == 'ok', res
    assert res['sub']['source'] == str(origin / 'sub')
    assert 'not carried over' not in res['sub']['message']
    assert (wt / 'sub/more.txt').read_text() == 'more\n'
    res = sync(origin / 'sub')
    assert res['.']['status'] == 'impossible'
    assert 'is the main worktree of its repository' in res['.']['message']
