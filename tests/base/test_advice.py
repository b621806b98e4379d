"""Advice in the caller's terms: Python arguments for Python callers,
flags on the command line (where DataLad's CLI set its API mode); the
commands' messages, from Python and from the command line, are checked in
test_worktree_remove and test_settings"""

from __future__ import annotations

import datalad

from datalad_worktree.base.advice import command, flag, option


def test_python_terms():
    assert datalad.get_apimode() == 'python'
    assert option('keep_branch') == 'keep_branch=True'
    assert option('setup', False) == 'setup=False'
    assert option('how', 'reset') == "how='reset'"
    assert flag('sparse') == 'sparse'
    assert command('worktree-merge') == 'worktree_merge()'
    assert command('worktree-remove', '/x/wt', dataset='/x/ds') == \
        "worktree_remove('/x/wt', dataset='/x/ds')"


def test_command_line_terms(monkeypatch):
    monkeypatch.setattr(datalad, 'get_apimode', lambda: 'cmdline')
    assert option('keep_branch') == '--keep-branch'
    assert option('setup', False) == '--no-setup'
    assert option('how', 'reset') == '--how reset'
    assert flag('sparse') == '--sparse'
    assert command('worktree-merge') == 'datalad worktree-merge'
    assert command('worktree-remove', '/x/wt', dataset='/x/ds') == \
        'datalad worktree-remove --dataset /x/ds /x/wt'
