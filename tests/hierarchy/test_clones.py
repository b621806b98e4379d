"""Subdatasets obtained inside a worktree (real git, annex, DataLad):
``worktree-get`` makes them linked worktrees of the main worktree's copies
without touching a remote, and a separate clone where a worktree belongs
is listed, refused while it holds work the main worktree lacks, and never
deleted with that work"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest
from datalad import api as dl

from datalad_worktree.repo.worktrees import same_repository

from tests.helpers import (
    DATALAD,
    DERIVED,
    add,
    by_path,
    clean,
    commit_file,
    git,
    quiet,
    recorded,
    snapshot,
)

BPOD = 'raw/bpod'
NAME = os.fsdecode(b'caf\xe9.txt')
"""A file name that is not UTF-8"""
MODELS = f'{DERIVED}/models'


def linked_to(main_copy: Path, place: Path) -> bool:
    """Whether ``place`` is a linked worktree of ``main_copy``"""
    return same_repository(main_copy, place) and f'worktree {place}\n' in \
        git(main_copy, 'worktree', 'list', '--porcelain')


@pytest.fixture
def models(origin, tmp_path) -> Path:
    """A subdataset with a source of its own (``models-src``, an annexed
    file), recorded in derived/L5b but not installed in the main worktree;
    returns its source"""
    src = dl.create(tmp_path / 'models-src', result_renderer='disabled')
    (src.pathobj / 'weights.bin').write_text('trained weights\n')
    src.save(message='weights', result_renderer='disabled')
    dl.clone(source=str(src.pathobj), path=origin / MODELS,
             dataset=origin / DERIVED, result_renderer='disabled')
    dl.save(dataset=origin, recursive=True, message='add models',
            result_renderer='disabled')
    dl.drop(origin / MODELS, what='datasets', reckless='kill',
            recursive=True, dataset=origin / DERIVED,
            result_renderer='disabled')
    return src.pathobj


def test_get_makes_a_linked_worktree_of_the_main_copy(origin, tmp_path):
    wt = tmp_path / 'wt'
    add(origin, wt, branch='wt')
    assert not (wt / BPOD / '.git').exists()
    dry = dl.worktree_get(str(wt / BPOD), dataset=wt, dry_run=True,
                          **quiet())
    assert [r['status'] for r in dry if r['action'] == 'worktree-add'] == \
        ['ok']
    assert not (wt / BPOD / '.git').exists()
    res = dl.worktree_get(str(wt / BPOD / 'sub-01'), dataset=wt, **quiet())
    assert [(r['action'], r['status'], r['path']) for r in res] == \
        [('worktree-add', 'ok', str(wt / BPOD))]
    assert res[0]['branch'] == 'wt'
    assert linked_to(origin / BPOD, wt / BPOD)
    assert git(wt / BPOD, 'rev-parse', 'HEAD') == recorded(wt, BPOD)
    # annexed content is shared: readable at once
    assert (wt / BPOD / 'sub-01/trials.tsv').read_text().startswith('bpod')
    again = dl.worktree_get(str(wt / BPOD), dataset=wt, **quiet())
    assert [r['status'] for r in again] == ['notneeded']
    assert clean(wt)


def test_get_recursive_and_refusals(origin, tmp_path):
    wt = tmp_path / 'wt'
    add(origin, wt, branch='wt')
    res = dl.worktree_get(str(wt / DERIVED), dataset=wt, recursive=True,
                          **quiet())
    made = sorted(r['path'] for r in res if r['status'] == 'ok')
    assert made == sorted(str(wt / DERIVED / p) for p in
                          ('.', 'code', 'inputs/bpod', 'inputs/2p'))
    assert not (wt / BPOD / '.git').exists()
    before = snapshot(origin)
    outside = dl.worktree_get(str(tmp_path), dataset=wt, **quiet())
    assert outside[0]['status'] == 'impossible'
    assert 'is not inside the worktree' in outside[0]['message']
    main = dl.worktree_get(str(origin / BPOD), dataset=origin, **quiet())
    assert main[0]['status'] == 'impossible'
    assert 'not a linked worktree' in main[0]['message']
    assert snapshot(origin) == before


@pytest.mark.slow
def test_get_installs_in_main_first_then_never_needs_the_source(
        origin, models, tmp_path):
    wt = tmp_path / 'wt'
    add(origin, wt, branch='wt', recursive=True)
    res = dl.worktree_get(str(wt / MODELS), dataset=wt, **quiet())
    assert [(r['action'], r['status']) for r in res] == \
        [('install', 'ok'), ('worktree-add', 'ok')]
    assert (origin / MODELS / '.git').is_dir()
    assert linked_to(origin / MODELS, wt / MODELS)
    # the source goes away: a second worktree still gets it, from main
    models.rename(models.with_name('gone'))
    wt2 = tmp_path / 'wt2'
    add(origin, wt2, branch='wt2')
    res = dl.worktree_get(str(wt2 / MODELS), dataset=wt2, **quiet())
    assert [(r['action'], r['status'], r['path']) for r in res] == \
        [('worktree-add', 'ok', str(wt2 / DERIVED)),
         ('worktree-add', 'ok', str(wt2 / MODELS))]
    assert linked_to(origin / MODELS, wt2 / MODELS)
    assert clean(wt2)


def run_advice(message: str) -> None:
    """Run the commands a message advises, as a person would paste them"""
    for cmd in re.findall(r"'((?:git|datalad) [^']+)'", message):
        if 'worktree-get' in cmd:
            continue
        subprocess.run(shlex.split(cmd), check=True, capture_output=True)


def test_a_clone_holding_nothing_new_is_listed_and_replaced(origin, runs,
                                                            tmp_path):
    wt = tmp_path / 'wt'
    add(origin, wt, branch='wt')
    dl.clone(source=str(origin / BPOD), path=wt / BPOD,
             result_renderer='disabled')
    listed = by_path(dl.worktree_list(dataset=origin, recursive=True,
                                      **quiet()), tmp_path)
    assert listed[f'wt/{BPOD}']['clone'] is True
    assert listed[f'wt/{BPOD}']['holds'] == []
    assert listed['wt']['clone'] is False
    sync = by_path(dl.worktree_sync(dataset=wt, recursive=True, **quiet()),
                   wt)
    assert sync[BPOD]['status'] == 'impossible'
    assert 'holds nothing' in sync[BPOD]['message']
    assert 'datalad worktree-get' in sync[BPOD]['message']
    rerun = by_path(add(origin, wt, branch='wt', recursive=True), wt)
    assert rerun[BPOD]['status'] == 'impossible'
    assert 'is a separate clone' in rerun[BPOD]['message']
    assert 'datalad worktree-get' in rerun[BPOD]['message']
    # an untracked file (its name not UTF-8) is not lost
    (wt / BPOD / NAME).write_text('mine\n')
    kept = dl.worktree_get(str(wt / BPOD), dataset=wt, **quiet())
    assert kept[0]['status'] == 'impossible'
    assert f'untracked files ({NAME})' in kept[0]['message']
    assert (wt / BPOD / NAME).read_text() == 'mine\n'
    (wt / BPOD / NAME).unlink()
    res = dl.worktree_get(str(wt / BPOD), dataset=wt, **quiet())
    assert [(r['action'], r['status']) for r in res] == \
        [('worktree-get', 'ok'), ('worktree-add', 'ok')]
    assert linked_to(origin / BPOD, wt / BPOD)
    assert (wt / BPOD / 'sub-01/trials.tsv').read_text().startswith('bpod')


@pytest.mark.slow
def test_a_clone_with_work_of_its_own_is_refused_until_brought_home(
        origin, tmp_path):
    wt = tmp_path / 'wt'
    add(origin, wt, branch='wt')
    dl.clone(source=str(origin / BPOD), path=wt / BPOD,
             result_renderer='disabled')
    (wt / BPOD / 'sub-03.dat').write_text('new result\n')
    dl.save(dataset=wt, recursive=True, message='result in a clone',
            result_renderer='disabled')
    result = git(wt / BPOD, 'rev-parse', 'HEAD')
    listed = by_path(dl.worktree_list(dataset=origin, recursive=True,
                                      **quiet()), tmp_path)
    holds = ' '.join(listed[f'wt/{BPOD}']['holds'])
    assert 'commits that' in holds and 'annexed content' in holds
    before = snapshot(origin)
    merge = by_path(dl.worktree_merge(str(wt), dataset=origin,
                                      recursive=True, **quiet()), origin)
    assert merge[BPOD]['status'] == 'impossible'
    assert 'separate clone' in merge[BPOD]['message']
    assert merge['.']['status'] == 'impossible'
    remove = dl.worktree_remove(str(wt), dataset=origin, force=True,
                                **quiet())
    assert {r['status'] for r in remove} == {'impossible'}
    message = ' '.join(r['message'] for r in remove)
    assert 'separate clone' in message and 'rm ' not in message
    assert snapshot(origin) == before
    assert (wt / BPOD / 'sub-03.dat').read_text() == 'new result\n'
    # the advice works: afterwards merge brings it home, fully readable
    run_advice(merge[BPOD]['message'])
    res = dl.worktree_merge(str(wt), dataset=origin, recursive=True,
                            **quiet())
    assert {r['status'] for r in res} <= {'ok', 'notneeded'}, res
    assert git(origin, 'rev-parse', f'HEAD:{BPOD}') == result
    assert (origin / BPOD / 'sub-03.dat').read_text() == 'new result\n'
    assert clean(origin)
    # and then the clone holds nothing: replaced, and removable
    res = dl.worktree_get(str(wt / BPOD), dataset=wt, **quiet())
    assert [r['status'] for r in res] == ['ok', 'ok']
    assert linked_to(origin / BPOD, wt / BPOD)
    gone = dl.worktree_remove(str(wt), dataset=origin, **quiet())
    assert {r['status'] for r in gone} == {'ok'}
    assert not wt.exists()


def test_remove_deletes_a_clone_holding_nothing_new(origin, tmp_path):
    wt = tmp_path / 'wt'
    add(origin, wt, branch='wt')
    dl.clone(source=str(origin / BPOD), path=wt / BPOD,
             result_renderer='disabled')
    dl.get(str(wt / BPOD / 'sub-01'), dataset=wt / BPOD,
           result_renderer='disabled')
    res = by_path(dl.worktree_remove(str(wt), dataset=origin, **quiet()),
                  tmp_path)
    assert res[f'wt/{BPOD}']['status'] == 'ok'
    assert 'separate clone' in res[f'wt/{BPOD}']['message']
    assert not wt.exists()
    assert (origin / BPOD / 'sub-01/trials.tsv').read_text().startswith(
        'bpod')


@pytest.mark.slow
def test_a_clone_of_a_subdataset_main_lacks_is_refused(origin, models,
                                                       tmp_path):
    wt = tmp_path / 'wt'
    add(origin, wt, branch='wt', recursive=True)
    # what 'datalad get -n' in the worktree did before worktree-get
    dl.get(str(wt / MODELS), dataset=wt / DERIVED, get_data=False,
           result_renderer='disabled')
    commit_file(wt / MODELS, 'notes.txt', 'tuned\n', 'tuning notes')
    dl.save(dataset=wt, recursive=True, message='record models',
            result_renderer='disabled')
    listed = by_path(dl.worktree_list(dataset=origin, recursive=True,
                                      **quiet()), tmp_path)
    assert listed[f'wt/{MODELS}']['clone'] is True
    before = snapshot(origin)
    merge = by_path(dl.worktree_merge(str(wt), dataset=origin,
                                      recursive=True, **quiet()), origin)
    assert merge[MODELS]['status'] == 'impossible'
    assert 'datalad get -n' in merge[MODELS]['message']
    assert merge[DERIVED]['status'] == 'impossible'
    assert merge['.']['status'] == 'impossible'
    assert snapshot(origin) == before
    sync = by_path(dl.worktree_sync(dataset=wt, recursive=True, **quiet()),
                   wt)
    assert sync[MODELS]['status'] == 'impossible'
    assert 'Install it in the main worktree first' in \
        sync[MODELS]['message']
    # the install command it gives works from anywhere
    install, = re.findall(r"'(datalad get -n [^']+)'", sync[MODELS]['message'])
    out = subprocess.run([DATALAD, *shlex.split(install)[1:]], cwd=tmp_path,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert (origin / MODELS / '.git').is_dir()


def test_nothing_is_made_inside_a_refused_clone(origin, tmp_path):
    wt = tmp_path / 'wt'
    add(origin, wt, branch='wt')
    dl.clone(source=str(origin / DERIVED), path=wt / DERIVED,
             result_renderer='disabled')
    commit_file(wt / DERIVED, 'notes.txt', 'mine\n', 'work in a clone')
    before = snapshot(origin)
    res = dl.worktree_get(str(wt / DERIVED / 'code'), dataset=wt,
                          recursive=True, **quiet())
    assert [(r['status'], r['path']) for r in res] == \
        [('impossible', str(wt / DERIVED))]
    assert 'commits that' in res[0]['message']
    assert not (wt / DERIVED / 'code' / '.git').exists()
    assert snapshot(origin) == before
