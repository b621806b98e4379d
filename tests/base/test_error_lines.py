"""What a message keeps of git's stderr: its reason, not the hint or the
'Aborting' after it; for a repository another user owns, the reason and
the fix, also where git's own message does not say so"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from datalad_next.runners import CommandError

from datalad_worktree.base.outcome import Refusal, error_line, failure
from datalad_worktree.repo.queries import refused_as_not_owned
from datalad_worktree.runners import git as gitrun
from tests.helpers import commit_file, git

NOBODY = 65534


def repo_at(path: Path) -> Path:
    path.mkdir()
    git(path, 'init', '-q', '-b', 'main')
    commit_file(path, 'file.txt', 'one\n', 'one')
    return path


def test_the_reason_and_not_the_last_line(tmp_path):
    repo = repo_at(tmp_path / 'repo')
    git(repo, 'checkout', '-q', '-b', 'other')
    commit_file(repo, 'file.txt', 'two\n', 'two')
    git(repo, 'checkout', '-q', 'main')
    (repo / 'file.txt').write_text('mine\n')
    with pytest.raises(CommandError) as e:
        gitrun.run(repo, ['merge', 'other'])
    assert e.value.stderr.rstrip().endswith('Aborting')
    line = error_line(e.value)
    assert line.startswith('error: Your local changes to the following '
                           'files would be overwritten by merge'), line
    # with the files, which git gives on the indented lines after it
    assert 'merge: file.txt' in line and 'Please' not in line, line
    assert (repo / 'file.txt').read_text() == 'mine\n'


def test_a_reason_goes_on_on_indented_lines(tmp_path):
    """git names what it does not know on the line after its reason"""
    repo = repo_at(tmp_path / 'repo')
    git(repo, 'config', 'core.repositoryformatversion', '1')
    git(repo, 'config', 'extensions.refstorage', 'reftable')
    with pytest.raises(CommandError) as e:
        gitrun.run(repo, ['status'])
    assert error_line(e.value) == \
        'fatal: unknown repository extension found: refstorage'


@pytest.mark.root
def test_a_repository_that_another_user_owns(tmp_path, monkeypatch):
    if os.geteuid() != 0:
        pytest.skip('needs root, to give a repository to another user')
    repo = repo_at(tmp_path / 'theirs')
    for folder, dirs, files in os.walk(repo):
        for name in [folder, *(os.path.join(folder, n) for n in dirs + files)]:
            os.lchown(name, NOBODY, NOBODY)
    # git config takes it for no repository at all, and says only that
    with pytest.raises(CommandError) as e:
        gitrun.run(repo, ['config', '--blob', 'HEAD:file.txt', '--list'])
    assert 'can only be used inside a git repository' in e.value.stderr
    fix = f'git config --global --add safe.directory {repo}'
    line = error_line(e.value)
    assert line.startswith(f'git refuses the repository at {repo}, which '
                           'belongs to nobody, not to you'), line
    assert line.endswith(f'to trust it: {fix}')
    outcome = failure(repo, e.value, 'cannot look at it')
    assert outcome.status == 'impossible'
    assert outcome.refusal is Refusal.DUBIOUS_OWNERSHIP
    assert outcome.message == f'cannot look at it: {line}'
    assert outcome.keys['safe_directory'] == str(repo)
    assert refused_as_not_owned(repo).fix == fix
    # trusted (on git's command line here, as the fix does globally)
    monkeypatch.setenv('GIT_CONFIG_COUNT', '1')
    monkeypatch.setenv('GIT_CONFIG_KEY_0', 'safe.directory')
    monkeypatch.setenv('GIT_CONFIG_VALUE_0', str(repo))
    assert refused_as_not_owned(repo) is None
    assert gitrun.text(repo, ['rev-parse', '--git-dir']) == '.git\n'
