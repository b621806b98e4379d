"""Outcomes are immutable values, and the engines never change one they
were given: integrate leaves its caller's keys alone, record_pointers
returns a new outcome"""

from __future__ import annotations

import dataclasses
from pathlib import (
    Path,
    PurePosixPath,
)

import pytest
from datalad_next.exceptions import CapturedException

from datalad_worktree.base.outcome import (
    Outcome,
    Problem,
    Refusal,
    failure,
)
from datalad_worktree.commands.results import make_result
from datalad_worktree.engine.integrate import integrate, record_pointers
from datalad_worktree.hierarchy.walk import Node
from tests.helpers import (
    commit_file,
    git,
)


def test_an_outcome_cannot_be_changed():
    keys = dict(source='/a')
    outcome = Outcome('ok', 'done', keys)
    with pytest.raises(dataclasses.FrozenInstanceError):
        outcome.status = 'error'
    with pytest.raises(TypeError):
        outcome.keys['source'] = '/b'
    # the mapping given is copied: changing it later changes nothing
    keys['source'] = '/b'
    assert outcome.keys == dict(source='/a')
    noted = outcome.noted('more').with_keys(recorded=['x'])
    assert (noted.message, dict(noted.keys)) == (
        'done; more', dict(source='/a', recorded=['x']))
    assert (outcome.message, dict(outcome.keys)) == ('done',
                                                      dict(source='/a'))


def test_a_refusal_has_a_code_and_the_record_names_it():
    with pytest.raises(ValueError):
        Outcome('impossible', 'no code')
    refused = Problem(Refusal.CONFLICTS, 'conflicts in x').outcome(
        dict(conflicts=['x']))
    assert refused.status == 'impossible' and refused.failed
    res = make_result('worktree-merge', Path('/top/a'), Path('/top'),
                      refused)
    assert res['refusal'] == 'conflicts'
    assert res['message'] == 'conflicts in x'
    assert res['conflicts'] == ['x']
    ok = make_result('worktree-merge', Path('/top'), Path('/top'),
                     Outcome('ok', 'merged'))
    assert 'refusal' not in ok


def test_the_codes_are_distinct_and_stable_strings():
    values = [r.value for r in Refusal]
    assert len(values) == len(set(values))
    assert all(v == v.lower() and ' ' not in v for v in values)


def test_an_error_keeps_its_exception():
    outcome = failure(Path('/top'), ValueError('boom'))
    assert isinstance(outcome.keys['exception'], CapturedException)
    res = make_result('worktree-add', Path('/top'), Path('/top'), outcome)
    assert res['status'] == 'error'
    assert isinstance(res['exception'], CapturedException)


@pytest.fixture
def repo(tmp_path) -> Path:
    """A plain git repository with one commit on its branch 'main', and a
    branch 'other' one commit ahead"""
    repo = tmp_path / 'repo'
    repo.mkdir()
    git(repo, 'init', '-q', '-b', 'main')
    commit_file(repo, 'a.txt', 'a\n', 'first')
    git(repo, 'branch', 'other')
    git(repo, 'checkout', '-q', 'other')
    commit_file(repo, 'b.txt', 'b\n', 'second')
    git(repo, 'checkout', '-q', 'main')
    return repo


def test_integrate_leaves_the_keys_it_was_given_alone(repo):
    keys = dict(source='branch other')
    tip = git(repo, 'rev-parse', 'other')
    outcome = integrate(repo, tip, what='other', ff_only=False,
                        message='merge', subdatasets=[], dry_run=False,
                        keep_untouched=True, keys=keys)
    assert outcome.status == 'ok' and outcome.keys['how'] == 'fast-forward'
    assert outcome.keys['to_commit'] == tip
    assert keys == dict(source='branch other')
    again = integrate(repo, tip, what='other', ff_only=False,
                      message='merge', subdatasets=[], dry_run=False,
                      keep_untouched=True, keys=keys)
    assert again.status == 'notneeded'
    assert keys == dict(source='branch other')


def test_record_pointers_returns_a_new_outcome(repo):
    sub = repo / 'sub'
    sub.mkdir()
    git(sub, 'init', '-q', '-b', 'main')
    commit_file(sub, 'c.txt', 'c\n', 'sub first')
    git(repo, 'add', 'sub')
    git(repo, 'commit', '-q', '-m', 'record sub')
    new = commit_file(sub, 'd.txt', 'd\n', 'sub second')
    child = Node(path=sub, relpath=PurePosixPath('sub'), commit='', depth=1,
                 parent=PurePosixPath('.'))
    given = Outcome('notneeded', 'nothing new', dict(to_commit='x'))
    recorded = record_pointers(repo, [child], 'record', given, 'new')
    assert (given.status, given.message, dict(given.keys)) == (
        'notneeded', 'nothing new', dict(to_commit='x'))
    assert recorded.status == 'ok'
    assert recorded.message == 'nothing new; recorded the new state of sub'
    assert recorded.keys['recorded'] == ['sub']
    assert recorded.keys['to_commit'] == git(repo, 'rev-parse', 'HEAD')
    assert git(repo, 'rev-parse', 'HEAD:sub') == new
    # nothing to record: the very outcome given
    assert record_pointers(repo, [child], 'record', given, 'new') is given
