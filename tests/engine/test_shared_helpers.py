"""The helpers that replaced copies: DataLad's rmtree for the trees that
git-annex made read-only, and one reading of PATH/SOURCE arguments"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from pathlib import Path

import pytest

from datalad_worktree.engine.named import is_pattern, named
from datalad_worktree.hierarchy.clones import delete_clone

NOBODY = 65534


def as_user(work, uid: int | None) -> bool:
    """Whether ``work()`` succeeds, run as the user ``uid`` (in a forked
    process; None: as we are)"""
    if uid is None:
        try:
            work()
        except OSError:
            return False
        return True
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the child)
        code = 1
        try:
            os.setgid(uid)
            os.setuid(uid)
            work()
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == 0


@pytest.fixture
def place(tmp_path):
    """A directory for trees to delete, and the user to delete them as:
    where the tests run as root (who may delete anything), 'nobody', in a
    directory it can reach, with the trees its own"""
    if os.geteuid() != 0:
        yield tmp_path, None
        return
    base = Path(tempfile.mkdtemp(prefix='worktree-rmtree-'))
    base.chmod(0o777)
    try:
        yield base, NOBODY
    finally:
        shutil.rmtree(base)


def read_only_tree(root: Path, owner: int | None) -> Path:
    """A tree like git-annex's object directories: read-only directories
    and files, owned by ``owner`` (where given)"""
    leaf = root / 'annex' / 'objects' / 'Xk' / 'Pq' / 'KEY'
    leaf.mkdir(parents=True)
    (leaf / 'KEY').write_text('content\n')
    for folder, dirs, files in os.walk(root, topdown=False):
        for name in files:
            os.chmod(Path(folder) / name, 0o444)
        if Path(folder) != root:
            os.chmod(folder, 0o555)
        if owner is not None:
            for name in dirs + files:
                os.chown(Path(folder) / name, owner, owner)
    if owner is not None:
        os.chown(root, owner, owner)
    return root


def test_a_clone_with_read_only_directories_is_deleted(place):
    base, user = place
    # without making directories writable, the tree cannot be deleted
    control = read_only_tree(base / 'control', user)
    assert not as_user(lambda: shutil.rmtree(control), user)
    assert control.exists()
    clone = read_only_tree(base / 'clone', user)
    trash = base / 'trash'
    assert as_user(lambda: delete_clone(clone, trash), user)
    assert not clone.exists() and not trash.exists()
    # what an interrupted deletion left as trash goes first
    clone = read_only_tree(base / 'clone', user)
    read_only_tree(trash, user)
    assert as_user(lambda: delete_clone(clone, trash), user)
    assert not clone.exists() and not trash.exists()
    for folder, _, _ in os.walk(control):
        os.chmod(folder, stat.S_IRWXU)


def test_an_existing_path_wins_over_a_pattern(tmp_path):
    def place(text):
        return tmp_path / text

    (tmp_path / 'job-[1]').mkdir()
    (tmp_path / 'gone*').symlink_to(tmp_path / 'nowhere')
    assert is_pattern('job-*') and not is_pattern('job-1')
    existing = named('job-[1]', place)
    assert existing.exists and not existing.pattern
    assert existing.path == tmp_path / 'job-[1]'
    # a symbolic link is a path, also where it leads nowhere
    assert not named('gone*', place).pattern
    assert named('job-*', place).pattern
    assert not named('job-2', place).pattern
