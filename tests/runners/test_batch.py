"""git's batch output, streamed: ``git.cat_file`` and ``git.stream`` give
exactly what git gives, end git when left early, and fail loudly"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from datalad_next.runners import CommandError

from datalad_worktree.runners import git


def _git(repo: Path, *args: str, stdin: bytes | None = None) -> bytes:
    return subprocess.run(['git', *args], cwd=repo, check=True, input=stdin,
                          capture_output=True).stdout


@pytest.fixture
def repo(tmp_path) -> tuple[Path, list[str]]:
    """A repository with 300 blobs (one empty, one with newlines and NUL
    bytes, one of 200 KB); the repository and the blobs' names"""
    path = tmp_path / 'repo'
    path.mkdir()
    _git(path, 'init', '-q')
    names = []
    for i in range(300):
        data = b'' if i == 0 else b'a\nb\0c\n' * i if i < 299 \
            else b'x' * 200000
        names.append(_git(path, 'hash-object', '-w', '--stdin',
                          stdin=data).decode().strip())
    return path, names


def test_cat_file_gives_every_object_in_order(repo):
    path, names = repo
    found = list(git.cat_file(path, [*names, '0' * 40, names[5]]))
    assert [n for n, _ in found] == [*names, '0' * 40, names[5]]
    for name, content in found[:300]:
        assert content == _git(path, 'cat-file', 'blob', name)
    assert found[300][1] is None
    assert found[301] == found[5]
    assert list(git.cat_file(path, [])) == []


def test_stream_gives_git_s_output_exactly(repo):
    path, names = repo
    whole = _git(path, 'cat-file', '--batch',
                 stdin=('\n'.join(names) + '\n').encode())
    chunks = list(git.stream(path, ['cat-file', '--batch'], names, 4096))
    assert b''.join(chunks) == whole
    assert all(len(c) == 4096 for c in chunks[:-1])


def test_leaving_early_ends_git(repo):
    path, names = repo
    blobs = git.cat_file(path, names * 50)
    assert next(blobs)[0] == names[0]
    blobs.close()
    chunks = git.stream(path, ['cat-file', '--batch'], names * 50, 1024)
    assert next(chunks)
    chunks.close()
    # no git left over: a second reader of the same repository works
    assert len(list(git.cat_file(path, names))) == 300


def test_a_failing_git_raises(repo, tmp_path):
    path, names = repo
    with pytest.raises(CommandError):
        list(git.stream(path, ['cat-file', '--no-such-option'], names))
    plain = tmp_path / 'plain'
    plain.mkdir()
    with pytest.raises(CommandError):
        list(git.cat_file(plain, names))
