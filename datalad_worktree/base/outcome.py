"""What a command did to one dataset: the raw material of a result record"""

from __future__ import annotations

import os
import pwd
import re
import shlex
from dataclasses import (
    dataclass,
    field,
    replace,
)
from enum import Enum
from pathlib import Path
from types import MappingProxyType
from typing import (
    Any,
    Mapping,
)

from datalad_next.exceptions import CapturedException
from datalad_next.runners import CommandError


def error_line(exc: CommandError) -> str:
    """Why git failed, from what it wrote to stderr, for a message a
    person can read: its reason (the lines that begin with 'fatal:' or
    'error:', each with the indented lines that go on with it, or else the last line that is not a hint); for a repository
    that git refuses because another user owns it, that and the fix
    (``not_owned``)"""
    stderr = _stderr(exc)
    owned = not_owned(stderr)
    if owned:
        return owned.reason
    found = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    reasons: list[str] = []
    going_on = False
    for ln in stderr.splitlines():
        if ln.startswith(('fatal:', 'error:')):
            reasons.append(ln.strip())
            going_on = True
        elif going_on and ln[:1].isspace() and ln.strip():
            # git goes on with a reason on indented lines ('\trefstorage')
            reasons[-1] += f' {ln.strip()}'
        else:
            going_on = False
    if reasons:
        return '; '.join(reasons[:3]) + ('; ...' if len(reasons) > 3 else '')
    found = [ln for ln in found if not ln.startswith('hint:')] or found
    return found[-1] if found else str(exc)


def _stderr(exc: CommandError) -> str:
    stderr = exc.stderr or ''
    return os.fsdecode(stderr) if isinstance(stderr, bytes) else stderr


NOT_OWNED = re.compile(
    r"detected dubious ownership in repository at '(?P<path>.*)'")


@dataclass(frozen=True)
class NotOwned:
    """A repository git refuses because another user owns it, and no
    ``safe.directory`` trusts it: the directory git named, as git names
    it (absolute: git matches ``safe.directory`` against absolute paths
    only), and the command that trusts it"""
    path: str

    @property
    def fix(self) -> str:
        return ('git config --global --add safe.directory '
                f'{shlex.quote(self.path)}')

    def outcome(self, what: str | None,
                keys: Mapping[str, Any] | None = None) -> Outcome:
        """The refusal ``DUBIOUS_OWNERSHIP``: (``what`` could not be done,)
        the reason and the fix, ``safe_directory`` the path to trust"""
        return Outcome.refused(Refusal.DUBIOUS_OWNERSHIP,
                               f'{what}: {self.reason}' if what
                               else self.reason,
                               dict(keys or {}, safe_directory=self.path))

    @property
    def reason(self) -> str:
        owner = _owner(self.path)
        return (f'git refuses the repository at {self.path}, which belongs '
                f"to {owner or 'another user'}, not to you (git: 'detected "
                f"dubious ownership'); if you trust {owner or 'its owner'}, "
                'trust the repository and run this command again; to trust '
                f'it: {self.fix}')


def not_owned(stderr: str) -> NotOwned | None:
    """The repository that git's ``stderr`` says it refuses because
    another user owns it, or None"""
    found = NOT_OWNED.search(stderr)
    return NotOwned(found.group('path')) if found else None


def _owner(path: str) -> str | None:
    """The name of the user who owns ``path`` (or of its ``.git``, where
    the directory is one's own), or None where it cannot be told"""
    me = os.geteuid()
    for place in (path, os.path.join(path, '.git')):
        try:
            uid = os.stat(place).st_uid
        except OSError:
            continue
        if uid != me:
            try:
                return pwd.getpwuid(uid).pw_name
            except KeyError:
                return f'uid {uid}'
    return None


FAILED = ('impossible', 'error')


class Refusal(Enum):
    """Why a dataset was refused: a stable code for programs, reported as
    ``refusal`` next to the ``message`` of every 'impossible' result (the
    message, for people, may be reworded; the code is not)"""

    # local work that would be lost or overwritten
    UNCOMMITTED_CHANGES = 'uncommitted-changes'
    UNTRACKED_FILES = 'untracked-files'
    """Untracked (or ignored) files that would be overwritten or lost"""
    UNMERGED_COMMITS = 'unmerged-commits'
    """Commits that nothing else contains would be given up or moved"""
    OWN_ANNEX = 'own-annex'
    """An annex of the worktree's own, in place of the shared one, that
    holds something unique"""
    # git's state
    LOCKED = 'locked'
    """A worktree locked with ``git worktree lock``, or by a git that is
    still making it"""
    LOCK_FILES = 'lock-files'
    """Lock files that a killed git left behind"""
    INTERRUPTED_MERGE = 'interrupted-merge'
    """A merge in progress with changes of its own"""
    STALE_REGISTRATION = 'stale-registration'
    """A worktree registered where its directory is gone"""
    MOVED = 'moved'
    """A worktree, or its main dataset, moved by hand: its links to its
    repositories are broken; the message names the ``worktree-repair``
    command that re-links them"""
    NOT_MOVED = 'not-moved'
    """``worktree-repair`` (or ``worktree-move``) given something that is
    not a worktree of ours that was moved (or can be): a main worktree, a
    copy, a directory of something else"""
    ADJUSTED_BRANCH = 'adjusted-branch'
    """An adjusted branch of git-annex (``git annex adjust``) checked out"""
    ANNEX_UNINITIALIZED = 'annex-uninitialized'
    # merging and updating
    CONFLICTS = 'conflicts'
    NOT_FAST_FORWARD = 'not-fast-forward'
    """A fast-forward was asked for (--ff-only), but is not possible"""
    SPARSE_DELETIONS = 'sparse-deletions'
    """A sparse worktree's commits delete files it never checked out"""
    BLOCKED = 'blocked'
    """Not attempted: the work on a subdataset (or on a worktree inside
    this one, or on a source in a subdataset) failed or was refused"""
    # what was asked for
    NOT_A_LINKED_WORKTREE = 'not-a-linked-worktree'
    """A linked worktree is needed: this is a main worktree, or no
    worktree of the dataset"""
    NOT_A_WORKTREE = 'not-a-worktree'
    """Not a worktree of this dataset's repository at all"""
    MAIN_WORKTREE = 'main-worktree'
    """A main worktree, where a linked one is needed (or never removed)"""
    SAME_DATASET = 'same-dataset'
    """A dataset given as its own source"""
    WRONG_DIRECTION = 'wrong-direction'
    """The main worktree merged into one of its linked worktrees"""
    NO_MATCH = 'no-match'
    """A branch name or pattern that names nothing"""
    SEPARATE_CLONE = 'separate-clone'
    """A separate clone where a linked worktree belongs"""
    NOT_INSTALLED = 'not-installed'
    """A subdataset needed that is not installed"""
    MISSING_COMMIT = 'missing-commit'
    """A commit recorded that the repository does not have"""
    NO_COMMIT = 'no-commit'
    UNKNOWN_REVISION = 'unknown-revision'
    """A COMMIT-ISH that names no commit of the dataset"""
    BAD_REVISION = 'bad-revision'
    """A COMMIT-ISH that cannot be used: empty, or like an option"""
    """A dataset without any commit"""
    EXISTS = 'exists'
    """Something other than what was asked for is there already"""
    BRANCH_IN_USE = 'branch-in-use'
    """The branch is checked out in another worktree"""
    BAD_BRANCH = 'bad-branch'
    """A branch name that cannot be used"""
    BAD_PATH = 'bad-path'
    """A path that cannot be used: given, or recorded in .gitmodules"""
    SYMLINK = 'symlink'
    """A symbolic link on a path leads elsewhere"""
    SPARSE_PATH = 'sparse-path'
    """A --sparse PATH that cannot be used here"""
    OUTSIDE_CONE = 'outside-cone'
    """A subdataset outside the sparse checkout of its parent"""
    CONFIGURATION = 'configuration'
    """A repository's configuration blocks it"""
    TOOLS = 'tools'
    """git or git-annex missing, or too old for this"""
    REFUSED_REPOSITORY = 'refused-repository'
    """git itself refuses the repository (a format or extension it does not
    know)"""
    CANNOT_INSPECT = 'cannot-inspect'
    """Reading the repository failed, so it was not checked"""
    NO_PERMISSION = 'no-permission'
    """A directory that the work would change is not writable for the
    user (another user's)"""
    DUBIOUS_OWNERSHIP = 'dubious-ownership'
    """git refuses a repository that another user owns, where no
    ``safe.directory`` trusts it; ``safe_directory`` names the path to
    trust, and the message the command that does"""


@dataclass(frozen=True)
class Problem:
    """Why something cannot be done: a stable code and a message"""
    refusal: Refusal
    message: str
    keys: Mapping[str, Any] = field(default_factory=dict, compare=False)
    """Keys of its record that belong to the problem (such as the paths it
    names), added to those the caller gives"""

    def outcome(self, keys: Mapping[str, Any] | None = None) -> Outcome:
        """The 'impossible' outcome of this problem, with ``keys`` (and
        the problem's own)"""
        return Outcome.refused(self.refusal, self.message,
                               {**(keys or {}), **self.keys})


@dataclass(frozen=True)
class Outcome:
    """What a command did to one dataset, or why it did not

    Immutable: derive a changed one with ``dataclasses.replace`` (or
    ``noted``, ``with_keys``). The command layer turns it into a DataLad
    result record. An 'impossible' outcome always names its ``refusal``.
    """
    status: str
    """'ok', 'notneeded', 'impossible' or 'error'"""
    message: str | None
    keys: Mapping[str, Any] = field(default_factory=dict)
    """Further keys of the result record (a read-only copy of the mapping
    given)"""
    refusal: Refusal | None = None
    """Why it was refused, for an 'impossible' outcome"""

    def __post_init__(self):
        object.__setattr__(self, 'keys', MappingProxyType(dict(self.keys)))
        if self.status == 'impossible' and self.refusal is None:
            raise ValueError(f'a refusal without a code: {self.message}')

    @classmethod
    def refused(cls, refusal: Refusal, message: str,
                keys: Mapping[str, Any] | None = None) -> Outcome:
        """The 'impossible' outcome with the code ``refusal``"""
        return cls('impossible', message, keys or {}, refusal)

    @property
    def failed(self) -> bool:
        return self.status in FAILED

    def noted(self, note: str | None, sep: str = '; ') -> Outcome:
        """This outcome with ``note`` added to its message (where given)"""
        if not note:
            return self
        return replace(self, message=f'{self.message}{sep}{note}'
                       if self.message else note)

    def with_keys(self, **keys: Any) -> Outcome:
        """This outcome with ``keys`` added to (or changed in) its keys"""
        return replace(self, keys=dict(self.keys, **keys))


@dataclass(frozen=True)
class Result:
    """An outcome for the dataset (or worktree) at ``path``, as an engine
    hands it to the command that reports it"""
    path: Path
    outcome: Outcome
    action: str | None = None
    """The action to report it under; None: the reporting command's own"""


def failure(path: Path, exc: Exception, what: str | None = None,
            keys: Mapping[str, Any] | None = None) -> Outcome:
    """The 'error' outcome of an exception raised by the work on the
    dataset at ``path`` (``what`` was being done, by default: git, or the
    work as such, failed there); the exception is kept in the record,
    with ``keys``. Where git refused a repository because another user
    owns it, the outcome is the refusal ``DUBIOUS_OWNERSHIP``, its
    message naming the fix, ``safe_directory`` the path to trust."""
    owned = not_owned(_stderr(exc)) if isinstance(exc, CommandError) \
        else None
    if owned:
        return owned.outcome(what, dict(
            keys or {}, exception=CapturedException(exc)))
    if isinstance(exc, CommandError):
        what = what or f'git failed in {path}'
        detail = error_line(exc)
    else:
        what = what or f'failed in {path}'
        detail = f'{exc.__class__.__name__}: {exc}'
    return Outcome('error', f'{what}: {detail}',
                   dict(keys or {}, exception=CapturedException(exc)))
