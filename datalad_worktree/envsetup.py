"""A ready-to-run environment in every new worktree

A dataset declares how to set up a new worktree of itself (a virtual
environment in ``code/``, say) with two configuration items:

``datalad.worktree.setup``
    a shell command, run with the dataset's new worktree as the working
    directory;
``datalad.worktree.setup-inputs``
    the files it depends on (space-separated, relative to the dataset):
    ``worktree-sync`` reruns the command when one of them changed.

The items may be in the local git configuration of the dataset (the
user's own decision) or in the committed ``.datalad/config`` (code that
comes with the dataset, possibly from someone else). Commands from the
local configuration run by default; commands only found in
``.datalad/config`` run only when the user asks for setup explicitly
(``--setup``), and are otherwise reported, so that nothing a cloned
dataset brings along runs unseen.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from datalad_next.commands import Parameter
from datalad_next.runners import CommandError

from .core import (
    Outcome,
    config_value,
    git_out,
)

SETUP_KEY = 'datalad.worktree.setup'
INPUTS_KEY = 'datalad.worktree.setup-inputs'
ACTION = 'worktree-setup'
TAIL_LINES = 10

SETUP_PARAM = Parameter(
    args=('--setup',),
    action=argparse.BooleanOptionalAction,
    doc="""run the setup command that a dataset declares for new worktrees
    (configuration item 'datalad.worktree.setup'). By default, only
    commands from the local git configuration run; give [CMD: --setup
    CMD][PY: setup=True PY] to also run commands that come with the dataset
    in '.datalad/config' (review them first), and [CMD: --no-setup CMD][PY:
    setup=False PY] to run none.""")


@dataclass(frozen=True)
class SetupCommand:
    """The setup a dataset declares for its new worktrees"""
    command: str
    inputs: tuple[str, ...]
    committed: bool
    """Whether it comes only from the dataset's committed .datalad/config"""


def declared_setup(worktree: Path) -> SetupCommand | None:
    """The setup command of the dataset checked out at ``worktree``"""
    committed_file = worktree / '.datalad' / 'config'
    sources = [('--local',)]
    if committed_file.is_file():
        sources.append(('--file', str(committed_file)))
    for i, where in enumerate(sources):
        command = (config_value(worktree, SETUP_KEY, where) or '').strip()
        if command:
            inputs = config_value(worktree, INPUTS_KEY, where) or ''
            return SetupCommand(command, tuple(inputs.split()),
                                committed=i > 0)
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
        return 'setup not run (--no-setup)'
    if wanted is None and setup.committed:
        return (f"the dataset declares the setup command {setup.command!r} "
                "in .datalad/config; it was not run because it comes with "
                "the dataset: review it, then run it with --setup (or put it "
                f"in the local configuration: git config {SETUP_KEY} ...)")
    return None


def inputs_changed(worktree: Path, setup: SetupCommand, before: str,
                   after: str) -> bool:
    """Whether a file the setup depends on differs between two commits"""
    if not setup.inputs or before == after:
        return False
    try:
        git_out(worktree, ['diff', '--quiet', before, after, '--',
                           *setup.inputs])
    except CommandError as e:
        if e.returncode == 1:
            return True
        raise
    return False


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
        return Outcome('error', f'cannot run the setup command: {e}', keys)
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
            "then rerun the setup with 'datalad worktree-sync --setup'"),
            keys)
    return Outcome('ok', f'ran setup command {setup.command!r}', keys)
