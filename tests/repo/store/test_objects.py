"""git objects read from files agree with git itself: loose, packed,
packed as deltas against an offset or an object name; anything they cannot
read with certainty is left to git"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from datalad_worktree.repo.store.objects import (
    _size,
    commit_tree,
    may_hold_pointers,
    read_object,
    tree_entry,
    tree_files,
)
from datalad_worktree.repo.records import (
    gitlinks,
    submodule_paths,
)


def git(repo: Path, *args: str, raw: bool = False):
    out = subprocess.run(['git', *args], cwd=repo, check=True,
                         capture_output=True).stdout
    return out if raw else out.decode().strip()


@pytest.fixture
def repo(tmp_path):
    """Forty commits of a growing text file (so that packs hold deltas),
    a nested directory, a .gitmodules and two gitlinks"""
    path = tmp_path / 'repo'
    path.mkdir()
    git(path, 'init', '-q', '-b', 'main')
    (path / 'sub' / 'deeper').mkdir(parents=True)
    lines = []
    for i in range(40):
        lines.append(f'line {i} ' + 'x' * (i % 7) * 10)
        (path / 'sub' / 'deeper' / 'notes.txt').write_text('\n'.join(lines))
        git(path, 'add', '.')
        git(path, 'commit', '-q', '-m', f'commit {i}')
    head = git(path, 'rev-parse', 'HEAD')
    (path / '.gitmodules').write_text(
        '[submodule "data/raw"]\n\tpath = data/raw\n\turl = ./data/raw\n'
        '[submodule "code"]\n\tpath = code\n\turl = ./code\n')
    git(path, 'add', '.gitmodules')
    git(path, 'update-index', '--add', '--cacheinfo',
        f'160000,{head},data/raw')
    git(path, 'update-index', '--add', '--cacheinfo', f'160000,{head},code')
    git(path, 'commit', '-q', '-m', 'subdatasets')
    return path


def all_objects(repo: Path) -> list[str]:
    return [line.split()[0] for line in
            git(repo, 'rev-list', '--objects', '--all').splitlines()]


def agrees_with_git(repo: Path) -> None:
    objects = repo / '.git' / 'objects'
    names = all_objects(repo)
    assert len(names) > 100
    batch = subprocess.run(['git', 'cat-file', '--batch'], cwd=repo,
                           input='\n'.join(names).encode() + b'\n',
                           check=True, capture_output=True).stdout
    for name in names:
        header, _, batch = batch.partition(b'\n')
        _, kind, size = header.split()
        content, batch = batch[:int(size)], batch[int(size) + 1:]
        assert read_object(objects, name) == (kind, content), name
        assert _size(objects, name) == int(size), name
    head = git(repo, 'rev-parse', 'HEAD')
    tree = commit_tree(objects, head)
    assert tree == git(repo, 'rev-parse', 'HEAD^{tree}')
    for path in ('sub/deeper/notes.txt', 'code', 'data/raw', '.gitmodules'):
        mode, _, rest = git(repo, 'ls-tree', 'HEAD', '--', path).partition(
            ' ')
        assert tree_entry(objects, tree, path) == (
            mode.encode(), rest.split()[1].split('\t')[0])
    listed = [line.split('\t') for line in git(
        repo, 'ls-tree', '-r', '-l', tree).splitlines()]
    assert sorted(tree_files(objects, tree, 1000)) == sorted(
        (path, *meta.split()[::2], int(meta.split()[3]))
        for meta, path in listed if meta.split()[0] != '160000')
    assert tree_files(objects, tree, 1) is None
    assert tree_entry(objects, tree, 'sub/missing') is False
    assert tree_entry(objects, tree, 'sub/deeper/notes.txt/x') is False
    assert tree_entry(objects, tree, '../x') is None


def packs_with_deltas(repo: Path) -> bool:
    listing = git(repo, 'verify-pack', '-v', *map(
        str, (repo / '.git' / 'objects' / 'pack').glob('*.idx')))
    return any(len(line.split()) >= 7 for line in listing.splitlines()
               if line[:40].isalnum())


def test_loose_objects(repo):
    assert not list((repo / '.git' / 'objects' / 'pack').glob('*.pack'))
    agrees_with_git(repo)


def test_packed_with_offset_deltas(repo):
    git(repo, 'repack', '-a', '-d', '-q', '--depth=50', '--window=50')
    assert packs_with_deltas(repo)
    agrees_with_git(repo)


def test_packed_with_name_deltas(repo):
    git(repo, '-c', 'repack.useDeltaBaseOffset=false', 'repack', '-a', '-d',
        '-q', '--depth=50', '--window=50')
    assert packs_with_deltas(repo)
    agrees_with_git(repo)


def test_recorded_subdatasets_from_files_equal_git(repo):
    """What the hierarchy walk asks: the gitlinks and whether a commit has
    a .gitmodules, from files, loose and packed"""
    recorded = git(repo, 'rev-parse', 'HEAD~1')
    expected = {'code': recorded, 'data/raw': recorded}
    for _ in range(2):
        assert gitlinks(repo, 'HEAD', ['code', 'data/raw', 'sub']) == \
            expected
        assert sorted(submodule_paths(repo, 'HEAD')) == ['code', 'data/raw']
        assert submodule_paths(repo, recorded) == []
        git(repo, 'repack', '-a', '-d', '-q')


def test_what_cannot_be_read_is_left_to_git(repo):
    objects = repo / '.git' / 'objects'
    head = git(repo, 'rev-parse', 'HEAD')
    assert read_object(objects, 'a' * 64) is None
    assert read_object(objects, 'a' * 40) is None
    # an object whose content does not match its name
    loose = objects / head[:2] / head[2:]
    other = all_objects(repo)[1]
    damaged = (objects / other[:2] / other[2:]).read_bytes()
    loose.chmod(0o644)
    loose.write_bytes(damaged)
    assert read_object(objects, head) is None
    # packed objects behind alternates are not looked for here
    git(repo, 'repack', '-a', '-d', '-q')
    (objects / 'info' / 'alternates').write_text('/nonexistent\n')
    assert read_object(objects, head) is None


def test_pointer_files_are_found_in_every_form(repo):
    """A commit with an unlocked annexed file (a blob that is a git-annex
    pointer) is told from one without, loose and packed, also when the
    pointer is a delta; a tree with more files than allowed is not
    vouched for"""
    objects = repo / '.git' / 'objects'
    clean = git(repo, 'rev-parse', 'HEAD^{tree}')
    assert not may_hold_pointers(objects, clean, 1000)
    assert may_hold_pointers(objects, clean, 1)
    (repo / 'sub' / 'deeper' / 'unlocked.dat').write_text(
        '/annex/objects/SHA256E-s5--' + 'a' * 64 + '.dat\n')
    git(repo, 'add', 'sub/deeper/unlocked.dat')
    git(repo, 'commit', '-q', '-m', 'an unlocked file')
    pointer = git(repo, 'rev-parse', 'HEAD^{tree}')
    assert may_hold_pointers(objects, pointer, 1000)
    git(repo, 'repack', '-a', '-d', '-q', '--depth=50', '--window=50')
    assert not may_hold_pointers(objects, clean, 1000)
    assert may_hold_pointers(objects, pointer, 1000)
    assert may_hold_pointers(objects, 'b' * 40, 1000)
