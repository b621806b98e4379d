"""Advice in the caller's terms: command-line flags or Python arguments

A message that tells the user to give an option names it as the user gives
it: ``--keep-branch`` to someone at a shell, ``keep_branch=True`` to a
Python caller (a script, a Jupyter notebook). DataLad's command line sets
its API mode (``datalad.get_apimode()``: 'cmdline') before any command
runs; everything else is Python. Only this package's own options and
commands are rendered so; git's commands, and DataLad's own that a message
names, stay as they are typed at a shell.
"""

from __future__ import annotations

from typing import Any

import datalad


def from_cmdline() -> bool:
    """Whether this process is DataLad's command line"""
    return datalad.get_apimode() == 'cmdline'


def flag(name: str) -> str:
    """The name of the parameter ``name`` (as in Python: ``keep_branch``)
    as the caller spells it: ``--keep-branch``, or ``keep_branch``"""
    return f'--{name.replace("_", "-")}' if from_cmdline() else name


def option(name: str, value: Any = True) -> str:
    """The parameter ``name`` given ``value``, as the caller gives it:
    ``--force``, ``--no-setup``, ``--how reset`` on the command line;
    ``force=True``, ``setup=False``, ``how='reset'`` in Python"""
    if not from_cmdline():
        return f'{name}={value!r}'
    if value is True:
        return flag(name)
    if value is False:
        return f'--no-{name.replace("_", "-")}'
    return f'{flag(name)} {value}'


def command(name: str, *args: str, **options: Any) -> str:
    """This package's command ``name`` (``worktree-sync``) called with the
    arguments ``args`` and ``options``, as the caller writes it:
    ``datalad worktree-sync --setup``, or ``worktree_sync(setup=True)``
    (a function of ``datalad.api``, and a method of a ``Dataset``)"""
    if from_cmdline():
        return ' '.join(['datalad', name, *(option(k, v) for k, v in
                                           options.items()), *args])
    given = [repr(a) for a in args] + [option(k, v)
                                       for k, v in options.items()]
    return f'{name.replace("-", "_")}({", ".join(given)})'
