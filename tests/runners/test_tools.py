"""The versions of git and git-annex, as DataLad's external_versions finds
them, against the oldest supported"""

from __future__ import annotations

import pytest
from looseversion import LooseVersion

from datalad_worktree.runners import tools


@pytest.fixture
def found(monkeypatch):
    """What external_versions answers, set by the test; tools_problem's
    remembered answers forgotten before and after"""
    answers = {}
    monkeypatch.setattr(tools, 'external_versions', answers)
    tools.tools_problem.cache_clear()
    yield answers
    tools.tools_problem.cache_clear()


def test_this_machines_git_and_git_annex_are_recent_enough():
    assert tools.version() >= tools.MIN_GIT
    assert tools.annex_version() >= tools.MIN_ANNEX
    assert tools.tools_problem(True) is None


def test_versions_as_external_versions_gives_them(found):
    found.update({'cmd:git': LooseVersion('2.39.5'),
                  'cmd:annex': LooseVersion('10.20230626-g1a2b3c')})
    assert (tools.version(), tools.annex_version()) == \
        ((2, 39), (10, 20230626))
    assert tools.tools_problem(True) is tools.tools_problem(False) is None
    found['cmd:git'] = LooseVersion('2.30.9')
    assert tools.tools_problem(False) is None  # remembered
    tools.tools_problem.cache_clear()
    assert 'git 2.31 or newer is needed, but an older one' in \
        tools.tools_problem(False)


def test_missing_tools(found):
    found.update({'cmd:git': None, 'cmd:annex': None})
    assert 'but none was found' in tools.tools_problem(False)
    found['cmd:git'] = LooseVersion('2.45.0')
    tools.tools_problem.cache_clear()
    assert tools.tools_problem(False) is None
    assert 'no working git-annex' in tools.tools_problem(True)
    found['cmd:annex'] = LooseVersion('8.20210223')
    tools.tools_problem.cache_clear()
    assert 'but 8.20210223 was found' in tools.tools_problem(True)
