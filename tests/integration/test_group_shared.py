"""A dataset shared by a lab group: two real users of one group, the
dataset with ``core.sharedRepository=group`` and umask 002

Without ``safe.directory``, git refuses a repository that another user
owns; every command turns that into a record that names the reason and
the fix, with the path absolute, and changes nothing. With it, one
member's worktree is merged and removed by the other. The users and the
group are made where missing (root only); each step runs in a forked
process as that user (the Python running the tests may be installed where
only root can read it), with git-annex linked or copied where they reach
it.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import re
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Callable

import pytest
from datalad import api as dl
from datalad import cfg

from datalad_worktree.commands import worktree_list
from datalad_worktree.commands._common import relative_paths
from tests.helpers import quiet, snapshot

pytestmark = [pytest.mark.root, pytest.mark.slow]

GROUP = 'wt-lab'
USERS = ('wt-alice', 'wt-bob')


def ensure_users() -> None:
    """The group and its two members, made where missing"""
    try:
        grp.getgrnam(GROUP)
    except KeyError:
        subprocess.run(['groupadd', GROUP], check=True)
    for user in USERS:
        try:
            pwd.getpwnam(user)
        except KeyError:
            subprocess.run(['useradd', '--no-create-home', '--no-user-group',
                            '--gid', GROUP, '--home-dir', '/nonexistent',
                            '--shell', '/usr/sbin/nologin', user], check=True)


class Member:
    """One user of the group, with a home (and global git configuration)
    of their own below ``base``"""

    def __init__(self, name: str, base: Path, bindir: Path):
        self.name = name
        self.bindir = bindir
        self.uid = pwd.getpwnam(name).pw_uid
        self.gid = grp.getgrnam(GROUP).gr_gid
        self.home = base / f'home-{name}'
        self.home.mkdir(mode=0o700)
        os.chown(self.home, self.uid, self.gid)

    def __call__(self, work: Callable[[], Any]) -> Any:
        """What ``work()`` returns (made JSON), run as this user with
        umask 002, in a forked process; its exception is raised here"""
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover (the child)
            os.close(read)
            answer = {}
            try:
                os.setgroups([self.gid])
                os.setgid(self.gid)
                os.setuid(self.uid)
                os.umask(0o002)
                os.environ.update(
                    PATH=f'{self.bindir}{os.pathsep}{os.environ["PATH"]}',
                    HOME=str(self.home),
                    GIT_CONFIG_GLOBAL=str(self.home / '.gitconfig'))
                cfg.reload(force=True)
                answer = dict(value=work())
            except BaseException as e:
                answer = dict(error=f'{type(e).__name__}: {e}')
            finally:
                with os.fdopen(write, 'w') as out:
                    out.write(json.dumps(answer, default=str))
                os._exit(0)
        os.close(write)
        with os.fdopen(read) as got:
            text = got.read()
        os.waitpid(pid, 0)
        answer = json.loads(text)
        if 'error' in answer:
            raise AssertionError(f'as {self.name}: {answer["error"]}')
        return answer['value']

    def git(self, repo: Path, *args: str) -> str:
        return self(lambda: subprocess.run(
            ['git', *args], cwd=repo, check=True, text=True,
            capture_output=True).stdout.strip())

    def trusts(self, *paths: Path) -> None:
        for path in paths:
            self.git(self.home, 'config', '--global', '--add',
                     'safe.directory', str(path))


def git_annex() -> Path:
    """The git-annex program itself (not PyPI's Python script that starts
    it)"""
    found = Path(shutil.which('git-annex')).resolve()
    with open(found, 'rb') as f:
        if f.read(2) != b'#!':
            return found
    import git_annex as package
    return Path(package.__file__).with_name('git-annex')


def reachable(bindir: Path, member: Member) -> None:
    """git-annex in ``bindir``, where ``member`` can run it"""
    exe = git_annex()
    if member(lambda: os.access(exe, os.X_OK)):
        (bindir / 'git-annex').symlink_to(exe)
        return
    try:
        os.link(exe, bindir / 'git-annex')
    except OSError:
        shutil.copy2(exe, bindir / 'git-annex')


def make_lab(annex: bool):
    """A group directory (setgid, group-writable) with the dataset ``lab``
    and its subdataset ``code`` (with git-annex, or without), made by
    alice; alice and bob"""
    if os.geteuid() != 0:
        pytest.skip('needs root, to make the users of a group and to act '
                    'as them (CI runs as root)')
    ensure_users()
    base = Path(tempfile.mkdtemp(prefix='worktree-group-'))
    try:
        base.chmod(0o755)
        shared = base / 'group'
        shared.mkdir()
        os.chown(shared, 0, grp.getgrnam(GROUP).gr_gid)
        shared.chmod(0o2775)
        bindir = base / 'bin'
        bindir.mkdir()
        alice, bob = (Member(n, base, bindir) for n in USERS)
        reachable(bindir, alice)
        top = shared / 'lab'

        def make():
            dl.create(top, annex=annex, result_renderer='disabled')
            dl.create(top / 'code', dataset=top, annex=annex,
                      result_renderer='disabled')
            for repo in (top, top / 'code'):
                subprocess.run(['git', 'config', 'core.sharedRepository',
                                'group'], cwd=repo, check=True)
            (top / 'code' / 'analysis.py').write_text('print(1)\n')
            dl.save(dataset=top, recursive=True, message='analysis',
                    result_renderer='disabled')
        alice(make)
        yield top, alice, bob
    finally:
        shutil.rmtree(base)


@pytest.fixture
def lab():
    yield from make_lab(annex=True)


@pytest.fixture
def plain_lab():
    yield from make_lab(annex=False)


def fix(path: Path) -> str:
    return f'git config --global --add safe.directory {path}'


def refused_for(res: list[dict], path: Path) -> dict:
    """The one record of ``res`` that refuses ``path`` for its owner,
    checked to name the reason and the fix, the path absolute"""
    found = [r for r in res if r.get('refusal') == 'dubious-ownership'
             and r.get('safe_directory') == str(path)]
    assert len(found) == 1, [(r['status'], r.get('refusal'), r['message'])
                             for r in res]
    record = found[0]
    assert record['status'] == 'impossible'
    assert 'detected dubious ownership' in record['message']
    assert re.search(f'{re.escape(fix(path))}(;|$)', record['message']), \
        record['message']
    # as people read it: other paths relative, this one absolute, as git
    # matches it
    os.chdir(path.parent)
    shown = relative_paths(record['message'])
    assert f'at {path.name}' in shown, shown
    assert re.search(f'{re.escape(fix(path))}(;|$)', shown), shown
    return record


def summary(res: list[dict]) -> list[str]:
    """What worktree-list's own rendering says after the records"""
    seen: list[str] = []

    class UI:
        message = seen.append
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(worktree_list, 'ui', UI)
        worktree_list.WorktreeList.custom_result_summary_renderer(res)
    return seen


def each(res: list[dict]) -> list[dict]:
    """``res`` without the exceptions (not JSON)"""
    return [{k: v for k, v in r.items() if k != 'exception'} for r in res]


def test_a_group_shared_dataset(lab, tmp_path):
    top, alice, bob = lab
    group = top.parent
    before = alice(lambda: snapshot(top))
    here = os.getcwd()
    try:
        # bob, who trusts nothing of alice's: every command reports git's
        # refusal as a record, and changes nothing
        res = bob(lambda: each(dl.worktree_add(
            group / 'wt-bob', dataset=top, recursive=True, **quiet())))
        refused_for(res, top)
        assert 'belongs to wt-alice' in res[0]['message']
        res = bob(lambda: each(dl.worktree_list(
            dataset=top, recursive=True, **quiet())))
        refused_for(res, top)
        assert summary(res) == [
            'no linked worktrees listed: 1 dataset(s) or worktree(s) could '
            'not be looked at (see above)']
        refused_for(bob(lambda: each(dl.worktree_merge(
            'nobranch', dataset=top, recursive=True, **quiet()))), top)
        assert not (group / 'wt-bob').exists()
        # alice's own worktree: bob can neither sync, fill nor remove it
        mine = group / 'wt-alice'
        res = alice(lambda: each(dl.worktree_add(
            mine, dataset=top, recursive=True, **quiet())))
        assert {r['status'] for r in res} == {'ok'}, res
        before = alice(lambda: snapshot(top))
        refused_for(bob(lambda: each(dl.worktree_sync(
            dataset=mine, recursive=True, **quiet()))), mine)
        refused_for(bob(lambda: each(dl.worktree_get(
            mine / 'code', dataset=mine, **quiet()))), mine)
        # (git refuses alice's dataset first)
        refused_for(bob(lambda: each(dl.worktree_remove(
            mine, dataset=top, force=True, **quiet()))), top)
        assert alice(lambda: snapshot(top)) == before

        # bob trusts the dataset: his worktree, with a result
        bob.trusts(top, top / 'code')
        theirs = group / 'wt-bob'
        res = bob(lambda: each(dl.worktree_add(
            theirs, dataset=top, recursive=True, **quiet())))
        assert {r['status'] for r in res} == {'ok'}, res

        def result():
            (theirs / 'code' / 'result.txt').write_text('42\n')
            dl.save(dataset=theirs, recursive=True, message='result',
                    result_renderer='disabled')
        bob(result)
        # annexed into the annex all share, which the group may change
        content = (theirs / 'code' / 'result.txt').resolve()
        assert content.is_relative_to(top / 'code' / '.git' / 'annex')
        assert content.stat().st_mode & stat.S_IRGRP
        assert content.parent.stat().st_mode & stat.S_IWGRP

        # alice, who does not trust bob's worktree: listed as refused, the
        # others listed; merge and remove refuse it and change nothing
        before = alice(lambda: snapshot(top))
        res = alice(lambda: each(dl.worktree_list(
            dataset=top, recursive=True, **quiet())))
        for path in (theirs, theirs / 'code'):
            assert refused_for(res, path)['branch'] == 'wt-bob'
        assert {r['path'] for r in res if r['status'] == 'ok'} == {
            str(mine), str(mine / 'code')}
        assert summary(res)[-1] == (
            'and 2 dataset(s) or worktree(s) could not be looked at (see '
            'above)')
        res = alice(lambda: each(dl.worktree_merge(
            str(theirs), dataset=top, recursive=True, **quiet())))
        refused_for(res, theirs / 'code')
        assert {r['status'] for r in res} == {'impossible'}
        res = alice(lambda: each(dl.worktree_remove(
            theirs, dataset=top, force=True, **quiet())))
        refused_for(res, theirs)
        assert alice(lambda: snapshot(top)) == before
        assert (theirs / 'code' / 'result.txt').exists()

        # once she trusts it, she merges bob's result and removes his
        # worktree: the group may change the directories it is in
        alice.trusts(theirs, theirs / 'code')
        res = alice(lambda: each(dl.worktree_merge(
            str(theirs), dataset=top, recursive=True, **quiet())))
        assert {r['status'] for r in res} == {'ok'}, res
        assert (top / 'code' / 'result.txt').read_text() == '42\n'
        res = alice(lambda: each(dl.worktree_remove(
            theirs, dataset=top, **quiet())))
        assert {r['status'] for r in res} == {'ok'}, res
        assert not theirs.exists()

        # a worktree bob keeps where only he may change anything: alice
        # is told to ask him, and nothing is removed
        private = group / 'bob-only'
        bob(lambda: private.mkdir(mode=0o755))
        res = bob(lambda: each(dl.worktree_add(
            private / 'wt', dataset=top, recursive=True, **quiet())))
        assert {r['status'] for r in res} == {'ok'}, res
        alice.trusts(private / 'wt', private / 'wt' / 'code')
        before = alice(lambda: snapshot(top))
        res = alice(lambda: each(dl.worktree_remove(
            private / 'wt', dataset=top, **quiet())))
        assert [r['refusal'] for r in res] == ['no-permission'], res
        assert 'ask wt-bob to remove the worktree' in res[0]['message']
        assert alice(lambda: snapshot(top)) == before
        assert (private / 'wt' / 'code' / '.git').exists()
    finally:
        os.chdir(here)


def test_a_group_shared_dataset_without_an_annex(plain_lab):
    """Without an annex, DataLad's own check of the dataset (and its look
    for result hooks in the dataset's configuration) asks git, which
    refuses: still one record per command, naming the reason and the fix,
    no exception, nothing changed"""
    top, alice, bob = plain_lab
    group = top.parent
    before = alice(lambda: snapshot(top))
    here = os.getcwd()
    try:
        for call in (
                lambda: dl.worktree_add(group / 'wt-bob', dataset=top,
                                        recursive=True, **quiet()),
                lambda: dl.worktree_list(dataset=top, recursive=True,
                                         **quiet()),
                lambda: dl.worktree_sync(dataset=top, **quiet()),
                lambda: dl.worktree_merge('nobranch', dataset=top,
                                          **quiet()),
                lambda: dl.worktree_get('code', dataset=top, **quiet()),
                lambda: dl.worktree_remove('nobranch', dataset=top,
                                           **quiet())):
            res = bob(lambda: each(call()))
            assert len(res) == 1, res
            refused_for(res, top)
    finally:
        os.chdir(here)
    assert not (group / 'wt-bob').exists()
    assert alice(lambda: snapshot(top)) == before
