"""The journal of a run: what a worktree command is making in each
repository, so that a later run can tell a dead run's leftovers from a
live run's work

Each run of ``worktree-add``, ``-sync``, ``-merge`` and ``-remove`` is one
``Run``: its host, process id and process start time (on Linux the start
time in clock ticks, field 22 of ``/proc/PID/stat``, with the boot id of
``/proc/sys/kernel/random/boot_id``, so that a process id used again, also
after a reboot, is not taken for the run). Before a run first changes
anything in a repository, it writes its journal into that repository's
common git directory, ``datalad-worktree/runs/HOST-PID-START.json``: who
it is, the command, when it started there, and what it is making (the
entries the engine notes: worktrees with their branches and commits).
The journal is rewritten (to a new file, renamed over the old one) as
entries are added or finished, touched by a heartbeat thread while the
run lives, and deleted when the run ends.

A journal found in a repository belongs to a live run (``alive``) where
its process exists on this host with the same start time, or, for a run
on another host (a cluster node, which can die with its runs), where its
heartbeat is younger than ``stale_after()`` seconds
(``datalad.worktree.run.stale-after``). What to do with a dead run's
leftovers is the engine's decision (``engine.recover``).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from datalad import cfg as datalad_config

lgr = logging.getLogger('datalad.worktree.journal')

RUNS = Path('datalad-worktree') / 'runs'
"""Where the journals are, in a repository's common git directory"""

STALE_AFTER = 600.0
"""Seconds after which a run on another host whose heartbeat stopped is
taken for dead"""


def stale_after() -> float:
    """``datalad.worktree.run.stale-after`` where it is set to a number of
    seconds (more than 0), else ``STALE_AFTER``"""
    datalad_config.reload()
    try:
        value = float(datalad_config.get('datalad.worktree.run.stale-after',
                                         STALE_AFTER))
    except (TypeError, ValueError):
        return STALE_AFTER
    return value if value > 0 else STALE_AFTER


def boot_id() -> str:
    """This machine's boot id (Linux), or ''"""
    try:
        return Path('/proc/sys/kernel/random/boot_id').read_text().strip()
    except OSError:
        return ''


def start_ticks(pid: int) -> str | None:
    """When the process ``pid`` started, in clock ticks after boot (field
    22 of ``/proc/PID/stat``); '' where there is no ``/proc``; None where
    there is no such process"""
    try:
        stat = Path(f'/proc/{pid}/stat').read_text()
    except FileNotFoundError:
        return None if Path('/proc/self/stat').exists() else ''
    except OSError:
        return ''
    # the command name (field 2) is in parentheses and may hold anything
    return stat[stat.rindex(')') + 2:].split()[19]


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class Record:
    """A journal found in a repository"""
    path: Path
    host: str
    pid: int
    start: str
    boot: str
    command: str
    since: float
    """When the run started in this repository (seconds of the epoch)"""
    heartbeat: float
    """The journal's modification time"""
    entries: tuple[dict, ...]

    @property
    def name(self) -> str:
        return f'{self.command} (process {self.pid} on {self.host})'


def alive(record: Record, limit: float | None = None) -> bool:
    """Whether the run of ``record`` may still be running: on this host,
    its process exists with the start time journaled (where the start time
    cannot be known, only that the process exists); on another host, its
    heartbeat is younger than ``limit`` (default ``stale_after()``)"""
    if record.host == socket.gethostname():
        if record.boot and record.boot != boot_id():
            return False
        ticks = start_ticks(record.pid)
        if ticks is None:
            return False
        if ticks and record.start:
            return ticks == record.start
        return process_exists(record.pid)
    limit = stale_after() if limit is None else limit
    return time.time() - record.heartbeat < limit


def records(common: Path) -> list[Record]:
    """The journals of runs in the repository with the common git
    directory ``common``; one that cannot be read (being written, or
    damaged) is left out"""
    found = []
    folder = common / RUNS
    try:
        names = sorted(os.listdir(folder))
    except FileNotFoundError:
        return []
    for name in names:
        path = folder / name
        if not name.endswith('.json'):
            continue
        try:
            heartbeat = path.stat().st_mtime
            data = json.loads(path.read_text())
            found.append(Record(
                path, data['host'], int(data['pid']), data['start'],
                data['boot'], data['command'], float(data['since']),
                heartbeat, tuple(data.get('entries', ()))))
        except (OSError, ValueError, KeyError, TypeError) as e:
            lgr.debug('journal %s not read: %s', path, e)
    return found


def claim(record: Record) -> Path | None:
    """Take the journal of a dead run for this process to clean up after
    it: renamed, so that no other run reads it; its new path, or None
    where another run took it first"""
    claimed = record.path.with_name(
        f'{record.path.name}.claimed-{socket.gethostname()}-{os.getpid()}')
    try:
        os.rename(record.path, claimed)
    except FileNotFoundError:
        return None
    return claimed


def unclaim(claimed: Path, record: Record) -> None:
    """Give a claimed journal back (cleaning up after its run failed), for
    a later run to try again"""
    try:
        os.rename(claimed, record.path)
    except OSError:
        pass


def discard(path: Path) -> None:
    """Delete a claimed journal, once what it made is dealt with"""
    try:
        path.unlink()
    except FileNotFoundError:
        pass


@dataclass
class _Journal:
    path: Path
    since: float
    entries: list[dict] = field(default_factory=list)


class Run:
    """This process's run of ``command``, and its journals"""

    def __init__(self, command: str, dry_run: bool = False):
        self.command = command
        self.dry_run = dry_run
        """A dry run changes nothing: it cleans up after no dead run"""
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self.start = start_ticks(self.pid) or ''
        self.boot = boot_id()
        self._journals: dict[Path, _Journal] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    @property
    def filename(self) -> str:
        host = ''.join(c if c.isalnum() or c in '.-_' else '_'
                       for c in self.host)
        return f'{host}-{self.pid}-{self.start or "0"}.json'

    def is_mine(self, record: Record) -> bool:
        return (record.host, record.pid, record.start) == \
            (self.host, self.pid, self.start)

    def note(self, common: Path, **entry) -> int:
        """Journal, in the repository with the common git directory
        ``common``, that this run is about to make ``entry`` (written
        before this returns); its index there, for ``done``"""
        with self._lock:
            journal = self._journals.get(common)
            if journal is None:
                journal = _Journal(common / RUNS / self.filename,
                                   time.time())
                self._journals[common] = journal
            journal.entries.append(dict(entry, done=False))
            self._write(journal)
            return len(journal.entries) - 1

    def enter(self, common: Path) -> None:
        """Journal that this run is about to change the repository with the
        common git directory ``common`` (with no entry of its own: what
        git's lock files a killed git of it left are for a later run to
        delete)"""
        with self._lock:
            if common not in self._journals:
                journal = _Journal(common / RUNS / self.filename,
                                   time.time())
                self._journals[common] = journal
                self._write(journal)

    def done(self, common: Path, index: int) -> None:
        """The entry ``index`` of ``common`` is made completely"""
        with self._lock:
            journal = self._journals[common]
            journal.entries[index]['done'] = True
            self._write(journal)

    def unfinished(self) -> Iterator[tuple[Path, float, dict]]:
        """What this run started and did not finish: common git directory,
        when the run started there, entry"""
        with self._lock:
            for common, journal in self._journals.items():
                for entry in journal.entries:
                    if not entry['done']:
                        yield common, journal.since, entry

    def repositories(self) -> list[tuple[Path, float]]:
        with self._lock:
            return [(c, j.since) for c, j in self._journals.items()]

    def _write(self, journal: _Journal) -> None:
        data = {'host': self.host, 'pid': self.pid, 'start': self.start,
                'boot': self.boot, 'command': self.command,
                'since': journal.since, 'entries': journal.entries}
        journal.path.parent.mkdir(parents=True, exist_ok=True)
        new = journal.path.with_name(journal.path.name + '.new')
        new.write_text(json.dumps(data, indent=1))
        os.replace(new, journal.path)

    def beat(self, interval: float) -> None:
        """Touch the journals every ``interval`` seconds, in a thread of
        its own, until ``close``"""
        def loop():
            while not self._stop.wait(interval):
                with self._lock:
                    paths = [j.path for j in self._journals.values()]
                for path in paths:
                    try:
                        os.utime(path)
                    except OSError:
                        pass
        self._beat = threading.Thread(target=loop, daemon=True,
                                      name='datalad-worktree-heartbeat')
        self._beat.start()

    def close(self) -> None:
        """Delete this run's journals: it ended"""
        self._stop.set()
        with self._lock:
            # the folder stays: another run may be writing into it
            for journal in self._journals.values():
                journal.path.unlink(missing_ok=True)
            self._journals.clear()


_current: Run | None = None


def current() -> Run | None:
    """The run of this process, while a worktree command runs"""
    return _current


@contextmanager
def running(command: str, dry_run: bool = False
            ) -> Iterator[tuple[Run, bool]]:
    """This process runs ``command``; yields the run and whether it is its
    own (a run already going on, as when one command calls another, stays
    the one, and is yielded with False). Its journals are deleted as it
    ends."""
    global _current
    if _current is not None:
        yield _current, False
        return
    run = _current = Run(command, dry_run)
    run.beat(max(1.0, stale_after() / 10))
    try:
        yield run, True
    finally:
        _current = None
        run.close()


def note(common: Path, **entry) -> int | None:
    """``Run.note`` of the current run, if there is one"""
    run = _current
    return run.note(common, **entry) if run else None


def enter(common: Path) -> None:
    """``Run.enter`` of the current run, if there is one"""
    if _current is not None:
        _current.enter(common)


def done(common: Path, index: int | None) -> None:
    """``Run.done`` of the current run, if there is one"""
    if _current is not None and index is not None:
        _current.done(common, index)
