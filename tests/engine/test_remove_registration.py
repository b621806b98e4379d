"""worktree-remove's last look at a registration, right before it deletes:
also where git (2.48 or later, worktree.useRelativePaths) recorded the
worktree's place as a path relative to its registration"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from datalad_worktree.engine.remove.execute import still_registered


def git(repo: Path, *args: str) -> str:
    return subprocess.run(['git', *args], cwd=repo, check=True,
                          capture_output=True, text=True).stdout


def test_a_relative_registration_is_still_registered(tmp_path):
    repo = tmp_path / 'repo'
    repo.mkdir()
    git(repo, 'init', '-q')
    git(repo, 'commit', '-q', '--allow-empty', '-m', 'first')
    wt = tmp_path / 'wt'
    git(repo, 'worktree', 'add', '-q', '--detach', str(wt))
    admin = repo / '.git' / 'worktrees' / 'wt'
    assert still_registered(repo, wt)
    # what git 2.48 writes with worktree.useRelativePaths
    (admin / 'gitdir').write_text(
        os.path.relpath(wt / '.git', admin) + '\n')
    assert still_registered(repo, wt)
    # a registration of another place is not this worktree's
    (admin / 'gitdir').write_text(
        os.path.relpath(tmp_path / 'elsewhere' / '.git', admin) + '\n')
    assert not still_registered(repo, wt)
