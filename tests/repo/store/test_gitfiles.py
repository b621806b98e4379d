"""HEAD and branch tips read from git's files agree with git itself, in
every place git keeps them, and anything unusual is left to git"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from datalad_worktree.repo.store.refs import (
    Head,
    branch_commit,
    git_dirs,
    newest_head_position,
    read_head,
)
from datalad_worktree.repo.annex import has_annex_branch
from datalad_worktree.repo.queries import (
    branch_tip,
    current_branch,
    head_commit,
    newest_head_entry,
)


def git(repo: Path, *args: str) -> str:
    return subprocess.run(['git', *args], cwd=repo, check=True,
                          capture_output=True, text=True).stdout.strip()


def from_git(repo: Path) -> Head:
    """HEAD as git reports it"""
    branch = subprocess.run(['git', 'symbolic-ref', '-q', 'HEAD'], cwd=repo,
                            capture_output=True, text=True).stdout.strip()
    commit = subprocess.run(['git', 'rev-parse', '--verify', '-q', 'HEAD'],
                            cwd=repo, capture_output=True,
                            text=True).stdout.strip()
    return Head(branch=branch or None, commit=commit or None)


def from_files(repo: Path) -> Head | None:
    return read_head(*git_dirs(repo))


@pytest.fixture
def repo(tmp_path):
    """A repository with two commits on main and a second branch"""
    path = tmp_path / 'repo'
    path.mkdir()
    git(path, 'init', '-q', '-b', 'main')
    for i in range(2):
        (path / 'f').write_text(str(i))
        git(path, 'add', 'f')
        git(path, 'commit', '-q', '-m', f'c{i}')
    git(path, 'branch', 'other', 'HEAD~1')
    return path


def test_loose_and_packed_branches_read_as_git_reads_them(repo):
    assert from_files(repo) == from_git(repo)
    common = git_dirs(repo)[1]
    assert branch_commit(common, 'refs/heads/other') == \
        git(repo, 'rev-parse', 'other')
    git(repo, 'pack-refs', '--all')
    assert not (common / 'refs' / 'heads' / 'main').exists()
    assert from_files(repo) == from_git(repo)
    assert branch_tip(repo, 'other') == git(repo, 'rev-parse', 'other')
    # a loose ref written after packing wins over the packed line
    git(repo, 'update-ref', 'refs/heads/other', 'HEAD')
    assert branch_tip(repo, 'other') == git(repo, 'rev-parse', 'HEAD')
    assert branch_commit(common, 'refs/heads/none') == ''
    assert branch_tip(repo, 'none') is None


def test_detached_and_unborn(repo, tmp_path):
    git(repo, 'checkout', '-q', '--detach', 'other')
    assert from_files(repo) == Head(None, git(repo, 'rev-parse', 'other'))
    assert current_branch(repo) is None
    git(repo, 'checkout', '-q', '--orphan', 'fresh')
    assert from_files(repo) == Head('refs/heads/fresh', None) == \
        from_git(repo)
    assert head_commit(repo) is None
    assert current_branch(repo) == 'fresh'


def test_linked_worktree_sees_a_branch_moved_elsewhere(repo, tmp_path):
    """A linked worktree's HEAD is in its own git directory, its branch in
    the common one; a branch moved there by update-ref (as Jujutsu does)
    is seen at once"""
    linked = tmp_path / 'linked'
    git(repo, 'worktree', 'add', '-q', str(linked), 'other')
    assert from_files(linked) == from_git(linked)
    git(repo, 'update-ref', 'refs/heads/other', 'main')
    assert head_commit(linked) == git(repo, 'rev-parse', 'main') == \
        from_git(linked).commit
    git(linked, 'checkout', '-q', '--detach')
    assert from_files(linked) == from_git(linked)


def test_absorbed_git_directory(repo, tmp_path):
    """A subdataset whose git directory is absorbed into its parent's
    .git/modules (a .git file naming it, relatively)"""
    parent = tmp_path / 'parent'
    parent.mkdir()
    git(parent, 'init', '-q', '-b', 'main')
    git(parent, '-c', 'protocol.file.allow=always', 'submodule', 'add', '-q',
        str(repo), 'sub')
    sub = parent / 'sub'
    assert (sub / '.git').is_file()
    assert from_files(sub) == from_git(sub)
    assert current_branch(sub) == git(sub, 'branch', '--show-current')


def test_unusual_storage_is_left_to_git(repo):
    """reftable storage, a HEAD naming something other than a branch, and
    a ref file git would not write give None; the repo functions then ask
    git and still answer right"""
    common = git_dirs(repo)[1]
    expected = from_git(repo)
    (common / 'reftable').mkdir()
    assert from_files(repo) is None
    assert head_commit(repo) == expected.commit
    (common / 'reftable').rmdir()
    git(repo, 'symbolic-ref', 'HEAD', 'refs/remotes/x')
    assert from_files(repo) is None
    git(repo, 'symbolic-ref', 'HEAD', 'refs/heads/main')
    (common / 'refs' / 'heads' / 'main').write_text('garbage\n')
    assert from_files(repo) is None


def test_annex_branch_from_files_or_git(repo):
    assert not has_annex_branch(repo)
    git(repo, 'branch', 'git-annex')
    assert has_annex_branch(repo)
    git(repo, 'branch', '-D', 'git-annex')
    git(repo, 'update-ref', 'refs/remotes/origin/git-annex', 'HEAD')
    assert has_annex_branch(repo)


def reflog_from_git(repo: Path) -> list[str]:
    out = subprocess.run(['git', 'log', '-g', '-n', '1', '--format=%H',
                          'HEAD', '--'], cwd=repo, capture_output=True,
                         text=True).stdout.split()
    return out


def test_newest_head_reflog_entry_as_git_shows_it(repo, tmp_path):
    """The newest entry of a worktree's own HEAD reflog, read from its
    file, is what ``git log -g -n 1 HEAD`` shows: in the main worktree, in
    a linked one (whose reflog is its own), after a commit, a checkout, and
    a branch moved underneath it by update-ref elsewhere (which does not
    log into its HEAD reflog)"""
    linked = tmp_path / 'linked'
    git(repo, 'worktree', 'add', '-q', str(linked), 'other')
    for wt in (repo, linked):
        assert newest_head_entry(wt) == reflog_from_git(wt) == \
            [git(wt, 'rev-parse', 'HEAD')]
    (linked / 'g').write_text('g')
    git(linked, 'add', 'g')
    git(linked, 'commit', '-q', '-m', 'g')
    git(repo, 'checkout', '-q', '--detach', 'HEAD~1')
    for wt in (repo, linked):
        assert newest_head_entry(wt) == reflog_from_git(wt)
    before = newest_head_entry(linked)
    git(repo, 'update-ref', 'refs/heads/other', 'main')
    assert newest_head_entry(linked) == reflog_from_git(linked) == before
    assert before != [git(linked, 'rev-parse', 'HEAD')]


def test_a_head_reflog_not_read_with_certainty_is_left_to_git(repo):
    """None from the file where an entry is being written, a line is not
    what git writes, the storage is reftable, or there is no entry (git
    makes one up from HEAD then); the query then asks git and still
    answers as git does"""
    gitdir, common = git_dirs(repo)
    log = gitdir / 'logs' / 'HEAD'
    expected = reflog_from_git(repo)
    text = log.read_bytes()
    log.write_bytes(text + b'0' * 40 + b' ' + b'1' * 40)  # no newline yet
    assert newest_head_position(gitdir, common) is None
    assert newest_head_entry(repo) == reflog_from_git(repo)
    log.write_bytes(text + b'garbage\n')
    assert newest_head_position(gitdir, common) is None
    log.write_bytes(text + b'x' * 10000 + b'\n')
    assert newest_head_position(gitdir, common) is None
    log.write_bytes(text)
    assert newest_head_position(gitdir, common) == expected[0]
    (common / 'reftable').mkdir()
    assert newest_head_position(gitdir, common) is None
    assert newest_head_entry(repo) == expected
    (common / 'reftable').rmdir()
    git(repo, 'commit', '-q', '--allow-empty', '-m', 'c2')
    for emptied in (lambda: log.write_bytes(b''), log.unlink):
        emptied()
        assert newest_head_position(gitdir, common) is None
        assert newest_head_entry(repo) == reflog_from_git(repo) == \
            [git(repo, 'rev-parse', 'HEAD')]
