"""Questions about every file of a commit give the same answers from
git (larger trees, or a store that may not be read) as from the object
store's files, at any number of files: there is no limit after which the
quick checkout is given up"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from datalad_worktree.repo import records
from datalad_worktree.repo.records import (
    BY_HAND,
    files_of,
    may_hold_unlocked_files,
)

POINTER = '/annex/objects/SHA256E-s5--' + 'a' * 64 + '.dat\n'


def git(repo: Path, *args: str, stdin: str | None = None) -> str:
    return subprocess.run(['git', *args], cwd=repo, check=True, input=stdin,
                          capture_output=True, text=True).stdout.strip()


def commit_files(repo: Path, files: dict[str, str]) -> str:
    """Commit ``files`` (path: content) with one fast-import; the commit"""
    lines = []
    for i, (path, text) in enumerate(files.items(), 1):
        lines += ['blob', f'mark :{i}', f'data {len(text.encode())}', text]
    lines += ['commit refs/heads/main', 'committer T <t@e> 0 +0000',
              'data 1', 'c']
    if git(repo, 'for-each-ref', 'refs/heads/main'):
        lines.append('from refs/heads/main^0')
    lines += [f'M 100644 :{i} {path}' for i, path in enumerate(files, 1)]
    git(repo, 'fast-import', '--quiet', stdin='\n'.join(lines) + '\n')
    return git(repo, 'rev-parse', 'refs/heads/main')


@pytest.fixture
def repo(tmp_path) -> Path:
    path = tmp_path / 'repo'
    path.mkdir()
    git(path, 'init', '-q', '-b', 'main')
    return path


def many(count: int, top: str = 'd') -> dict[str, str]:
    return {f'{top}{i % 7}/f{i}.json': f'{{"i": {i}}}\n'
            for i in range(count)}


@pytest.mark.parametrize('count', [BY_HAND // 2, BY_HAND * 10])
def test_pointers_found_at_any_size(repo, count):
    clean = commit_files(repo, many(count))
    assert not may_hold_unlocked_files(repo, clean)
    # the same answer where every tree is read from the files
    assert not may_hold_unlocked_files(repo, clean, files=100000)
    pointer = commit_files(repo, {'x/deep/unlocked.dat': POINTER})
    assert may_hold_unlocked_files(repo, pointer)
    assert may_hold_unlocked_files(repo, pointer, files=100000)
    # in a sparse checkout, only the files it has count
    for cone, found in ((('x',), True), (('d1',), False),
                        (('x/deep',), True), (('x/other',), False)):
        assert may_hold_unlocked_files(repo, pointer, cone=cone) is found
        assert records._pointers_from_git(repo, pointer, cone) is found


def test_a_pointer_like_text_in_git_is_looked_at_closely(repo):
    """A file that mentions git-annex's object directory beyond its first
    1024 bytes, or that is too large to be a pointer, is no pointer; one
    that names it at its start is"""
    files = many(BY_HAND * 4)
    files['doc/late.md'] = 'x' * 2000 + 'annex/objects/ is where\n'
    files['doc/large.md'] = 'annex/objects/\n' + 'y' * 40000
    clean = commit_files(repo, files)
    assert not may_hold_unlocked_files(repo, clean)
    assert not records._pointers_from_git(repo, clean, None)
    early = commit_files(repo, {'doc/early.md': 'see annex/objects/ x\n'})
    assert may_hold_unlocked_files(repo, early)


def test_a_store_git_must_read_is_asked_of_git(repo):
    """Where git reads replacements (``git replace``), the answer is git's:
    a blob replaced by a pointer counts"""
    commit = commit_files(repo, many(10))
    blob = git(repo, 'rev-parse', f'{commit}:d1/f1.json')
    pointer = git(repo, 'hash-object', '-w', '--stdin', stdin=POINTER)
    assert not may_hold_unlocked_files(repo, commit)
    git(repo, 'replace', blob, pointer)
    assert may_hold_unlocked_files(repo, commit)
    assert files_of(repo, commit) is None


def test_files_of_lists_small_trees_only(repo):
    small = commit_files(repo, many(BY_HAND))
    assert len(files_of(repo, small)) == BY_HAND
    large = commit_files(repo, many(BY_HAND + 1))
    assert files_of(repo, large) is None


def test_a_commit_git_cannot_read_may_hold_anything(repo):
    """Where git cannot read the commit, the answer is 'may hold', and the
    checkout (with git-annex's filter) is left to say why it fails"""
    commit_files(repo, many(BY_HAND * 2))
    assert may_hold_unlocked_files(repo, '1' * 40)
