"""worktree-merge and worktree-sync with a git older than 2.38, which
cannot compute a merge's conflicts in advance (no ``merge-tree
--write-tree``): the merge is attempted and undone on a conflict

The older git is this machine's git with that one feature taken away, as
git 2.37 answers it: everything else is passed to the real git.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess

import pytest
from datalad import api as dl

from tests.helpers import (
    CODE,
    DERIVED,
    by_path,
    clean,
    commit_file,
    git,
    recorded,
    snapshot,
)
from tests.commands.test_worktree_merge import (
    assert_left_as_it_was,
    batch,
    content_conflict,
    merge,
    pointer_conflict,
)

OLD_GIT = """#!/bin/sh
for arg in "$@"; do
    if [ "$arg" = --write-tree ]; then
        echo "error: unknown option \\`write-tree'" >&2
        exit 129
    fi
done
exec {git} "$@"
"""


@pytest.fixture
def old_git(tmp_path, monkeypatch):
    """A git without ``merge-tree --write-tree`` first on PATH"""
    bindir = tmp_path / 'old-git'
    bindir.mkdir()
    wrapper = bindir / 'git'
    wrapper.write_text(OLD_GIT.format(git=shutil.which('git')))
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    return wrapper


def test_the_emulated_git_lacks_the_feature(old_git, origin):
    res = subprocess.run(['git', 'merge-tree', '--write-tree', 'HEAD',
                          'HEAD'], cwd=origin, capture_output=True, text=True)
    assert res.returncode == 129 and 'write-tree' in res.stderr


@pytest.mark.slow
def test_content_conflict_is_undone(origin, runs, old_git):
    batch(runs)
    content_conflict(origin, runs)
    before = snapshot(origin / DERIVED)
    res = merge(origin, runs, recursive=True)
    assert res[DERIVED]['status'] == 'impossible'
    assert res[DERIVED]['conflicts'] == ['notes.txt']
    assert 'the merge was undone' in res[DERIVED]['message']
    assert res['.']['status'] == 'impossible'
    assert_left_as_it_was(origin, before)
    assert not (origin / DERIVED / '.git' / 'MERGE_HEAD').exists()


@pytest.mark.slow
def test_pointer_conflict_is_still_resolved(origin, runs, old_git):
    batch(runs)
    pointer_conflict(origin)
    res = merge(origin, runs, recursive=True)
    assert res[DERIVED]['status'] == 'ok' and res[DERIVED]['how'] == 'merge'
    assert recorded(origin / DERIVED, 'code') == \
        git(origin / CODE, 'rev-parse', 'HEAD')
    assert clean(origin)


def test_sync_conflict_is_undone(origin, runs, old_git):
    commit_file(runs / DERIVED, 'notes.txt', 'runs notes\n', 'notes in runs')
    commit_file(origin / DERIVED, 'notes.txt', 'main notes\n', 'notes in main')
    before = snapshot(runs / DERIVED)
    res = by_path(dl.worktree_sync(dataset=runs / DERIVED, on_failure='ignore',
                                   result_renderer='disabled',
                                   return_type='list'), runs / DERIVED)
    assert res['.']['status'] == 'impossible'
    assert 'the merge was undone' in res['.']['message']
    assert snapshot(runs / DERIVED) == before
