"""Carrying times into a new worktree of a small dataset asks git which
files of the origin differ from the commit only where git's index cannot
say for certain that none does (``mtimes.unchanged_in``): every answer it
gives is one ``git diff`` gives too, and every doubt goes to git."""

from __future__ import annotations

import os
import time

import pytest

from datalad_worktree.environment.mtimes import Entry, unchanged_in
from datalad_worktree.repo.records import files_of
from tests.helpers import git


@pytest.fixture
def repo(tmp_path):
    """A small committed repository whose index is older than a second
    than its files (so that no entry is racily clean)"""
    repo = tmp_path / 'repo'
    repo.mkdir()
    git(repo, 'init', '-q')
    (repo / 'a.txt').write_text('a\n')
    (repo / 'run.sh').write_text('#!/bin/sh\n')
    (repo / 'run.sh').chmod(0o755)
    os.symlink('a.txt', repo / 'link')
    old = time.time() - 10
    for name in ('a.txt', 'run.sh', 'link'):
        os.utime(repo / name, (old, old), follow_symlinks=False)
    git(repo, 'add', '.')
    git(repo, 'commit', '-q', '-m', 'files')
    return repo


def entries(repo) -> dict[str, Entry]:
    commit = git(repo, 'rev-parse', 'HEAD')
    return {p: Entry(m, b, s) for p, m, b, s in files_of(repo, commit)}


def git_differs(repo) -> set[str]:
    return set(git(repo, 'diff', '--name-only', 'HEAD', '--').split())


def test_a_clean_checkout_is_unchanged(repo):
    assert git_differs(repo) == set()
    assert unchanged_in(repo, entries(repo))


@pytest.mark.parametrize('change', [
    'content', 'same-size-old-time', 'mode', 'staged', 'deleted',
    'replaced-by-link'])
def test_every_change_is_a_doubt_left_to_git(repo, change):
    """A change git sees, also one that keeps size and modification time
    (the ctime and inode tell), is never "unchanged"; git then names the
    file"""
    path = repo / 'a.txt'
    st = os.lstat(path)
    listed = entries(repo)
    if change == 'content':
        path.write_text('changed\n')
    elif change == 'same-size-old-time':
        path.write_text('b\n')
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    elif change == 'mode':
        path.chmod(0o755)
    elif change == 'staged':
        path.write_text('staged\n')
        git(repo, 'add', 'a.txt')
    elif change == 'deleted':
        path.unlink()
    elif change == 'replaced-by-link':
        path.unlink()
        os.symlink('run.sh', path)
    assert not unchanged_in(repo, listed)
    if change != 'same-size-old-time':
        assert 'a.txt' in git_differs(repo)


def test_a_racily_clean_file_is_a_doubt(repo):
    """A file written in the second its index was: git itself would read
    it, so it is not taken as unchanged"""
    path = repo / 'a.txt'
    now = time.time()
    os.utime(path, (now, now))
    git(repo, 'update-index', '--refresh')
    index = os.stat(repo / '.git' / 'index').st_mtime
    os.utime(path, (index, index))
    git(repo, 'update-index', '--refresh')
    assert int(os.lstat(path).st_mtime) >= \
        int(os.stat(repo / '.git' / 'index').st_mtime)
    assert not unchanged_in(repo, entries(repo))


def test_another_commit_or_index_is_a_doubt(repo, monkeypatch):
    """Entries of another commit (the blob differs from the index's), and
    an index git would not use (GIT_INDEX_FILE) or cannot be read here"""
    listed = entries(repo)
    (repo / 'a.txt').write_text('newer\n')
    old = time.time() - 5
    os.utime(repo / 'a.txt', (old, old))
    git(repo, 'commit', '-q', '-am', 'newer')
    assert unchanged_in(repo, entries(repo))
    assert not unchanged_in(repo, listed)
    monkeypatch.setenv('GIT_INDEX_FILE', str(repo / '.git' / 'index'))
    assert not unchanged_in(repo, entries(repo))
    monkeypatch.delenv('GIT_INDEX_FILE')
    git(repo, 'update-index', '--index-version', '4')
    assert not unchanged_in(repo, entries(repo))
