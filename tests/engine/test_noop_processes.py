"""With nothing to do, ``worktree-sync -r`` and ``worktree-merge -r`` start
no git process in any dataset of the hierarchy, and with one changed
subdataset only in it and the datasets above it: whether a checkout is
stale is first read from its HEAD reflog's file, and a source that is the
target's own HEAD is contained in it without asking git. Where the reflog
cannot say so (the checkout did not move there itself, as after a branch
was moved underneath it), git is asked as before: the stale checkouts of
``test_worktree_sync`` are still found and updated."""

from __future__ import annotations

import json
from pathlib import Path

from datalad import api as dl

from tests.helpers import add, commit_file, datasets_of, quiet


def repos_git_ran_in(trace: Path) -> list[tuple[str, list[str]]]:
    """The working tree and the arguments of each git process in the
    trace2 event file ``trace`` that found a repository (its own), except the
    reading of a dataset's ``.gitmodules`` in git's config syntax (one per
    dataset that has subdatasets, not per subdataset)"""
    if not trace.exists():
        return []
    events = [json.loads(line) for line in trace.read_text().splitlines()]
    argv = {e['sid']: e['argv'] for e in events if e.get('event') == 'start'}
    # a process's first repository is its own (git reads a subdataset in
    # the same process as well, such as a commit in its parent)
    own: dict[str, str] = {}
    for e in events:
        if e.get('event') == 'def_repo' and 'worktree' in e:
            own.setdefault(e['sid'], e['worktree'])
    ran = [(w, argv.get(sid, [])) for sid, w in own.items()]
    return [(w, a) for w, a in ran
            if not (a[1:3] == ['config', '-z'] and '--blob' in a and
                    a[a.index('--blob') + 1].endswith(':.gitmodules'))]


def traced(monkeypatch, trace: Path, call):
    trace.unlink(missing_ok=True)
    monkeypatch.setenv('GIT_TRACE2_EVENT', str(trace))
    try:
        return call()
    finally:
        monkeypatch.delenv('GIT_TRACE2_EVENT')


def test_noop_sync_and_merge_start_no_git_per_dataset(origin, tmp_path,
                                                      monkeypatch):
    wt = tmp_path / 'wt'
    add(origin, wt, branch='b', recursive=True)
    subs = [str(d) for d in datasets_of(wt) if d != wt]
    assert len(subs) >= 3
    trace = tmp_path / 'trace.json'
    res = traced(monkeypatch, trace, lambda: dl.worktree_sync(
        dataset=wt, recursive=True, **quiet()))
    assert res and {r['status'] for r in res} == {'notneeded'}, res
    ran = repos_git_ran_in(trace)
    assert not [r for r in ran if r[0] in subs], ran
    res = traced(monkeypatch, trace, lambda: dl.worktree_merge(
        str(wt), dataset=origin, recursive=True, **quiet()))
    assert res and {r['status'] for r in res} == {'notneeded'}, res
    main_subs = [str(d) for d in datasets_of(origin) if d != origin]
    ran = repos_git_ran_in(trace)
    assert not [r for r in ran if r[0] in main_subs or r[0] in subs], ran



def test_one_changed_subdataset_starts_git_only_along_its_path(
        origin, tmp_path, monkeypatch):
    """A new commit in one subdataset of main, synced into the worktree,
    then a result there merged home: git runs in that subdataset and in
    the datasets above it, which record it, and in no other (the parents'
    times are compared on the files before git is asked whether their
    subdatasets differ, which would look into every one of them)"""
    wt = tmp_path / 'wt'
    add(origin, wt, branch='b', recursive=True)
    leaf = max((d for d in datasets_of(origin) if d != origin),
               key=lambda d: len(d.relative_to(origin).parts))
    rel = leaf.relative_to(origin)
    along = {str(base / p) for base in (origin, wt)
             for p in [rel, *rel.parents]}
    others = {str(d) for base in (origin, wt) for d in datasets_of(base)
              } - along
    assert others
    commit_file(leaf, 'changed-in-main.txt', 'new\n', 'a change in main')
    trace = tmp_path / 'trace.json'
    res = traced(monkeypatch, trace, lambda: dl.worktree_sync(
        dataset=wt, recursive=True, **quiet()))
    assert {r['status'] for r in res} <= {'ok', 'notneeded'}, res
    assert (wt / rel / 'changed-in-main.txt').read_text() == 'new\n'
    ran = repos_git_ran_in(trace)
    assert [r for r in ran if r[0] == str(wt / rel)], ran
    assert not [r for r in ran if r[0] in others], ran
    commit_file(wt / rel, 'result.txt', 'result\n', 'a result')
    res = traced(monkeypatch, trace, lambda: dl.worktree_merge(
        str(wt), dataset=origin, recursive=True, **quiet()))
    assert {r['status'] for r in res} <= {'ok', 'notneeded'}, res
    assert (leaf / 'result.txt').read_text() == 'result\n'
    ran = repos_git_ran_in(trace)
    assert not [r for r in ran if r[0] in others], ran
