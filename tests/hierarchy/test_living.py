"""Hierarchies that change after the worktree was made (real git, annex,
DataLad): subdatasets merged before, installed later, new in development;
file names that are not UTF-8; one dataset's failure held to that dataset"""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path, PurePosixPath

import pytest
from datalad import api as dl

from datalad_worktree.hierarchy.walk import Node
from datalad_worktree.commands.results import make_result
from datalad_worktree.engine.scheduler import bottom_up

from tests.helpers import (
    add,
    by_path,
    commit_file,
    git,
    quiet,
    recorded,
)
from tests.integration.test_reliability import (
    PAUSED,
    WIDE,
    assert_parents_record_children,
    count_moved,
    head,
    kill_at,
    rerun_to_convergence,
    tips,
    wide_for,  # noqa: F401 (fixture)
    wide_template,  # noqa: F401 (fixture)
    wide_templates,  # noqa: F401 (fixture)
)

BPOD = 'raw/bpod'


def clean(top: Path) -> bool:
    return all(s['state'] == 'clean' for s in dl.status(
        dataset=top, recursive=True, **quiet()))


def save_up(top: Path, message: str) -> None:
    dl.save(dataset=top, recursive=True, message=message, **quiet())


# ---------------------------------------------------------------------------
# worktree-merge: pointer conflicts of subdatasets merged before


def both_sides_commit(origin: Path, wt: Path) -> None:
    """New commits in raw/bpod of the main worktree and of the worktree,
    each recorded in its top dataset"""
    commit_file(origin / BPOD, 'main.txt', 'from main\n', 'main side')
    save_up(origin, 'record main side')
    commit_file(wt / BPOD, 'wt.txt', 'from the worktree\n', 'worktree side')
    save_up(wt, 'record worktree side')


@pytest.mark.slow
def test_merge_after_a_subdataset_was_merged_by_hand(origin, runs):
    wt = runs  # conftest's: worktree-add -r --branch runs, restored
    both_sides_commit(origin, wt)
    # the subdataset first, on its own, as a user would
    first = dl.worktree_merge(str(wt / BPOD), dataset=origin / BPOD,
                              **quiet())
    assert [r['status'] for r in first] == ['ok']
    res = by_path(dl.worktree_merge(str(wt), dataset=origin, recursive=True,
                                    **quiet()), origin)
    assert res['.']['status'] == 'ok', res['.']
    assert res[BPOD]['status'] == 'notneeded'
    assert recorded(origin, BPOD) == head(origin / BPOD)
    assert (origin / BPOD / 'wt.txt').read_text() == 'from the worktree\n'
    assert (origin / BPOD / 'main.txt').read_text() == 'from main\n'
    assert clean(origin)


@pytest.mark.slow
def test_pointer_conflict_with_an_unmerged_subdataset_is_refused(
        origin, runs):
    """A subdataset whose checkout does not contain both sides is no
    excuse: the parent's conflict is refused and nothing changes there"""
    wt = runs  # conftest's: worktree-add -r --branch runs, restored
    both_sides_commit(origin, wt)
    before = head(origin)
    res = by_path(dl.worktree_merge(str(wt), dataset=origin, **quiet()),
                  origin)
    assert res['.']['status'] == 'impossible'
    assert BPOD in res['.']['message']
    assert head(origin) == before
    assert recorded(origin, BPOD) != head(wt / BPOD)


@pytest.mark.reliability
@pytest.mark.parametrize('point, sig', [
    (5, signal.SIGKILL), (15, signal.SIGINT), ('ref', signal.SIGKILL)],
    ids=['5done-SIGKILL', '15done-SIGINT', 'in-branch-update-SIGKILL'])
def test_interrupted_diverged_merge_converges(wide_for, tmp_path, sig,  # noqa
                                              point):
    """Both sides committed in all 20 datasets, so every dataset needs a
    merge commit and every parent a resolved pointer conflict: a
    `worktree-merge -r` killed part-way converges on rerun, main clean"""
    # a 'runs' worktree, then a new commit in every main dataset and in
    # every worktree dataset, made once for all three cases
    wide, wt = wide_for('runs+dev+results'), tmp_path / 'runs'
    for rel in WIDE:
        assert (wide / rel / 'dev.dat').exists(), rel
        assert (wt / rel / 'result.dat').exists(), rel
    theirs = {rel: head(wt / rel) for rel in WIDE}
    ours = {rel: head(wide / rel) for rel in WIDE}
    start = tips(wide, 'main')
    kill_at(point, ['worktree-merge', '-r', str(wt)], wide, sig,
            lambda: count_moved(wide, 'main', start), wide / PAUSED, 'main')
    rerun_to_convergence(lambda: dl.worktree_merge(
        str(wt), dataset=wide, recursive=True, **quiet()))
    for rel in WIDE:
        for commit in (theirs[rel], ours[rel]):
            git(wide / rel, 'merge-base', '--is-ancestor', commit, 'HEAD')
        assert (wide / rel / 'result.dat').read_text() == \
            f'result.dat of {rel}\n'
    assert_parents_record_children(wide)
    assert clean(wide)


# ---------------------------------------------------------------------------
# worktree-sync and worktree-add: subdatasets installed in main later


@pytest.fixture
def installed_later(origin, tmp_path):
    """A worktree made while raw/bpod was not installed in main; then it
    is installed there (put back in place)"""
    away = tmp_path / 'away'
    shutil.move(origin / BPOD, away)
    (origin / BPOD).mkdir()
    wt = tmp_path / 'runs'
    res = by_path(add(origin, wt, branch='runs', recursive=True), wt)
    assert res[BPOD]['status'] == 'notneeded'
    (origin / BPOD).rmdir()
    shutil.move(away, origin / BPOD)
    return wt


def assert_linked_at_recorded_commit(origin: Path, wt: Path) -> None:
    common = Path(git(wt / BPOD, 'rev-parse', '--path-format=absolute',
                      '--git-common-dir'))
    assert common == origin / BPOD / '.git'
    assert head(wt / BPOD) == recorded(wt, BPOD)
    assert git(wt / BPOD, 'symbolic-ref', 'HEAD') == 'refs/heads/runs'
    assert (wt / BPOD / 'sub-01/trials.tsv').read_text().startswith('bpod')


def test_sync_makes_worktrees_of_subdatasets_installed_later(
        installed_later, origin):
    wt = installed_later
    dry = dl.worktree_sync(dataset=wt, recursive=True, dry_run=True,
                           **quiet())
    assert not (wt / BPOD / '.git').exists()
    assert [r['status'] for r in dry if r['action'] == 'worktree-add'] == \
        ['ok']
    res = dl.worktree_sync(dataset=wt, recursive=True, **quiet())
    made = [r for r in res if r['action'] == 'worktree-add']
    assert [(r['status'], r['path']) for r in made] == \
        [('ok', str(wt / BPOD))]
    assert all(r['status'] in ('ok', 'notneeded') for r in res), res
    assert_linked_at_recorded_commit(origin, wt)
    assert clean(wt)


def test_rerun_of_add_makes_worktrees_of_subdatasets_installed_later(
        installed_later, origin):
    wt = installed_later
    res = by_path(add(origin, wt, branch='runs', recursive=True), wt)
    assert res[BPOD]['status'] == 'ok'
    assert res['.']['status'] == 'notneeded'
    assert_linked_at_recorded_commit(origin, wt)


@pytest.mark.slow
def test_sync_makes_worktrees_of_subdatasets_new_in_development(
        origin, runs):
    wt = runs  # conftest's: worktree-add -r --branch runs, restored
    dl.create(origin / 'derived/L5b/extra', dataset=origin / 'derived/L5b',
              result_renderer='disabled')
    (origin / 'derived/L5b/extra/notes.txt').write_text('new dataset\n')
    save_up(origin, 'a new subdataset')
    res = dl.worktree_sync(dataset=wt, recursive=True, **quiet())
    made = [r for r in res if r['action'] == 'worktree-add']
    assert [(r['status'], r['path']) for r in made] == \
        [('ok', str(wt / 'derived/L5b/extra'))]
    assert (wt / 'derived/L5b/extra/notes.txt').read_text() == \
        'new dataset\n'
    assert clean(wt)


def test_sync_refuses_a_new_worktree_it_cannot_make_and_changes_nothing(
        installed_later, origin):
    """raw/bpod has a branch 'runs' at another commit already: the new
    worktree is refused with add's reason, the branch is left alone"""
    wt = installed_later
    other = commit_file(origin / BPOD, 'x.txt', 'x\n', 'elsewhere')
    git(origin / BPOD, 'branch', 'runs', other)
    git(origin / BPOD, 'reset', '-q', '--hard', 'HEAD~1')
    res = dl.worktree_sync(dataset=wt, recursive=True, **quiet())
    made = [r for r in res if r['action'] == 'worktree-add']
    assert [r['status'] for r in made] == ['impossible']
    assert 'may hold unmerged work' in made[0]['message']
    assert git(origin / BPOD, 'rev-parse', 'refs/heads/runs') == other
    assert not (wt / BPOD / '.git').exists()


# ---------------------------------------------------------------------------
# file names that are not UTF-8, in all five commands

NAME = os.fsdecode(b'caf\xe9.txt')


@pytest.mark.slow
def test_non_utf8_names_in_every_command(origin, tmp_path):
    # in a commit of the main worktree: add checks out and carries mtimes
    code = origin / 'derived/L5b/code'
    commit_file(code, NAME, 'latin-1\n', 'a latin-1 file name')
    save_up(origin, 'record it')
    wt = tmp_path / 'runs'
    res = add(origin, wt, branch='runs', recursive=True)
    assert all(r['status'] in ('ok', 'notneeded') for r in res), res
    assert (wt / 'derived/L5b/code' / NAME).read_text() == 'latin-1\n'
    # untracked in the worktree: list reports it as not clean
    (wt / 'raw/2p' / NAME).write_text('untracked\n')
    listed = dl.worktree_list(dataset=origin, recursive=True, **quiet())
    assert {r['relpath']: r['clean'] for r in listed}['raw/2p'] is False
    # sync brings a new commit with such a name; one that would overwrite
    # an untracked file of that name is refused, and names it
    commit_file(origin / 'raw/bpod', NAME, 'new\n', 'another')
    save_up(origin, 'record it')
    (wt / 'raw/bpod' / NAME).write_text('mine\n')
    res = by_path(dl.worktree_sync(dataset=wt, recursive=True, **quiet()),
                  wt)
    assert res['raw/bpod']['status'] == 'impossible'
    assert NAME in res['raw/bpod']['message']
    assert (wt / 'raw/bpod' / NAME).read_text() == 'mine\n'
    (wt / 'raw/bpod' / NAME).unlink()
    res = dl.worktree_sync(dataset=wt, recursive=True, **quiet())
    assert all(r['status'] in ('ok', 'notneeded') for r in res), res
    # merge brings one home
    commit_file(wt / 'raw/2p', 'r' + NAME, 'result\n', 'a result')
    git(wt, 'commit', '-q', '-m', 'record it', '--', 'raw/2p')
    res = dl.worktree_merge(str(wt), dataset=origin, recursive=True,
                            **quiet())
    assert all(r['status'] in ('ok', 'notneeded') for r in res), res
    assert (origin / 'raw/2p' / ('r' + NAME)).read_text() == 'result\n'
    # remove refuses while the untracked file is there, and names it
    res = dl.worktree_remove(str(wt), dataset=origin, **quiet())
    assert any(NAME in r['message'] for r in res
               if r['status'] == 'impossible'), res
    assert (wt / 'raw/2p' / NAME).exists()
    (wt / 'raw/2p' / NAME).unlink()
    res = dl.worktree_remove(str(wt), dataset=origin, **quiet())
    assert all(r['status'] == 'ok' for r in res), res
    assert not wt.exists()


@pytest.mark.slow
def test_non_utf8_names_on_the_command_line(origin, tmp_path):
    import subprocess
    import sys
    wt = tmp_path / 'runs'
    add(origin, wt, branch='runs')
    (wt / NAME).write_text('untracked\n')
    datalad = str(Path(sys.executable).with_name('datalad'))
    for args, says in ((['worktree-list'], b'not clean'),
                       (['worktree-remove', str(wt)], b'caf'),
                       (['-f', 'json', 'worktree-remove', str(wt)], b'caf')):
        out = subprocess.run([datalad, *args], cwd=origin,
                             capture_output=True)
        assert b'Traceback' not in out.stderr, out.stderr
        assert says in out.stdout, out.stdout
    assert (wt / NAME).exists()


# ---------------------------------------------------------------------------
# one dataset's unexpected failure: an error record, the others finish


def test_any_exception_is_an_error_record_for_its_dataset_only():
    top = Node(path=Path('/top'), relpath=PurePosixPath('.'), commit='',
               depth=0)
    nodes = [top] + [
        Node(path=Path(f'/top/{n}'), relpath=PurePosixPath(n), commit='',
             depth=1, parent=PurePosixPath('.')) for n in ('a', 'b')]

    def work(node):
        if node.relpath == PurePosixPath('a'):
            raise ValueError('unexpected')
        from datalad_worktree.base.outcome import Outcome
        return Outcome('ok', 'done')

    out = {str(n.relpath): o for n, o in bottom_up(
        nodes, work, 2, lambda b: f'blocked by {b.path}')}
    assert out['a'].status == 'error'
    assert out['a'].message == 'failed in /top/a: ValueError: unexpected'
    assert out['b'].status == 'ok'
    assert out['.'].status == 'impossible'
    assert out['.'].message == 'blocked by /top/a'
    res = make_result('worktree-sync', Path('/top/a'), Path('/top'), out['a'])
    assert res['status'] == 'error'
    assert 'ValueError' in res['exception'].format_oneline_tb() or \
        res['exception'].name == 'ValueError'


# ---------------------------------------------------------------------------
# adjusted branches (git annex adjust): refused up front, nothing changed


def adjust(repo: Path) -> None:
    git(repo, 'annex', 'adjust', '--unlock')


def test_add_refuses_a_dataset_on_an_adjusted_branch(origin, tmp_path):
    from tests.helpers import snapshot
    adjust(origin / BPOD)
    before = snapshot(origin)
    wt = tmp_path / 'runs'
    res = add(origin, wt, branch='runs', recursive=True)
    refused = [r for r in res if r['status'] == 'impossible']
    assert [r['path'] for r in refused] == [str(wt / BPOD)]
    assert 'adjusted/main(unlocked)' in refused[0]['message'] or \
        'adjusted/master(unlocked)' in refused[0]['message']
    assert "git checkout" in refused[0]['message']
    assert all(r['status'] == 'impossible' for r in res)
    assert snapshot(origin) == before
    assert not wt.exists()


def test_sync_and_merge_refuse_an_adjusted_worktree(origin, runs):
    wt = runs  # conftest's: worktree-add -r --branch runs, restored
    adjust(wt / BPOD)
    wt_head, main_head = head(wt / BPOD), head(origin / BPOD)
    res = by_path(dl.worktree_sync(dataset=wt, recursive=True, **quiet()),
                  wt)
    assert res[BPOD]['status'] == 'impossible'
    assert 'adjusted branch' in res[BPOD]['message']
    assert res['.']['status'] == 'impossible'
    res = by_path(dl.worktree_merge(str(wt), dataset=origin, recursive=True,
                                    **quiet()), origin)
    assert res[BPOD]['status'] == 'impossible'
    assert 'adjusted branch' in res[BPOD]['message']
    assert (head(wt / BPOD), head(origin / BPOD)) == (wt_head, main_head)
