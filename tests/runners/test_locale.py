"""A user whose git speaks another language: every git that the package
starts gives its messages in English (the C locale), which the lock retry
reads, while the character type stays the user's (git-annex, under git,
needs a UTF-8 one for file names that are not ASCII)

Debian's git ships German messages; where this machine's git has none,
the tests that need them are skipped.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import threading
from pathlib import Path

import pytest
from datalad_next.runners import CommandError

from datalad_worktree.runners import git as gitlayer
from datalad_worktree.runners.locks import busy, retry_on_lock

from tests.helpers import add, git
from tests.integration import test_concurrency
from tests.integration.test_concurrency import (
    test_many_jobs_add_worktrees_and_run_at_the_same_moment as many_jobs,
)

GERMAN = {'LANGUAGE': 'de', 'LC_ALL': 'C.UTF-8'}
"""A user's locale with German messages (LANGUAGE, which GNU gettext
prefers to every locale variable) and an LC_ALL, which wins over
LC_MESSAGES, of the one UTF-8 locale every machine has"""


def speaks_german() -> bool:
    """Whether git, in the GERMAN locale, says 'not a git repository' in
    German here"""
    out = subprocess.run(['git', 'rev-parse', '--git-dir'], cwd='/',
                         capture_output=True, text=True,
                         env=dict(os.environ, GIT_CEILING_DIRECTORIES='/',
                                  **GERMAN))
    return 'Git-Repository' in out.stderr


@pytest.fixture
def german(monkeypatch):
    """This process, and every process it starts, in the GERMAN locale"""
    for name, value in GERMAN.items():
        monkeypatch.setenv(name, value)
    if not speaks_german():
        pytest.skip('git has no German messages here')


@pytest.fixture
def repo(tmp_path) -> Path:
    path = tmp_path / 'repo'
    subprocess.run(['git', 'init', '-q', '-b', 'main', str(path)], check=True)
    subprocess.run(['git', 'commit', '-q', '--allow-empty', '-m', 'start'],
                   cwd=path, check=True)
    return path


def test_the_environment_changes_only_the_messages(monkeypatch):
    """LANGUAGE goes, LC_ALL becomes LANG (the LC_* it overrode go with
    it), LC_MESSAGES is C; without LC_ALL, the user's LANG and LC_* stay"""
    monkeypatch.setenv('LANGUAGE', 'de:fr')
    monkeypatch.setenv('LC_ALL', 'de_DE.UTF-8')
    monkeypatch.setenv('LC_CTYPE', 'fr_FR.UTF-8')
    monkeypatch.setenv('LANG', 'en_US.UTF-8')
    env = gitlayer.environment({'GIT_INDEX_FILE': 'x'})
    assert 'LANGUAGE' not in env and 'LC_ALL' not in env
    assert 'LC_CTYPE' not in env
    assert (env['LANG'], env['LC_MESSAGES'], env['GIT_INDEX_FILE']) == \
        ('de_DE.UTF-8', 'C', 'x')
    monkeypatch.delenv('LC_ALL')
    env = gitlayer.environment()
    assert (env['LANG'], env['LC_CTYPE'], env['LC_MESSAGES']) == \
        ('en_US.UTF-8', 'fr_FR.UTF-8', 'C')
    assert 'LANGUAGE' not in env


def test_what_git_passes_on_keeps_the_utf8_character_type(german, repo):
    """The processes git starts (git-annex's filter and hooks among them)
    get the user's UTF-8 character type and English messages"""
    script = ('import locale, os; locale.setlocale(locale.LC_ALL, ""); '
              'print(locale.nl_langinfo(locale.CODESET)); '
              'print(locale.setlocale(locale.LC_MESSAGES)); '
              'print(os.environ.get("LANGUAGE"))')
    out = gitlayer.lines(repo, ['-c', f'alias.probe=!python3 -c \'{script}\'',
                                'probe'])
    assert out == ['UTF-8', 'C', 'None']


@pytest.mark.parametrize('held', ['config', 'branch', 'registration'])
def test_a_german_gits_lock_failure_is_busy_through_the_facade(german, repo,
                                                               held):
    """Each failure that ``busy`` knows (a lock of the configuration, of a
    branch, a worktree half registered by another git), from a git whose
    user reads German, run through the process layer"""
    common = repo / '.git'
    if held == 'config':
        (common / 'config.lock').write_text('')
        args = ['config', 'x.y', 'z']
    elif held == 'branch':
        (common / 'refs' / 'heads' / 'job.lock').write_text('')
        args = ['update-ref', 'refs/heads/job', 'HEAD']
    else:
        half = common / 'worktrees' / 'half'
        half.mkdir(parents=True)
        (half / 'gitdir').write_text(f'{repo.parent / "half"}/.git\n')
        (half / 'HEAD').write_text('ref: refs/heads/main\n')
        (half / 'commondir').write_text('')
        args = ['worktree', 'add', '-q', '--detach',
                str(repo.parent / 'wt')]
    with pytest.raises(CommandError) as failed:
        gitlayer.run(repo, args)
    assert busy(failed.value), failed.value.stderr
    # the same git started otherwise speaks German, which is not read
    direct = subprocess.run(['git', *args], cwd=repo, capture_output=True,
                            text=True)
    assert direct.returncode
    assert not busy(CommandError(cmd=args, code=direct.returncode,
                                 stderr=direct.stderr)), direct.stderr


def test_retry_on_lock_waits_for_a_german_gits_lock(german, repo):
    lock = repo / '.git' / 'config.lock'
    lock.write_text('')
    threading.Timer(0.5, lock.unlink).start()
    retry_on_lock(lambda: gitlayer.run(
        repo, ['config', '--local', 'x.y', 'true']), timeout=30)
    assert git(repo, 'config', 'x.y') == 'true'


GERMAN_JOBS = 8
"""How many jobs the German scale-out runs at once, each with a git that
speaks German (``test_concurrency`` runs 32 in English, which meet each
other's locks; the deterministic lock tests of this module prove that the
German retry waits)"""


@pytest.mark.reliability
def test_many_jobs_at_the_same_moment_in_german(german, origin, tmp_path,
                                                monkeypatch):
    """The scale-out scenario of ``test_concurrency``, with
    ``GERMAN_JOBS`` jobs, every job's datalad (and git) in the German
    locale: every job's worktree and run made, as in English"""
    monkeypatch.setattr(test_concurrency, 'JOBS', GERMAN_JOBS)
    many_jobs(origin, tmp_path)


ANOTHER_GIT = """#!/bin/sh
# git, with another git registering the worktree HALF until the first
# 'git worktree add' has met it
case " $* " in
*" worktree add "*)
    if [ -e "{half}" ]; then
        "{git}" "$@"
        code=$?
        rm -rf "{half}"
        exit $code
    fi
    ;;
esac
exec "{git}" "$@"
"""


def test_add_waits_for_a_german_gits_half_made_worktree(german, origin,
                                                        tmp_path,
                                                        monkeypatch):
    """worktree-add's ``git worktree add`` meets a worktree that another
    git is registering (its commondir still empty), in German: it is told
    from a real failure, tried again once the other git is done, and the
    worktree is made"""
    half = origin / '.git' / 'worktrees' / 'half'
    half.mkdir(parents=True)
    (half / 'gitdir').write_text(f'{tmp_path / "half"}/.git\n')
    (half / 'HEAD').write_text('ref: refs/heads/main\n')
    (half / 'commondir').write_text('')
    bindir = tmp_path / 'another-git'
    bindir.mkdir()
    wrapper = bindir / 'git'
    wrapper.write_text(ANOTHER_GIT.format(half=half, git=shutil.which('git')))
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv('PATH', f"{bindir}{os.pathsep}{os.environ['PATH']}")
    res = add(origin, tmp_path / 'wt', branch='job')
    assert not half.exists()
    assert {r['status'] for r in res} <= {'ok', 'notneeded'}, res
    assert git(tmp_path / 'wt', 'branch', '--show-current') == 'job'
