"""A run's journal tells a dead run of ours from a live one, and only a
dead one's leftovers are cleaned up (``runners.journal``,
``engine.recover``): a worktree it left half made (locked
'initializing'), the branch it made for it, and git's lock files

Each leftover is made with real git as a killed run leaves it; the journal
is written as a run writes it, with the identity of a process that is
gone, alive, or on another host with a fresh or a stale heartbeat.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from datalad_worktree.engine.recover import recover
from datalad_worktree.runners import journal
from datalad_worktree.runners.locks import git_running_in

from tests.helpers import commit_file, git


@pytest.fixture
def repo(tmp_path) -> Path:
    repo = tmp_path / 'repo'
    repo.mkdir()
    git(repo, 'init', '-q', '-b', 'main')
    commit_file(repo, 'README', 'hello\n', 'first')
    return repo


def gone_pid() -> int:
    """The process id of a process that ended"""
    proc = subprocess.Popen([sys.executable, '-c', 'pass'])
    proc.wait()
    return proc.pid


def write_journal(repo: Path, pid: int, entries: list, host: str = '',
                  start: str | None = None, age: float = 0.0) -> Path:
    """A journal as a run of process ``pid`` (on ``host``, default this
    one) writes it, its heartbeat ``age`` seconds old"""
    host = host or socket.gethostname()
    if start is None:
        start = journal.start_ticks(pid) or '1'
    path = repo / '.git' / journal.RUNS / f'{host}-{pid}-{start}.json'
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({
        'host': host, 'pid': pid, 'start': start, 'boot': journal.boot_id(),
        'command': 'worktree-add', 'since': time.time() - age - 5,
        'entries': entries}))
    then = time.time() - age
    os.utime(path, (then, then))
    return path


def half_made(repo: Path, target: Path) -> list:
    """A worktree on a new branch 'job', locked as git locks it while it
    makes one: what a run killed inside ``git worktree add`` leaves;
    the journal entries of that run"""
    commit = git(repo, 'rev-parse', 'HEAD')
    git(repo, 'worktree', 'add', '-q', '-b', 'job', str(target))
    git(repo, 'worktree', 'lock', '--reason', 'initializing', str(target))
    return [{'kind': 'worktree', 'repo': str(repo), 'target': str(target),
             'branch': 'job', 'new_branch': True, 'commit': commit,
             'mount_point': False, 'done': False}]


def git_started(repo: Path) -> subprocess.Popen:
    """A git process that works in ``repo`` until its stdin is closed,
    once it runs as git there (a process just forked runs as Python
    first: on a busy machine the test looked too early)"""
    live = subprocess.Popen(['git', 'cat-file', '--batch'], cwd=repo,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if Path(f'/proc/{live.pid}/comm').read_text().startswith('git'):
                return live
        except OSError:
            pass
        time.sleep(0.01)
    raise AssertionError('git never started')


def killed_before_checkout(repo: Path, target: Path) -> tuple[list, Path]:
    """A worktree on a new branch 'job' as git leaves it when killed after
    it registered it and before it set HEAD and checked out: locked
    'initializing', only the .git file in the directory, no index or
    reflog, HEAD the null id that git writes first; the journal entries of
    that run, and the worktree's git directory"""
    entries = half_made(repo, target)
    admin = Path(git(target, 'rev-parse', '--absolute-git-dir'))
    for path in target.iterdir():
        if path.name != '.git':
            path.unlink()
    for name in ('index', 'ORIG_HEAD', 'logs'):
        if (admin / name).is_dir():
            shutil.rmtree(admin / name)
        elif (admin / name).exists():
            (admin / name).unlink()
    (admin / 'HEAD').write_text('0' * 40 + '\n')
    return entries, admin


def registered(repo: Path) -> str:
    return git(repo, 'worktree', 'list', '--porcelain')


def test_dead_run_on_this_host_is_cleaned_up(repo, tmp_path):
    """A journal of a process that is gone: its half-made worktree, the
    branch made for it and its journal are removed"""
    target = tmp_path / 'job'
    entries = half_made(repo, target)
    path = write_journal(repo, gone_pid(), entries)
    notes = recover(repo)
    assert notes == []
    assert str(target) not in registered(repo)
    assert not target.exists()
    assert git(repo, 'branch', '--list', 'job') == ''
    assert not path.exists()
    assert list(path.parent.iterdir()) == []


def test_a_reused_process_id_is_not_the_run(repo, tmp_path):
    """The process id is alive, but with another start time: it is some
    other process, the run is dead"""
    target = tmp_path / 'job'
    entries = half_made(repo, target)
    write_journal(repo, os.getpid(), entries, start='1')
    recover(repo)
    assert str(target) not in registered(repo)


def test_live_run_on_this_host_is_left_alone(repo, tmp_path):
    """A journal of a process that lives (with its start time): nothing is
    touched, the journal stays"""
    target = tmp_path / 'job'
    entries = half_made(repo, target)
    live = subprocess.Popen(['sleep', '60'])
    try:
        path = write_journal(repo, live.pid, entries)
        before = registered(repo)
        assert recover(repo) == []
        assert registered(repo) == before
        assert 'locked initializing' in before
        assert (target / 'README').exists() and path.exists()
    finally:
        live.kill()
        live.wait()


@pytest.mark.parametrize('age, cleaned', [(5, False), (3600, True)])
def test_run_on_another_host_by_its_heartbeat(repo, tmp_path, age,
                                              cleaned):
    """A run of another host (a cluster node) lives while its heartbeat is
    younger than datalad.worktree.run.stale-after (600 s): a fresh one is
    left alone, a stale one cleaned up"""
    target = tmp_path / 'job'
    entries = half_made(repo, target)
    path = write_journal(repo, 4242, entries, host='node-17.cluster',
                         start='99', age=age)
    recover(repo)
    assert (str(target) not in registered(repo)) is cleaned
    assert target.exists() is not cleaned
    assert path.exists() is not cleaned


def test_stale_after_is_configurable(repo, tmp_path, monkeypatch):
    """datalad.worktree.run.stale-after (here from the environment, as
    DataLad reads it) shortens the wait for a dead node"""
    monkeypatch.setenv('DATALAD_WORKTREE_RUN_STALE__AFTER', '2')
    assert journal.stale_after() == 2
    target = tmp_path / 'job'
    write_journal(repo, 4242, half_made(repo, target),
                  host='node-17.cluster', start='99', age=5)
    recover(repo)
    assert str(target) not in registered(repo)
    monkeypatch.setenv('DATALAD_WORKTREE_RUN_STALE__AFTER', 'soon')
    assert journal.stale_after() == journal.STALE_AFTER


def test_users_files_in_a_half_made_worktree_are_kept(repo, tmp_path):
    """A file that git did not check out (the user's, or ignored) keeps
    the half-made worktree: registration, directory and branch stay, with
    a note; the refusal that follows says what to do"""
    target = tmp_path / 'job'
    entries = half_made(repo, target)
    (target / 'mine.txt').write_text('mine\n')
    write_journal(repo, gone_pid(), entries)
    notes = recover(repo)
    assert len(notes) == 1 and 'which were kept' in notes[0], notes
    assert (target / 'mine.txt').read_text() == 'mine\n'
    assert str(target) in registered(repo)
    assert git(repo, 'branch', '--list', 'job') != ''


def test_a_branch_that_moved_is_kept(repo, tmp_path):
    """The branch the dead run made is kept where it is no longer at the
    commit it was made at"""
    target = tmp_path / 'job'
    entries = half_made(repo, target)
    git(repo, 'worktree', 'unlock', str(target))
    git(repo, 'worktree', 'remove', str(target))
    commit_file(repo, 'more', 'more\n', 'second')
    git(repo, 'branch', '-f', 'job', 'HEAD')
    write_journal(repo, gone_pid(), entries)
    recover(repo)
    assert git(repo, 'rev-parse', 'job') == git(repo, 'rev-parse', 'HEAD')


def test_lock_files_of_a_dead_run_are_removed(repo):
    """index.lock and a ref's lock, made after the dead run started and
    while no git works in the repository, are removed; one older than the
    run is not"""
    old = repo / '.git' / 'packed-refs.lock'
    old.write_text('')
    os.utime(old, (time.time() - 3600,) * 2)
    index = repo / '.git' / 'index.lock'
    ref = repo / '.git' / 'refs' / 'heads' / 'main.lock'
    for lock in (index, ref):
        lock.write_text('')
    write_journal(repo, gone_pid(), [], age=0)
    notes = recover(repo)
    assert not index.exists() and not ref.exists()
    assert old.exists()
    assert len(notes) == 1 and 'index.lock' in notes[0]


def test_lock_files_stay_while_a_git_works_in_the_repository(repo):
    """A git process working in the repository (its current directory
    there) may hold the lock: nothing is removed"""
    index = repo / '.git' / 'index.lock'
    index.write_text('')
    live = git_started(repo)
    try:
        assert git_running_in(repo / '.git') is True
        write_journal(repo, gone_pid(), [])
        recover(repo)
        assert index.exists()
    finally:
        live.stdin.close()
        live.wait()
    assert git_running_in(repo / '.git') is False


def test_a_git_in_a_subdataset_does_not_count(repo):
    """A git working in a repository nested in the working tree (a
    subdataset) does not work in this one"""
    sub = repo / 'sub'
    sub.mkdir()
    git(sub, 'init', '-q')
    live = git_started(sub)
    try:
        assert git_running_in(repo / '.git') is False
        assert git_running_in(sub / '.git') is True
    finally:
        live.stdin.close()
        live.wait()


def test_run_journals_and_deletes_its_journal(repo):
    """A run writes its journal before it changes anything (host, process
    id, start time, command, entries) and deletes it as it ends"""
    common = repo / '.git'
    with journal.running('worktree-add') as (run, own):
        assert own
        index = journal.note(common, kind='worktree', target='/x')
        [record] = journal.records(common)
        assert run.is_mine(record)
        assert (record.host, record.pid) == (socket.gethostname(),
                                             os.getpid())
        assert record.start == journal.start_ticks(os.getpid())
        assert record.entries[0]['done'] is False
        journal.done(common, index)
        assert journal.records(common)[0].entries[0]['done'] is True
        with journal.running('worktree-sync') as (inner, own):
            assert inner is run and not own
    assert journal.records(common) == []


def test_a_worktree_killed_before_its_head_was_set(repo, tmp_path):
    """git registered the worktree (locked 'initializing', HEAD still the
    null id git writes first, HEAD.lock of the killed `update-ref HEAD`)
    and wrote its .git file, but checked out nothing: registration,
    lock file and directory go"""
    target = tmp_path / 'job'
    entries, admin = killed_before_checkout(repo, target)
    (admin / 'HEAD.lock').write_text('')
    assert 'HEAD 0000000000' in registered(repo)
    write_journal(repo, gone_pid(), entries)
    recover(repo)
    assert str(target) not in registered(repo)
    assert not target.exists() and not admin.exists()
    assert git(repo, 'branch', '--list', 'job') == ''


def test_a_dry_run_cleans_up_nothing(repo, tmp_path):
    """--dry-run changes nothing, also not what a dead run left"""
    target = tmp_path / 'job'
    path = write_journal(repo, gone_pid(), half_made(repo, target))
    with journal.running('worktree-add', dry_run=True):
        assert recover(repo) == []
    assert 'locked initializing' in registered(repo)
    assert path.exists()


def test_a_worktree_killed_while_git_wrote_its_commondir(repo, tmp_path):
    """git registered the worktree (locked 'initializing', its gitdir,
    .git file and null HEAD written: git writes HEAD just before
    commondir) and was killed while it wrote ``commondir``: the file is
    empty, git itself cannot read or unlock that worktree (nor list any),
    so registration, lock and directory go without it"""
    target = tmp_path / 'job'
    entries, admin = killed_before_checkout(repo, target)
    (admin / 'commondir').write_text('')
    broken = subprocess.run(['git', '-C', str(repo), 'worktree', 'list'],
                            capture_output=True, text=True)
    assert broken.returncode != 0 and 'commondir' in broken.stderr
    write_journal(repo, gone_pid(), entries)
    assert recover(repo) == []
    assert str(target) not in registered(repo)
    assert not target.exists() and not admin.exists()
    assert git(repo, 'branch', '--list', 'job') == ''


def test_a_commondir_killed_worktree_with_files_of_the_user(repo, tmp_path):
    """As above, but a file that git did not check out is in it: it is
    kept, and so are the registration and its lock, which the refusal
    that follows reports"""
    target = tmp_path / 'job'
    entries, admin = killed_before_checkout(repo, target)
    (target / 'mine.txt').write_text('keep me\n')
    (admin / 'commondir').write_text('')
    write_journal(repo, gone_pid(), entries)
    notes = recover(repo)
    assert len(notes) == 1 and 'were kept' in notes[0], notes
    assert (target / 'mine.txt').read_text() == 'keep me\n'
    assert (admin / 'locked').read_text().strip() == 'initializing'


def test_staged_changes_a_dead_run_set_aside_are_staged_again(repo):
    """A sync or merge that keeps the user's staged changes across a merge
    commit sets them aside in the index first (journaled); killed then,
    the next run stages them again: a staged edit (partly, the file has
    more on top), a staged new file and a staged deletion. A path the user
    staged otherwise since is left as it is"""
    from datalad_worktree.engine.integrate import staged_kept
    commit_file(repo, 'gone.txt', 'to be deleted\n', 'second')
    commit_file(repo, 'other.txt', 'other\n', 'third')
    (repo / 'README').write_text('staged\n')
    git(repo, 'add', 'README')
    (repo / 'README').write_text('staged\nand more, not staged\n')
    (repo / 'new.txt').write_text('new\n')
    git(repo, 'add', 'new.txt')
    git(repo, 'rm', '-q', 'gone.txt')
    (repo / 'other.txt').write_text('other, staged\n')
    git(repo, 'add', 'other.txt')
    before = (git(repo, 'diff', '--cached'), git(repo, 'diff'))
    common = repo / '.git'
    with journal.running('worktree-merge'):
        with staged_kept(repo):
            # what the run journaled, as it set them aside
            [record] = journal.records(common)
            [entry] = record.entries
            assert entry['kind'] == 'staged' and not entry['done']
            assert git(repo, 'diff', '--cached') == ''
            journaled = json.loads((common / journal.RUNS /
                                    record.path.name).read_text())
    assert (git(repo, 'diff', '--cached'), git(repo, 'diff')) == before
    assert journal.records(common) == []
    # the same, killed while they are set aside: its journal, and the
    # index without them; the user staged other.txt otherwise since
    git(repo, 'reset', '-q')
    (repo / 'other.txt').write_text('other, staged anew\n')
    git(repo, 'add', 'other.txt')
    journaled['pid'] = gone_pid()
    journaled['start'] = journal.start_ticks(journaled['pid']) or '1'
    write_journal(repo, journaled['pid'], journaled['entries'],
                  start=journaled['start'])
    notes = recover(repo)
    assert notes == [f'{repo}: other.txt staged otherwise since a killed '
                     'run set them aside; left as they are'], notes
    staged = git(repo, 'diff', '--cached', '--name-status')
    assert staged.split('\n') == ['M\tREADME', 'D\tgone.txt', 'A\tnew.txt',
                                  'M\tother.txt'], staged
    assert git(repo, 'show', ':README') == 'staged'
    assert git(repo, 'show', ':other.txt') == 'other, staged anew'
    assert (repo / 'README').read_text() == 'staged\nand more, not staged\n'
