"""Which commits of a linked worktree are unmerged work (real git): those
that only record subdataset states the main worktree's subdatasets
contain are not; every other commit is"""

from __future__ import annotations

import subprocess
from pathlib import Path

from datalad_worktree.hierarchy.unmerged import unmerged
from tests.helpers import commit_file, git


def record(repo: Path, path: str, commit: str, message: str) -> str:
    """Commit the gitlink ``path`` at ``commit`` in ``repo``, without a
    checkout of it; returns the new commit"""
    git(repo, 'update-index', '--add', '--cacheinfo',
        f'160000,{commit},{path}')
    git(repo, 'commit', '-q', '-m', message)
    return git(repo, 'rev-parse', 'HEAD')


def make(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A main worktree with the subdataset ``sub`` (its own repository, two
    commits) recorded at its first commit, and a linked worktree of it on
    branch ``wt``"""
    main = tmp_path / 'main'
    git(tmp_path, 'init', '-q', str(main))
    sub = main / 'sub'
    git(main, 'init', '-q', 'sub')
    first = commit_file(sub, 'a.txt', 'a\n', 'sub: first')
    commit_file(sub, 'b.txt', 'b\n', 'sub: second')
    commit_file(main, 'README', 'r\n', 'readme')
    record(main, 'sub', first, 'record sub')
    wt = tmp_path / 'wt'
    git(main, 'worktree', 'add', '-q', '-b', 'wt', str(wt))
    return main, sub, wt


def branch(repo: Path) -> str:
    return git(repo, 'symbolic-ref', '--short', 'HEAD')


def judged(main: Path, wt: Path):
    return unmerged(main, git(wt, 'rev-parse', 'HEAD'),
                    [git(main, 'rev-parse', 'HEAD')])


def test_records_of_what_main_contains_are_not_work(tmp_path):
    main, sub, wt = make(tmp_path)
    sync = record(wt, 'sub', git(sub, 'rev-parse', 'HEAD'),
                  'Record the subdatasets updated by worktree-sync')
    # main moves on; the sync's merge of it changes nothing of its own
    commit_file(main, 'news.txt', 'n\n', 'main moves on')
    git(wt, 'merge', '-q', '--no-ff', '--no-edit', branch(main))
    merge = git(wt, 'rev-parse', 'HEAD')
    found = judged(main, wt)
    assert set(found.commits) == {sync, merge}
    assert found.work == ()
    assert set(found.records_only) == {sync, merge}


def test_every_other_commit_is_work(tmp_path):
    main, sub, wt = make(tmp_path)
    head = git(sub, 'rev-parse', 'HEAD')
    # records a contained subdataset commit, and changes a file too
    git(wt, 'update-index', '--add', '--cacheinfo', f'160000,{head},sub')
    both = commit_file(wt, 'result.txt', 'r\n', 'result and sub')
    # records a subdataset commit that main's subdataset lacks
    git(sub, 'checkout', '-q', '-b', 'side', 'HEAD~1')
    side = commit_file(sub, 'side.txt', 's\n', 'sub: side')
    git(sub, 'checkout', '-q', '-')
    lacking = record(wt, 'sub', side, 'record side')
    # changes nothing at all: a note of the user's
    git(wt, 'commit', '-q', '--allow-empty', '-m', 'a note')
    note = git(wt, 'rev-parse', 'HEAD')
    # removes the subdataset
    git(wt, 'rm', '-q', '--cached', 'sub')
    git(wt, 'commit', '-q', '-m', 'drop sub')
    dropped = git(wt, 'rev-parse', 'HEAD')
    # records a subdataset that main has not installed
    other = record(wt, 'other', head, 'record other')
    found = judged(main, wt)
    assert set(found.work) == {both, lacking, note, dropped, other}
    assert found.records_only == ()


def test_a_merge_counts_for_what_it_changes_against_every_parent(tmp_path):
    main, _, wt = make(tmp_path)
    commit_file(main, 'README', 'main\n', 'main edits')
    commit_file(wt, 'README', 'worktree\n', 'worktree edits')
    conflicted = subprocess.run(['git', 'merge', '-q', '--no-edit',
                                 branch(main)], cwd=wt, capture_output=True,
                                check=False)
    assert conflicted.returncode == 1
    (wt / 'README').write_text('resolved\n')
    git(wt, 'add', 'README')
    git(wt, 'commit', '-q', '--no-edit')
    merge = git(wt, 'rev-parse', 'HEAD')
    assert merge in judged(main, wt).work


def test_branches_keep_commits_but_the_own_one(tmp_path):
    main, _, wt = make(tmp_path)
    mine = commit_file(wt, 'result.txt', 'r\n', 'result')
    head, base = mine, git(main, 'rev-parse', 'HEAD')
    assert unmerged(main, head, [base], 'wt', branches=True).work == (mine,)
    assert unmerged(main, head, [base], None, branches=True).commits == ()
    git(main, 'branch', 'kept', mine)
    assert unmerged(main, head, [base], 'wt', branches=True).commits == ()
