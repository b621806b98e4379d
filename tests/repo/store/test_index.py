"""repo.store.index: the stat data of git's index, read from the file,
against what git itself says (``git ls-files --debug``) on real indexes"""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from datalad_worktree.repo.store.index import Recorded, file_times, parse, recorded_files
from tests.helpers import git


def debug_times(repo) -> dict[str, tuple[int, int]]:
    """Mode and mtime (ns) of each entry as ``git ls-files --debug``
    prints them, with the entries of stage 0 only"""
    out = git(repo, '-c', 'core.quotePath=false', 'ls-files', '--debug',
              '-s')
    found, path, mode = {}, None, None
    for line in out.splitlines():
        if not line.startswith(' '):
            meta, path = line.split('\t', 1)
            mode, _, stage = meta.split()
            mode = int(mode, 8) if stage == '0' else None
        elif line.lstrip().startswith('mtime:') and mode is not None:
            sec, nsec = re.match(r'\s*mtime:\s*(\d+):(\d+)', line).groups()
            found[path] = (mode, int(sec) * 10**9 + int(nsec))
    return found


@pytest.fixture
def repo(tmp_path):
    """A repository with files in a few directories, a symbolic link, a
    long and a non-ASCII file name, an executable, all committed"""
    repo = tmp_path / 'repo'
    repo.mkdir()
    git(repo, 'init', '-q')
    for i in range(30):
        d = repo / f'd{i % 3}' / 'sub'
        d.mkdir(parents=True, exist_ok=True)
        (d / f'f{i}.txt').write_text(f'{i}\n')
    (repo / ('n' * 250)).write_text('long\n')
    (repo / 'run.sh').write_text('#!/bin/sh\n')
    (repo / 'run.sh').chmod(0o755)
    os.symlink('d0/sub/f0.txt', repo / 'link')
    (repo / 'ü.txt').write_text('umlaut\n')
    git(repo, 'add', '.')
    git(repo, 'commit', '-q', '-m', 'files')
    return repo


def test_a_version_2_index_as_git_reads_it(repo):
    found = file_times(repo)
    assert found == debug_times(repo)
    assert found['link'][0] == 0o120000
    assert found['run.sh'][0] == 0o100755
    assert 'ü.txt' in found and 'n' * 250 in found
    assert len(found) == 34


def test_version_3_entries_that_are_not_checked_out_are_left_out(repo):
    """skip-worktree (sparse checkout), intent-to-add and conflicted
    entries are not reported; the rest is as git says"""
    git(repo, 'sparse-checkout', 'set', 'd0')
    (repo / 'new.txt').write_text('new\n')
    git(repo, 'add', '-N', 'new.txt')
    with open(repo / '.git' / 'index', 'rb') as f:
        assert int.from_bytes(f.read(8)[4:], 'big') == 3
    found = file_times(repo)
    assert 'new.txt' not in found
    assert not any(p.startswith('d1/') for p in found)
    assert 'd0/sub/f0.txt' in found
    checked_out = {p: v for p, v in debug_times(repo).items()
                   if (repo / p).exists() and p != 'new.txt'}
    assert found == checked_out


def test_conflicted_entries_are_left_out(repo):
    git(repo, 'checkout', '-q', '-b', 'other')
    (repo / 'run.sh').write_text('#!/bin/sh\necho other\n')
    git(repo, 'commit', '-q', '-am', 'other')
    git(repo, 'checkout', '-q', '-')
    (repo / 'run.sh').write_text('#!/bin/sh\necho this\n')
    git(repo, 'commit', '-q', '-am', 'this')
    subprocess.run(['git', 'merge', '-q', 'other'], cwd=repo,
                   capture_output=True, check=False)
    assert 'UU run.sh' in git(repo, 'status', '--porcelain')
    found = file_times(repo)
    assert 'run.sh' not in found and 'link' in found


@pytest.mark.parametrize('option', ['--index-version=4', '--split-index'])
def test_other_index_layouts_are_left_to_git(repo, option):
    git(repo, 'update-index', option)
    assert debug_times(repo)  # git reads it
    assert file_times(repo) is None


def test_a_sparse_index_is_left_to_git(repo):
    git(repo, 'sparse-checkout', 'set', '--cone', 'd0')
    git(repo, 'sparse-checkout', 'reapply', '--sparse-index')
    assert git(repo, 'ls-files', '--sparse', '-s', 'd1/').startswith(
        '040000')
    assert file_times(repo) is None


def test_another_index_file_or_format_is_left_to_git(repo, monkeypatch):
    assert file_times(repo) is not None
    monkeypatch.setenv('GIT_INDEX_FILE', str(repo / '.git' / 'index'))
    assert file_times(repo) is None
    monkeypatch.delenv('GIT_INDEX_FILE')
    git(repo, 'config', 'core.repositoryformatversion', '1')
    git(repo, 'config', 'extensions.objectFormat', 'sha256')
    assert file_times(repo) is None


def test_what_does_not_parse_to_its_end_is_refused(repo):
    data = (repo / '.git' / 'index').read_bytes()
    assert parse(data) is not None
    assert parse(data[:-30]) is None
    assert parse(b'XXXX' + data[4:]) is None
    assert parse(data[:12]) is None


def debug_records(repo) -> dict[str, Recorded]:
    """All that ``git ls-files --debug`` prints of each entry of stage 0"""
    out = git(repo, '-c', 'core.quotePath=false', 'ls-files', '--debug',
              '-s')
    found: dict[str, Recorded] = {}
    for block in re.split(r'\n(?=\S)', out):
        head, *rest = block.splitlines()
        meta, path = head.split('\t', 1)
        mode, blob, stage = meta.split()
        if stage != '0':
            continue
        text = ' '.join(rest)
        num = {k: tuple(map(int, v.split(':'))) for k, v in
               re.findall(r'(ctime|mtime|dev|ino|uid|gid|size|flags):\s*'
                          r'([0-9:]+)', text)}
        found[path] = Recorded(
            num['ctime'][0] * 10**9 + num['ctime'][1],
            num['mtime'][0] * 10**9 + num['mtime'][1], num['ino'][0],
            int(mode, 8), num['uid'][0], num['gid'][0], num['size'][0],
            blob)
    return found


def test_every_recorded_field_as_git_prints_it(repo):
    """ctime, mtime, inode, mode, owner, size and object name of each
    entry, and the index file's own time"""
    git(repo, 'update-index', '--refresh')
    index_time, found = recorded_files(repo)
    assert found == debug_records(repo)
    assert index_time == os.stat(repo / '.git' / 'index').st_mtime_ns
    assert len(found) == 34


def test_records_not_read_where_times_are_not(repo, monkeypatch):
    """recorded_files gives None where file_times does (another index
    file, a version 4 index), and leaves out what file_times leaves out"""
    git(repo, 'sparse-checkout', 'set', 'd0')
    found = recorded_files(repo)[1]
    assert set(found) == set(file_times(repo))
    assert not any(p.startswith('d1/') for p in found)
    git(repo, 'sparse-checkout', 'disable')
    monkeypatch.setenv('GIT_INDEX_FILE', str(repo / '.git' / 'index'))
    assert recorded_files(repo) is None
    monkeypatch.delenv('GIT_INDEX_FILE')
    git(repo, 'update-index', '--index-version', '4')
    assert recorded_files(repo) is None
