"""Convergence at every crash point: each git process that worktree-add,
-sync, -merge and -remove start, killed just before, during and right
after it runs, and the same command run again, with no repair by hand

A ``git`` wrapper first on PATH (``CrashingGit``) counts the git
processes that the command starts (not those that git and git-annex start
under them) and, at the K-th one, kills the command's whole process group
(the command runs in a session of its own) with SIGKILL:

- ``before``: before the real git is started;
- ``during``: the real git runs in the background, writing its trace2
  events (``GIT_TRACE2_EVENT``) into a FIFO that the wrapper reads as git
  writes them, and is killed with the group at the middle one of the
  events that git process (with the git processes it started) wrote in
  the clean run; where it writes fewer, it is killed as it ends (the
  report says how many kills found git still running);
- ``after``: once the real git ended, before the command read its output.

A clean run of the same command on the same hierarchy counts N first; then
for every K in 1..N and every position the hierarchy is restored, the
command killed at K and run again (through the Python API, at most twice),
and the state must be the one the clean run made: the main hierarchy
untouched (commits, annexed keys, local work), no registration locked or
prunable, no stray branch, every worktree complete.

The command is the Python API call, in a process forked from the test
process, which has DataLad imported (a new ``datalad`` process, or
DataLad's command line in the fork, takes a second or more to start, for
each of some 300 runs; the signal tests below start the command line).
``CRASH_POINTS=3,4`` limits the
points (for debugging); ``CRASH_REPORT=FILE`` appends the figures (git
processes per command, failed points, kills that found git running) to
FILE, also under pytest-xdist, whose workers' output is not shown.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from datalad import api as dl

from datalad_worktree.runners import journal

from tests.fixtures import built_once, restore
from tests.helpers import DATALAD, add, git, quiet, wait_group_ended
from tests.integration.test_reliability import (
    annex_add,
    assert_nothing_lost,
    baseline,
    init_dataset,
)

pytestmark = [pytest.mark.reliability, pytest.mark.slow]

SUBS = {'a': True, 'p': False}
"""The subdatasets of the small hierarchy: a uses git-annex (with an
annexed file), p is plain git"""
ALL = ['.', *SUBS]
REAL_GIT = shutil.which('git')

WRAPPER = """#!/bin/sh
# crash-point wrapper: the real git is {git}
if [ -n "$CRASH_INNER" ]; then exec "{git}" "$@"; fi
export CRASH_INNER=1
exec 9>>"{dir}/count.lock"
flock 9
n=$(( $(cat "{dir}/count" 2>/dev/null || echo 0) + 1 ))
# a new file renamed over the old: a wrapper killed while it writes
# (the kill reaches the whole process group) leaves the count whole
echo $n > "{dir}/count.$$" && mv -f "{dir}/count.$$" "{dir}/count"
echo "$n $PWD $*" >> "{dir}/log"
exec 9>&-
if [ "$n" = "${{CRASH_AT:-0}}" ]; then
  case "$CRASH_WHERE" in
    before) kill -KILL 0 ;;
    during)
      # git reports its progress as trace2 events, each written when it
      # happens: killed at the middle one of those a clean run's git made
      fifo="{dir}/fifo"
      rm -f "$fifo"; mkfifo "$fifo"
      GIT_TRACE2_EVENT="$fifo" "{git}" "$@" <&0 &
      half=$(( (${{CRASH_EVENTS:-2}} + 1) / 2 ))
      i=0
      while IFS= read -r line; do
        i=$((i + 1))
        if [ $i -ge $half ]; then
          echo running > "{dir}/during"
          kill -KILL 0
        fi
      done < "$fifo"
      echo ended > "{dir}/during"
      kill -KILL 0 ;;
    after) "{git}" "$@"; kill -KILL 0 ;;
  esac
fi
if [ -n "$CRASH_COUNT_EVENTS" ]; then
  export GIT_TRACE2_EVENT="{dir}/events-$n"
fi
exec "{git}" "$@"
"""


class CrashingGit:
    """The wrapper's directory: ``bin/git``, its counter and its log"""

    def __init__(self, root: Path):
        self.dir = root
        (root / 'bin').mkdir(parents=True)
        script = root / 'bin' / 'git'
        script.write_text(WRAPPER.format(git=REAL_GIT, dir=root))
        script.chmod(0o755)

    def run(self, call, cwd: Path, at: int = 0,
            where: str = '', events: int = 0) -> int:
        """``call()`` in a session of its own, killed at the git
        process ``at`` (0: never) in the position ``where``; the number of
        git processes it started"""
        for name in ('count', 'log', 'during'):
            (self.dir / name).unlink(missing_ok=True)
        for old in self.dir.glob('events-*'):
            old.unlink()
        env = dict(os.environ, CRASH_AT=str(at), CRASH_WHERE=where,
                   CRASH_EVENTS=str(events),
                   CRASH_COUNT_EVENTS='' if at else '1',
                   PATH=f'{self.dir / "bin"}{os.pathsep}{os.environ["PATH"]}')
        env.pop('CRASH_INNER', None)
        pid = fork_command(call, cwd, env)
        _, status = os.waitpid(pid, 0)
        returncode = os.waitstatus_to_exitcode(status)
        out = (self.dir / 'output').read_bytes()
        gone(pid)
        if not at:
            assert returncode == 0, out.decode()
        elif not (returncode == 0 and self.count() < at):
            # (a run that started fewer git processes than the clean one,
            # as where a git another process held a lock for was not
            # tried again, ends before the K-th: it is checked as is)
            assert returncode == -signal.SIGKILL, \
                f'not killed at {at} {where}: {out.decode()}'
        return self.count()

    def events(self) -> dict[int, int]:
        """After a clean run: how many trace2 events each git process
        (with the ones it started) wrote"""
        return {int(p.name.split('-')[1]): len(p.read_text().splitlines())
                for p in self.dir.glob('events-*')}

    def count(self) -> int:
        counter = self.dir / 'count'
        return int(counter.read_text()) if counter.exists() else 0

    def during(self) -> str:
        """For a kill 'during' git: whether git was still running
        ('running') or had ended already ('ended')"""
        path = self.dir / 'during'
        return path.read_text().strip() if path.exists() else ''

    def log(self) -> str:
        log = self.dir / 'log'
        return log.read_text() if log.exists() else ''


def fork_command(call, cwd: Path, env: dict) -> int:
    """``call()``, the Python API call of the command, in ``cwd`` with the
    environment ``env``, in a process forked from this one (which has
    DataLad and this package imported), in a session of its own: the
    command's code, with every git process it starts, as a user's script
    runs it. A new ``datalad`` process, or DataLad's command line in the
    fork, takes a second or more to start (its parser loads every
    extension) against some 0.2 s for the command here, for each of some
    300 runs. It exits 0 where no record failed; the failed records go to
    the file ``output`` next to the wrapper. Returns its process id"""
    output = Path(env['PATH'].split(os.pathsep)[0]).parent / 'output'
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        os.setsid()
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(env)
        fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        from datalad import cfg
        cfg.reload(force=True)
        failed = [r for r in call()
                  if r['status'] in ('impossible', 'error')]
        os.write(fd, repr(failed).encode())
        code = 1 if failed else 0
    except BaseException as e:  # noqa: BLE001 (the test reads it)
        os.write(fd, f'{type(e).__name__}: {e}'.encode())
    finally:
        os._exit(code)


def gone(pgid: int) -> None:
    """Wait until no process of the group ``pgid`` runs"""
    if not wait_group_ended(pgid):
        os.killpg(pgid, signal.SIGKILL)
        raise AssertionError('processes of the killed command survived')


def build_small(root: Path) -> Path:
    top = root / 'project' / 'super'
    init_dataset(top, annex=True)
    for name, annex in SUBS.items():
        init_dataset(top / name, annex)
        git(top / name, 'commit', '-q', '-m', f'make {name}')
        for key, value in (('path', name), ('url', f'./{name}')):
            git(top, 'config', '-f', '.gitmodules',
                f'submodule.{name}.{key}', value)
    git(top, '-c', 'advice.addEmbeddedRepo=false', 'add', '.gitmodules',
        *SUBS)
    git(top, 'commit', '-q', '-m', 'make super')
    return top


def leave_local_work(top: Path) -> dict:
    """Untracked notes in the superdataset and in a, an unsaved edit in p"""
    work = {top / 'notes.txt': 'my notes\n',
            top / 'a' / 'scratch.txt': 'scratch\n',
            top / 'p' / 'README': 'edited, not saved\n'}
    for path, text in work.items():
        path.write_text(text)
    return work


def commit_all(top: Path, name: str) -> None:
    """A new file in every dataset below ``top``, subdatasets first"""
    for rel in [*SUBS, '.']:
        repo = top / rel
        (repo / name).write_text(f'{name} of {rel}\n')
        if SUBS.get(rel, True):
            annex_add(repo, name)
        else:
            git(repo, 'add', '--', name)
        git(repo, 'commit', '-q', '-m', f'{name} in {rel}', '--', name,
            *(SUBS if rel == '.' else ()))


PREPARE = {'add': 'plain', 'sync': 'dev', 'merge': 'results',
           'remove': 'runs'}


@pytest.fixture(scope='module')
def small(tmp_path_factory):
    """``small(kind)``: the ROOT of the template of ``kind`` (PREPARE):
    the hierarchy alone, with a 'runs' worktree at ROOT/runs, and with new
    commits in the main datasets (dev) or the worktree's (results)"""
    made = {}

    def template(kind: str) -> Path:
        if kind in made:
            return made[kind]

        def build(root):
            if kind == 'plain':
                build_small(root)
                return
            restore(template('plain' if kind == 'runs' else 'runs'), root)
            top, wt = root / 'project' / 'super', root / 'runs'
            if kind == 'runs':
                res = add(top, wt, branch='runs', recursive=True)
                assert {r['status'] for r in res} == {'ok'}, res
            elif kind == 'dev':
                commit_all(top, 'dev.dat')
            else:
                commit_all(wt, 'result.dat')

        made[kind] = built_once(tmp_path_factory, f'small-{kind}', build)
        return made[kind]

    return template


def command_line(command: str, top: Path, wt: Path) -> tuple[list, Path]:
    return {'add': (['worktree-add', '-r', '-b', 'runs', str(wt)], top),
            'sync': (['worktree-sync', '-r'], wt),
            'merge': (['worktree-merge', '-r', str(wt)], top),
            'remove': (['worktree-remove', str(wt)], top)}[command]


def rerun(command: str, top: Path, wt: Path) -> list:
    if command == 'add':
        return add(top, wt, branch='runs', recursive=True)
    if command == 'sync':
        return dl.worktree_sync(dataset=wt, recursive=True, **quiet())
    if command == 'merge':
        return dl.worktree_merge(str(wt), dataset=top, recursive=True,
                                 **quiet())
    return dl.worktree_remove(str(wt), dataset=top, **quiet())


def state(top: Path, wt: Path) -> dict:
    """What a run leaves, in terms that do not depend on when it ran: per
    dataset the tree of each branch in main, the registrations, and the
    worktree's tree, status and files"""
    found = {}
    for rel in ALL:
        repo = top / rel
        found[rel] = {
            'branches': git(repo, 'for-each-ref',
                            '--format=%(refname) %(tree)', 'refs/heads/'),
            'registered': [line for line in git(
                repo, 'worktree', 'list', '--porcelain').splitlines()
                if line.split(' ')[0] in ('worktree', 'branch', 'locked',
                                           'prunable', 'detached')],
            'wt': None if not (wt / rel / '.git').exists() else {
                'tree': git(wt / rel, 'rev-parse', 'HEAD^{tree}'),
                'status': git(wt / rel, 'status', '--porcelain',
                              '--ignored', '--untracked-files=all'),
                'files': sorted(p.name for p in (wt / rel).iterdir())}}
    found['wt exists'] = wt.exists()
    return found


def assert_complete(command: str, top: Path, wt: Path, got: dict) -> None:
    """Whatever the state, nothing is locked or prunable and annexed files
    are readable where a worktree is"""
    for rel in ALL:
        text = '\n'.join(got[rel]['registered'])
        assert 'locked' not in text and 'prunable' not in text, (rel, text)
        if got[rel]['wt'] is not None and SUBS.get(rel, True):
            assert (wt / rel / 'data.dat').read_text() == \
                f'data of {(top / rel).name}\n', rel


def enumerate_points(command: str, where: str, small, tmp_path: Path,
                     report) -> None:
    template = small(PREPARE[command])
    crash = CrashingGit(tmp_path / 'crash')
    here = tmp_path / 'here'

    def fresh():
        if here.exists():
            subprocess.run(['chmod', '-R', 'u+w', str(here)], check=True)
            shutil.rmtree(here)
        here.mkdir()
        restore(template, here)
        top, wt = here / 'project' / 'super', here / 'runs'
        work = leave_local_work(top)
        return top, wt, work

    top, wt, work = fresh()
    cwd = command_line(command, top, wt)[1]

    def call():
        return rerun(command, top, wt)

    total = crash.run(call, cwd)
    events = crash.events()
    read_only = {int(line.split(' ', 1)[0]) for line in
                 crash.log().splitlines() if reads_only(line.split(' ')[2:])}
    clean = state(top, wt)
    assert_complete(command, top, wt, clean)
    failures, hits = [], []
    # the same in every restored copy: the template's commits and content
    top, wt, work = fresh()
    before = baseline(top, ALL)
    only = os.environ.get('CRASH_POINTS')  # e.g. '17,18', when debugging
    for at in range(1, total + 1):
        if only and str(at) not in only.split(','):
            continue
        if where != 'before' and at in read_only:
            continue  # the same as before it (see ``reads_only``)
        top, wt, work = fresh()
        crash.run(call, cwd, at, where, events.get(at, 0))
        log = crash.log().splitlines()[-1]
        hits.append(crash.during())
        res = rerun(command, top, wt)
        failed = [r for r in res if r['status'] in ('impossible', 'error')]
        first = [(r['path'], r['message']) for r in failed]
        if failed:
            res = rerun(command, top, wt)
            failed = [r for r in res
                      if r['status'] in ('impossible', 'error')]
        try:
            assert not failed, (first, [(r['path'], r['message'])
                                        for r in failed])
            got = state(top, wt)
            assert_complete(command, top, wt, got)
            assert got == clean
            assert_nothing_lost(top, before, work)
        except AssertionError as e:
            failures.append(f'{at}/{total} {where} ({log}): {e}')
    report(command, where, total, failures, hits, len(read_only))
    assert not failures, '\n'.join(failures)


READS = {'cat-file', 'check-attr', 'check-ignore', 'diff-tree',
         'for-each-ref', 'log', 'ls-files', 'ls-tree', 'merge-base',
         'rev-list', 'rev-parse', 'show', 'show-ref', 'var', 'version'}
"""git commands that change nothing on the disk: no ref, index, object,
configuration or file (``git status`` is not one: it may refresh the
index; nor is ``merge-tree``, which writes objects)"""


def reads_only(args: list[str]) -> bool:
    """Whether the git process with the arguments ``args`` changes nothing
    (``READS``; ``worktree list``, ``symbolic-ref`` and ``config`` where
    they only read). Killed before it, while it runs, or after it ended,
    the command (blocked in the same call, waiting for it) leaves the same
    state: only the kill before it is tried"""
    i = 0
    while i < len(args) and args[i].startswith('-'):
        i += 2 if args[i] in ('-c', '-C') else 1  # git's own options
    if i >= len(args):
        return False
    sub, rest = args[i], args[i + 1:]
    if sub in READS:
        return True
    if sub == 'worktree':
        return rest[:1] == ['list']
    if sub == 'symbolic-ref':
        return len([a for a in rest if not a.startswith('-')]) == 1 and \
            not {'-d', '--delete', '-m'} & set(rest)
    if sub == 'config':
        return bool({'--get', '--get-all', '--get-regexp', '-l', '--list'}
                    & set(rest))
    return False


FOUND = {}


@pytest.fixture(scope='module')
def report():
    """Print, at the end of the module, per command and position: the git
    processes of a clean run, the points that did not converge, and of the
    kills 'during' git, how many found git still running"""
    def note(command, where, total, failures, hits, read_only):
        FOUND[(command, where)] = dict(
            git_processes=total, read_only=read_only, failed=len(failures),
            **({'killed_while_running': hits.count('running')}
               if where == 'during' else {}))
    yield note
    lines = [f'crash points {c} {w} {v}' for (c, w), v in FOUND.items()]
    print(*lines, sep='\n')
    if os.environ.get('CRASH_REPORT'):  # a file, also with pytest-xdist
        with open(os.environ['CRASH_REPORT'], 'a') as out:
            out.writelines(f'{line}\n' for line in lines)


@pytest.mark.parametrize('where', ['before', 'during', 'after'])
@pytest.mark.parametrize('command', ['add', 'sync', 'merge', 'remove'])
def test_every_crash_point_converges(command, where, small, tmp_path,
                                     report):
    enumerate_points(command, where, small, tmp_path, report)


# --------------------------------------------------------------------------
# A live run is never disturbed; SIGTERM and SIGINT end a run cleanly

PAUSE = """#!/bin/sh
case "$PWD" in
  */{name}/p) touch "{marker}"
    while [ ! -e "{release}" ]; do sleep 0.05; done ;;
esac
exit 0
"""


class CheckoutPause:
    """A post-checkout hook in p that makes ``git worktree add`` of the
    worktree ``name`` wait, after its checkout and before it ends, until
    ``release``"""

    def __init__(self, top: Path, name: str):
        self.marker = top.parent / f'paused-{name}'
        self.release_file = top.parent / f'release-{name}'
        hook = top / 'p' / '.git' / 'hooks' / 'post-checkout'
        hook.write_text(PAUSE.format(name=name, marker=self.marker,
                                     release=self.release_file))
        hook.chmod(0o755)

    def wait(self, proc: subprocess.Popen) -> None:
        deadline = time.monotonic() + 120
        while not self.marker.exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, 'git never paused'
            time.sleep(0.02)

    def release(self) -> None:
        self.release_file.touch()


def start(args: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([DATALAD, '-f', 'json', *args], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)


def assert_made(top: Path, wt: Path, branch: str) -> None:
    for rel in ALL:
        assert git(wt / rel, 'symbolic-ref', 'HEAD') == \
            f'refs/heads/{branch}', rel
        assert git(wt / rel, 'status', '--porcelain') == '', rel
        listing = git(top / rel, 'worktree', 'list', '--porcelain')
        assert 'locked' not in listing and 'prunable' not in listing, rel
    assert (wt / 'a' / 'data.dat').read_text() == 'data of a\n'


def test_a_live_run_is_never_disturbed(small, tmp_path):
    """One worktree-add waits inside git (p's `git worktree add`, its
    worktree made but not finished: its journal says so); a second
    worktree-add of another worktree runs meanwhile: it finds the first's
    journal, of a live process, touches nothing of it and succeeds; the
    first then finishes as well"""
    restore(small('plain'), tmp_path)
    top = tmp_path / 'project' / 'super'
    pause = CheckoutPause(top, 'job1')
    first = start(['worktree-add', '-r', '-b', 'job1',
                   str(tmp_path / 'job1')], top)
    try:
        pause.wait(first)
        [record] = journal.records(top / 'p' / '.git')
        assert record.pid == first.pid and not record.entries[0]['done']
        res = add(top, tmp_path / 'job2', branch='job2', recursive=True)
        assert {r['status'] for r in res} == {'ok'}, res
        assert first.poll() is None, 'the first run was disturbed'
        assert (tmp_path / 'job1' / 'p' / 'README').exists()
        assert journal.records(top / 'p' / '.git') == [record]
    finally:
        pause.release()
    out, err = first.communicate(timeout=120)
    assert first.returncode == 0, out + err
    assert_made(top, tmp_path / 'job1', 'job1')
    assert_made(top, tmp_path / 'job2', 'job2')
    assert journal.records(top / 'p' / '.git') == []


REF_PAUSE = """#!/bin/sh
[ "$1" = prepared ] || exit 0
grep -q " refs/heads/{branch}$" || exit 0
touch "{marker}"
while [ ! -e "{release}" ]; do sleep 0.05; done
exit 0
"""


class RefPause(CheckoutPause):
    """A reference-transaction hook in p's repository that makes git wait,
    holding the lock of ``branch`` it is about to move (or create, or
    delete), until ``release``"""

    def __init__(self, top: Path, branch: str):
        self.marker = top.parent / 'paused'
        self.release_file = top.parent / 'release'
        hook = top / 'p' / '.git' / 'hooks' / 'reference-transaction'
        hook.write_text(REF_PAUSE.format(branch=branch, marker=self.marker,
                                         release=self.release_file))
        hook.chmod(0o755)


PAUSED_AT = {'add': 'runs', 'sync': 'runs', 'merge': 'main',
             'remove': 'runs'}
"""The branch of p whose update the signal test pauses: made by add,
moved by sync (in the worktree) and merge (in main), deleted by remove"""


@pytest.mark.parametrize('sig', [signal.SIGTERM, signal.SIGINT])
@pytest.mark.parametrize('command', ['add', 'sync', 'merge', 'remove'])
def test_sigterm_and_sigint_end_the_run_with_a_record(small, tmp_path,
                                                      command, sig):
    """SIGTERM (as SLURM ends a job at its time limit, to every process of
    the job) or SIGINT (Ctrl-C), while git holds the lock of a branch it
    updates in p: the command ends with an 'error' record that names the
    signal, no traceback, no journal and no lock left, and the same
    command again ends in the state that one clean run makes"""
    template = small(PREPARE[command])
    top, wt = tmp_path / 'project' / 'super', tmp_path / 'runs'
    args, cwd = command_line(command, top, wt)
    restore(template, tmp_path)
    rerun(command, top, wt)
    clean = state(top, wt)
    for entry in tmp_path.iterdir():
        subprocess.run(['chmod', '-R', 'u+w', str(entry)], check=True)
        shutil.rmtree(entry)
    restore(template, tmp_path)
    before = baseline(top, ALL)
    pause = RefPause(top, PAUSED_AT[command])
    proc = start(args, cwd)
    try:
        pause.wait(proc)
        os.killpg(proc.pid, sig)
        out, err = proc.communicate(timeout=120)
        gone(proc.pid)
    finally:
        pause.release()
    assert proc.returncode == 1, out + err
    assert 'Traceback' not in err, err
    records = [json.loads(line) for line in out.splitlines()
               if line.startswith('{')]
    [stopped] = [r for r in records if r.get('interrupted')]
    assert stopped['interrupted'] == sig.name
    assert stopped['status'] == 'error'
    assert f'interrupted by {sig.name}' in stopped['message']
    assert 'run the same command again' in stopped['message']
    for rel in ALL:
        assert journal.records(top / rel / '.git') == []
        assert not list((top / rel / '.git').glob('**/*.lock')), rel
        listing = git(top / rel, 'worktree', 'list', '--porcelain')
        assert 'locked' not in listing, listing
    (top / 'p' / '.git' / 'hooks' / 'reference-transaction').unlink()
    res = rerun(command, top, wt)
    assert not [r for r in res if r['status'] in ('impossible', 'error')]
    assert state(top, wt) == clean
    assert_nothing_lost(top, before)
