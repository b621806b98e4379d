"""What the worktree commands share

Their common parameters and validators, the depth of ``-r``/``-R``, the
number of workers of ``-J``, the check of the tools, and the renderers
that print one readable line per result and DataLad's summary.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import threading
from contextlib import contextmanager
from functools import wraps
from inspect import (
    isgenerator,
    signature,
)
from pathlib import (
    Path,
    PurePath,
)
from typing import (
    Callable,
    Iterator,
)

from datalad.interface.common_opts import (
    jobs_opt,
    recursion_flag,
    recursion_limit,
)
from datalad.interface.utils import (
    generic_result_renderer,
    render_action_summary,
)
from datalad.support import ansi_colors as ac
from datalad.support.parallel import ProducerConsumer
from datalad.ui import ui
from datalad.utils import get_dataset_root
from datalad_next.commands import (
    Parameter,
    ValidatedInterface,
)
from datalad_next.constraints import (
    Constraint,
    ConstraintError,
    DatasetParameter,
    EnsureBool,
    EnsureChoice,
    EnsureDataset,
    EnsureGitRefName,
    EnsureInt,
    EnsureRange,
    EnsureStr,
)
from datalad_next.runners import CommandError

from datalad_worktree.base.advice import flag, option
from datalad_worktree.base.outcome import NotOwned, Outcome, Problem, failure
from datalad_worktree.commands.results import make_result
from datalad_worktree.engine.progress import no_progress_bars
from datalad_worktree.engine.recover import after_interruption
from datalad_worktree.engine.relink import moved_problem
from datalad_worktree.repo.annex import uses_annex
from datalad_worktree.repo.queries import refused_as_not_owned
from datalad_worktree.runners import journal, locks, tools


def max_depth(recursive: bool, recursion_limit: int | None) -> int | None:
    """How deep to walk: -R wins, -r alone is unlimited, neither is 0"""
    if recursion_limit is not None:
        return recursion_limit
    return None if recursive else 0


HIERARCHY_PARAMS = dict(
    recursive=recursion_flag,
    recursion_limit=Parameter(
        args=recursion_limit.cmd_args,
        metavar='LEVELS',
        doc="""limit recursion into subdatasets to the given number of
        levels (implies [CMD: --recursive CMD][PY: recursive=True PY])."""),
    jobs=Parameter(
        args=jobs_opt.cmd_args,
        metavar='NJOBS',
        doc="""how many datasets to handle in parallel. 'auto' and the
        default use DataLad's configured 'datalad.runtime.max-jobs' (one,
        unless configured). A dataset and its subdatasets are never handled
        at the same time."""),
)
"""The -r/-R/-J parameters of every command that walks a hierarchy"""


HIERARCHY_VALIDATORS = dict(
    recursive=EnsureBool(),
    recursion_limit=EnsureInt() & EnsureRange(min=0),
    jobs=(EnsureInt() & EnsureRange(min=1)) | EnsureChoice('auto'),
)


MTIMES_PARAM = Parameter(
    args=('--no-mtimes',),
    dest='mtimes',
    action='store_false',
    doc="""[CMD: do not carry CMD][PY: whether to carry PY] file
    modification times over. By default, each file with the same content
    on both sides gets the modification time of the source's file, so that
    make-style tools (make, Snakemake) find up to date what was up to date
    there.""")


SETUP_PARAM = Parameter(
    args=('--setup',),
    action=argparse.BooleanOptionalAction,
    doc="""run the setup command that a dataset declares for new worktrees
    (configuration item 'datalad.worktree.setup'). By default, only
    commands from the user's own configuration run; give [CMD: --setup
    CMD][PY: setup=True PY] to also run commands that come with the dataset
    in '.datalad/config' (review them first), and [CMD: --no-setup CMD][PY:
    setup=False PY] to run none.""")


BINDPATHS_PARAM = Parameter(
    args=('--no-bindpaths',),
    dest='bindpaths',
    action='store_false',
    doc="""do not configure container bind paths in the new worktrees. By
    default, datasets with containers get them in their new worktrees' own
    configuration (a worktree-only cmdexec, or the run substitution
    'worktree-binds-bwrap' or 'worktree-binds-apptainer' where a dataset
    uses it), so that 'datalad containers-run' there can read annexed
    files.""")


class EnsureInstalledDataset(EnsureDataset):
    """``EnsureDataset(installed=True)``, except for a dataset that git
    refuses because another user owns it (no ``safe.directory`` trusts
    it): for one without an annex, DataLad's check, and its look for
    result hooks in the dataset's configuration, ask git and end the call
    in an exception. Such a dataset is passed on as ``Untrusted``, for the
    command to report git's refusal in its record, with the fix (see
    ``base.outcome.NotOwned``)"""

    def __init__(self, purpose: str):
        super().__init__(installed=True, purpose=purpose)

    def __call__(self, value) -> DatasetParameter:
        try:
            found = super().__call__(value)
        except Exception:
            moved = _moved(value)
            if moved is not None:
                return DatasetParameter(value, moved)
            root = _refused_root(value)
            if root is None:
                raise
            return DatasetParameter(value, Untrusted(*root))
        moved = _moved(value)
        return DatasetParameter(value, moved) if moved is not None else found


class Refused:
    """A dataset that a command cannot work in, passed on by the dataset
    constraint in place of the ``Dataset`` for the command to report why
    (``failures_reported``), with nothing done. It is false, so that
    DataLad looks for result hooks in the user's configuration alone, as
    it cannot read the dataset's"""

    def __init__(self, path: Path):
        self.pathobj = path
        self.path = str(path)

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return f'{type(self).__name__}({self.path!r})'

    def outcome(self, action: str) -> Outcome:
        """The refusal that ``action`` reports for it"""
        raise NotImplementedError


class Moved(Refused):
    """A worktree that was moved by hand, or whose main dataset was: its
    ``.git`` leads nowhere (DataLad finds no dataset there), or its
    registration records another place; reported with the
    ``worktree-repair`` command that re-links it"""

    def __init__(self, path: Path, problem: Problem):
        super().__init__(path)
        self.problem = problem

    def outcome(self, action: str) -> Outcome:
        return self.problem.outcome()


def _moved(value) -> Moved | None:
    """The moved worktree that ``value`` (a path, a Dataset or None: the
    one here) names, or None (also where that cannot be told)"""
    if hasattr(value, 'pathobj'):
        value = value.path
    elif not isinstance(value, (str, PurePath, type(None))):
        return None
    path = Path(os.path.abspath(value if value is not None else os.getcwd()))
    try:
        problem = moved_problem(path)
    except (OSError, CommandError):
        return None
    if problem is None:
        return None
    root = next(p for p in (path, *path.parents)
                if os.path.lexists(p / '.git'))
    return Moved(root, problem)


class Untrusted(Refused):
    """A dataset that git refuses to work in (another user owns it): its
    path and git's refusal, reported with the fix"""

    def __init__(self, path: Path, refusal: NotOwned):
        super().__init__(path)
        self.refusal = refusal

    def outcome(self, action: str) -> Outcome:
        return self.refusal.outcome(f'{action} cannot work in {self.path}')


def _refused_root(value) -> tuple[Path, NotOwned] | None:
    """The root of the dataset that ``value`` (a path, a Dataset or None:
    the one here) names and git's refusal, where git refuses it as another
    user's"""
    if hasattr(value, 'pathobj'):
        value = value.path
    elif not isinstance(value, (str, PurePath, type(None))):
        return None
    root = get_dataset_root(str(value) if value is not None else os.getcwd())
    refusal = refused_as_not_owned(Path(root)) if root else None
    return (Path(root), refusal) if refusal else None


class EnsureBranchName(Constraint):
    """A branch name as given: not one that looks like an option, and one
    that git takes for a branch (``EnsureGitRefName``) unchanged; checked
    before anything is read"""

    def __call__(self, value) -> str:
        value = EnsureStr(min_len=1)(value)
        if value.startswith('-'):
            self.raise_for(value, 'refusing branch name {__value__!r}: it '
                                  'looks like an option')
        try:
            normalized = EnsureGitRefName(allow_onelevel=True)(value)
        except ConstraintError as e:
            self.raise_for(value, '{__value__!r} is not a valid branch name; '
                                  f'choose another with {flag("branch")}, '
                                  f'or use {option("detach")}',
                           __caused_by__=e)
        if normalized != value:
            self.raise_for(value, 'refusing branch name {__value__!r}: give '
                                  'a plain branch name')
        return value

    def short_description(self) -> str:
        return 'branch name'


def tools_problem(top: Path) -> str | None:
    """Why git, or git-annex where the dataset ``top`` uses it, cannot be
    used (missing, or too old); checked once, before anything else"""
    return tools.tools_problem(annex=uses_annex(top))


def render_result(res: dict) -> None:
    """One line per result, in DataLad's form: ``action(status): path
    (type) [message]``, with paths relative to the current directory (also
    in the message); results that had nothing to do are left to the
    summary"""
    if res.get('status') == 'notneeded':
        return
    message = res.get('message')
    if isinstance(message, tuple):
        # DataLad's (format, args) form, from results of other commands
        generic_result_renderer(res)
        return
    # whether to colour is asked once (DataLad's color_word asks its
    # configuration and the terminal for each word)
    color = ac.color_enabled()

    def word(text: str, code: int | None) -> str:
        return ac.color_word(text, code, force=True) if color else text

    status = res['status']
    ui.message('{action}({status}): {path}{type}{msg}'.format(
        action=word(res.get('action'), ac.BOLD),
        status=word(status, ac.RESULT_STATUS_COLORS.get(status)),
        path=shown(res['path']),
        type=f" ({word(res['type'], ac.MAGENTA)})" if 'type' in res else '',
        msg=f' [{relative_paths(message)}]' if message else '',
    ))


ABSOLUTE_PATH = re.compile(
    r"(?<![\w/.:~-])(?<!safe\.directory )(?<!safe\.directory ')"
    r"/[^\s'\",;:()\[\]]*")
"""An absolute path in a message; not the one of a ``safe.directory``,
which git matches as an absolute path only"""


def shown(path: str) -> str:
    """``path`` as a person reads it: relative to the current directory,
    where that is shorter"""
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path
    return rel if len(rel) < len(path) else path


def relative_paths(message: str) -> str:
    """``message`` with its absolute paths shown relative to the current
    directory, where that is shorter (but for those that must stay
    absolute, see ``ABSOLUTE_PATH``)"""
    def one(match):
        path = match.group(0)
        end = len(path.rstrip('.'))
        return shown(path[:end]) + path[end:]
    return ABSOLUTE_PATH.sub(one, message)


def render_summary(results: list, action_summary: dict) -> None:
    """DataLad's summary of the results per action and status, where there
    was more than one"""
    if sum(sum(s.values()) for s in action_summary.values()) > 1:
        render_action_summary(action_summary)


MACHINE_RENDERERS = ('json', 'json_pp')
"""Result renderers whose output is for programs, not people"""


def bars_for_people(command: Callable) -> Callable:
    """Wrap a command's ``@eval_results`` call so that it draws no progress
    bars when its results are rendered for programs (``-f json``), also on
    an interactive terminal"""
    @wraps(command)
    def call(*args, **kwargs):
        if kwargs.get('result_renderer') not in MACHINE_RENDERERS:
            return command(*args, **kwargs)
        with no_progress_bars():
            results = command(*args, **kwargs)
        return _without_bars(results) if isgenerator(results) else results
    return call


def _without_bars(results: Iterator[dict]) -> Iterator[dict]:
    with no_progress_bars():
        yield from results


def failures_reported(action: str) -> Callable:
    """Wrap a command's generator (below ``@eval_results``) so that an
    exception raised out of its work, such as git refusing the dataset
    itself, ends the command with one 'error' record for the dataset
    (``action``, the message naming the dataset and git's reason, the
    exception as ``CapturedException``) instead of a traceback; DataLad's
    ``on_failure`` then applies as to any failure.

    The command runs as one run of this package (``journal.running``): it
    journals what it makes in each repository, for a later run to clean up
    should it die. SIGINT (Ctrl-C) and SIGTERM (as SLURM ends a job at its
    time limit) end it after the work at hand: what it left half made is
    cleaned up (``recover.after_interruption``) and one 'error' record
    says so, with ``interrupted`` naming the signal."""
    def decorate(command: Callable) -> Callable:
        @wraps(command)
        def call(*args, **kwargs):
            given = signature(command).bind(*args, **kwargs).arguments
            param = given.get('dataset')
            ds = getattr(param, 'ds', None)
            top = ds.pathobj if ds is not None else Path.cwd()
            if isinstance(ds, Refused):
                yield make_result(action, top, top, ds.outcome(action))
                return
            with journal.running(action, bool(given.get('dry_run'))) as (
                    run, own), \
                    signals_interrupt(own):
                if own:
                    locks.resume_waiting()
                try:
                    yield from command(*args, **kwargs)
                except KeyboardInterrupt as e:
                    if not own:
                        raise
                    yield make_result(action, top, top, interrupted(
                        e, after_interruption(run)))
                except Exception as e:
                    yield make_result(action, top, top, failure(
                        top, e, f'{action} stopped: it failed in {top}'))
                except BaseException:
                    # closed early (GeneratorExit), or a second signal
                    if own:
                        after_interruption(run)
                    raise
        return call
    return decorate


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived: ends a command as Ctrl-C does"""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _terminate(signum, frame):
    raise Terminated(signum)


@contextmanager
def signals_interrupt(own: bool) -> Iterator[None]:
    """While a command runs (``own``: as the run of this process, not
    called by another command), SIGTERM interrupts it as SIGINT does
    (``Terminated``), where SIGTERM has its default action and this is the
    main thread (the only one signal handlers can be set in)"""
    if not own or threading.current_thread() is not \
            threading.main_thread() or \
            signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return
    signal.signal(signal.SIGTERM, _terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def interrupted(e: KeyboardInterrupt, notes: list[str]) -> Outcome:
    """The 'error' outcome of a command that SIGINT or SIGTERM ended"""
    name = e.args[0] if isinstance(e, Terminated) else 'SIGINT'
    done = f' ({"; ".join(notes)})' if notes else ''
    return Outcome('error', (
        f'interrupted by {name}: the work at hand was finished or undone'
        f'{done}; run the same command again to finish the job'),
        {'interrupted': name})


class WorktreeInterface(ValidatedInterface):
    """What the worktree commands share: DataLad's rendering of results,
    with paths relative to the current directory, and its summary"""
    result_renderer = 'tailored'
    custom_result_summary_renderer_pass_summary = True

    @staticmethod
    def custom_result_renderer(res, **kwargs):
        render_result(res)

    @staticmethod
    def custom_result_summary_renderer(results, action_summary):
        render_summary(results, action_summary)


def worker_count(jobs: int | str | None) -> int:
    """How many datasets to handle at the same time for ``-J``: the number
    given, or for 'auto' and by default DataLad's configured
    ``datalad.runtime.max-jobs``; at least one"""
    return max(1, ProducerConsumer.get_effective_jobs(jobs) or 1)
