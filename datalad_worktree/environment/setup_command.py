"""A ready-to-run environment in every new worktree

A dataset declares how to set up a new worktree of itself (a virtual
environment in ``code/``, say) with two configuration items:

``datalad.worktree.setup``
    a shell command, run with the dataset's new worktree as the working
    directory;
``datalad.worktree.setup-inputs``
    the files it depends on (space-separated, relative to the dataset):
    ``worktree-sync`` reruns the command when one of them changed.

The items may be in the user's own configuration (the dataset's or the
user's git configuration, ``datalad -c datalad.worktree.setup=...``, or
the environment variable ``DATALAD_WORKTREE_SETUP``), read with DataLad's
configuration manager, or in the committed ``.datalad/config`` (code that
comes with the dataset, possibly from someone else). Commands from the
user's own configuration run by default; commands only found in
``.datalad/config`` run only when the user asks for setup explicitly
(``--setup``), and are otherwise reported, so that nothing a cloned
dataset brings along runs unseen.

This is the one module that starts a user's command.
"""

from __future__ import annotations

import subprocess
import sys
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from datalad_next.exceptions import CapturedException

from datalad_worktree.base.advice import command, option
from datalad_worktree.base.outcome import Outcome
from datalad_worktree.repo.config import dataset_config, may_be_configured
from datalad_worktree.repo.queries import differ_between

SETUP_KEY = 'datalad.worktree.setup'


INPUTS_KEY = 'datalad.worktree.setup-inputs'


ACTION = 'worktree-setup'


TAIL_LINES = 10


@dataclass(frozen=True)
class SetupCommand:
    """The setup a dataset declares for its new worktrees"""
    command: str
    inputs: tuple[str, ...]
    committed: bool
    """Whether it comes only from the dataset's committed .datalad/config"""


def declared_setup(worktree: Path) -> SetupCommand | None:
    """The setup command of the dataset checked out at ``worktree``"""
    if not may_be_configured(worktree, SETUP_KEY):
        return None
    config = dataset_config(worktree)
    for source in ('local', 'branch'):
        command = (config.get_from_source(source, SETUP_KEY) or '').strip()
        if command:
            inputs = config.get_from_source(source, INPUTS_KEY) or ''
            return SetupCommand(command, tuple(inputs.split()),
                                committed=source == 'branch')
    return None


def setup_outcome(worktree: Path, wanted: bool | None,
                  due: Callable[[SetupCommand], bool]) -> Outcome | None:
    """Run the setup that the dataset at ``worktree`` declares, if it is
    ``due`` (or ``wanted`` is True) and may run; None when there is nothing
    to report"""
    setup = declared_setup(worktree)
    if setup is None or (wanted is None and not due(setup)):
        return None
    reason = skip_reason(setup, wanted)
    if reason:
        return Outcome('notneeded', reason, dict(setup_command=setup.command))
    return run_setup(worktree, setup)


def skip_reason(setup: SetupCommand, wanted: bool | None) -> str | None:
    """Why ``setup`` does not run, given the user's --setup choice, or None"""
    if wanted is False:
        return f'setup not run ({option("setup", False)})'
    if wanted is None and setup.committed:
        return (f"the dataset declares the setup command {setup.command!r} "
                "in .datalad/config; it was not run because it comes with "
                f"the dataset: review it, then run it with {option('setup')} "
                "(or put it "
                f"in the local configuration: git config {SETUP_KEY} ...)")
    return None


def inputs_changed(worktree: Path, setup: SetupCommand, before: str,
                   after: str) -> bool:
    """Whether a file the setup depends on differs between two commits"""
    if not setup.inputs or before == after:
        return False
    return differ_between(worktree, before, after, list(setup.inputs))


def run_setup(worktree: Path, setup: SetupCommand) -> Outcome:
    """Run the setup command in ``worktree``, showing its output as it runs
    (on stderr, so that JSON results on stdout stay parseable)"""
    keys = dict(setup_command=setup.command)
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    print(f'[worktree-setup] {worktree}: {setup.command}', file=sys.stderr)
    try:
        proc = subprocess.Popen(['sh', '-c', setup.command], cwd=worktree,
                                stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True,
                                errors='replace')
    except OSError as e:
        return Outcome('error', f'cannot run the setup command: {e}',
                       dict(keys, exception=CapturedException(e)))
    for line in proc.stdout:
        sys.stderr.write(line)
        tail.append(line.rstrip('\n'))
    code = proc.wait()
    keys.update(exit_code=code, output_tail=list(tail))
    if code:
        last = ' | '.join(tail) or '(no output)'
        return Outcome('error', (
            f'setup command {setup.command!r} failed with exit code {code}; '
            f'last output: {last}. The worktree was kept: fix the problem, '
            'then rerun the setup with '
            f"'{command('worktree-sync', setup=True)}'"),
            keys)
    return Outcome('ok', f'ran setup command {setup.command!r}', keys)
