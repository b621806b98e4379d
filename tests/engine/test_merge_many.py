"""worktree-merge with several sources: by path, branch name and pattern,
one merge commit per dataset, conflicting sources refused and named"""

from __future__ import annotations

import json
import os

import pytest
from datalad import api as dl

from tests.helpers import (
    CODE,
    DERIVED,
    add,
    clean,
    commit_file,
    datalad_cli,
    git,
    recorded,
    snapshot,
)
from .test_old_git import old_git  # noqa: F401 (a fixture)

pytestmark = pytest.mark.slow


def merge(origin, sources, **kw):
    """worktree_merge of ``sources``; its results, and by (path relative to
    origin, source) for the refused ones and by path for the others"""
    kw.setdefault('on_failure', 'ignore')
    res = dl.worktree_merge(sources, dataset=origin,
                            result_renderer='disabled', return_type='list',
                            **kw)
    return res, by_dataset(res, origin)


def by_dataset(res, origin):
    found = {}
    for r in res:
        rel = os.path.relpath(r['path'], origin)
        if 'sources' in r:
            found[rel] = r
        else:
            found[(rel, r.get('source'))] = r
    return found


def job(origin, tmp_path, name, files=None, sparse=False):
    """A job worktree ``name`` on branch ``name`` (of the whole hierarchy;
    with ``sparse``, of the top and derived/L5b only) that commits
    ``files`` (path: text) in derived/L5b/code (or in derived/L5b, when
    sparse), saved up to the top"""
    wt = tmp_path / name
    if sparse:
        res = add(origin, wt, branch=name)
        res += dl.worktree_get(str(wt / DERIVED), dataset=str(wt),
                               result_renderer='disabled', return_type='list',
                               on_failure='ignore')
        where = wt / DERIVED
    else:
        res = add(origin, wt, branch=name, recursive=True)
        where = wt / CODE
    assert {r['status'] for r in res} <= {'ok', 'notneeded'}, res
    for path, text in (files or {f'{name}.txt': f'{name}\n'}).items():
        commit_file(where, path, text, f'result of {name}')
    dl.save(dataset=str(wt), recursive=True, message=f'{name} done',
            result_renderer='disabled')
    return wt


def worktree_state(wt):
    """What ``snapshot`` says of the checkouts of a worktree (not of the
    repositories, which it shares with the main worktree)"""
    return {ds: (state['head'], state['symbolic'], state['status'])
            for ds, state in snapshot(wt).items()}


def parents(repo, rev='HEAD'):
    return git(repo, 'rev-list', '--parents', '-n1', rev).split()[1:]


def test_several_worktrees_one_merge_commit_and_idempotent(origin, tmp_path):
    a, b = job(origin, tmp_path, 'job-a'), job(origin, tmp_path, 'job-b')
    base = git(origin / CODE, 'rev-parse', 'HEAD')
    res, by = merge(origin, [str(a), str(b)], recursive=True)
    code = by[CODE]
    assert code['status'] == 'ok' and code['how'] == 'merge'
    assert code['sources'] == [str(a / CODE), str(b / CODE)]
    assert 'merged 2 sources' in code['message']
    assert parents(origin / CODE) == [
        base, git(a / CODE, 'rev-parse', 'HEAD'),
        git(b / CODE, 'rev-parse', 'HEAD')]
    assert (origin / CODE / 'job-a.txt').read_text() == 'job-a\n'
    assert (origin / CODE / 'job-b.txt').read_text() == 'job-b\n'
    # each parent merged both and records the merged code
    assert by[DERIVED]['status'] == 'ok' and by['.']['status'] == 'ok'
    assert recorded(origin / DERIVED, 'code') == \
        git(origin / CODE, 'rev-parse', 'HEAD')
    assert recorded(origin, DERIVED) == \
        git(origin / DERIVED, 'rev-parse', 'HEAD')
    assert len(parents(origin)) == 3
    assert clean(origin)
    before = snapshot(origin)
    again, by = merge(origin, [str(a), str(b)], recursive=True)
    assert {r['status'] for r in again} == {'notneeded'}
    assert by[CODE]['already'] == [str(a / CODE), str(b / CODE)]
    assert snapshot(origin) == before


def test_branch_names_and_patterns(origin, tmp_path):
    for name in ('job-a', 'job-b', 'job-c'):
        job(origin, tmp_path, name)
    res, by = merge(origin, ['job-a', 'job-[bc]'], recursive=True,
                    message='Jobs home')
    assert by[CODE]['sources'] == ['branch job-a', 'branch job-b',
                                   'branch job-c']
    assert git(origin / CODE, 'log', '-1', '--format=%s') == 'Jobs home'
    assert len(parents(origin / CODE)) == 4
    assert clean(origin)
    # the pattern leaves out 'runs'-like branches it does not match and
    # the branch checked out in the dataset itself
    git(origin / CODE, 'branch', 'job-main-copy')
    git(origin / CODE, 'checkout', '-q', 'job-main-copy')
    again, by = merge(origin, 'job-*', recursive=True)
    assert {r['status'] for r in again} == {'notneeded'}
    assert 'branch job-main-copy' not in by[CODE]['already']
    # nor git-annex's own branch
    before = snapshot(origin)
    again, by = merge(origin, '*', recursive=True)
    assert {r['status'] for r in again} == {'notneeded'}, again
    assert not [r for r in again if 'git-annex' in str(r.get('already'))]
    assert snapshot(origin) == before


def test_local_work_refuses_the_sources_of_that_dataset(origin, tmp_path):
    job(origin, tmp_path, 'job-a')
    job(origin, tmp_path, 'job-b')
    (origin / CODE / 'job-b.txt').write_text('my own notes\n')
    before = snapshot(origin)
    res, by = merge(origin, 'job-*', recursive=True)
    for name in ('job-a', 'job-b'):
        refused = by[(CODE, f'branch {name}')]
        assert 'would overwrite files' in refused['message']
        assert 'job-b.txt' in refused['message']
        for rel in (DERIVED, '.'):
            assert 'refused in the subdataset' in \
                by[(rel, f'branch {name}')]['message']
    assert snapshot(origin) == before
    assert (origin / CODE / 'job-b.txt').read_text() == 'my own notes\n'


def test_a_conflicting_source_is_refused_and_the_others_merged(
        origin, tmp_path):
    a = job(origin, tmp_path, 'job-a', {'same.txt': 'from a\n'})
    b = job(origin, tmp_path, 'job-b', {'same.txt': 'from b\n'})
    c = job(origin, tmp_path, 'job-c')
    tips = {n: git(origin / CODE, 'rev-parse', n)
            for n in ('job-a', 'job-b', 'job-c')}
    wt_before = worktree_state(b)
    res, by = merge(origin, 'job-*', recursive=True)
    refused = by[(CODE, 'branch job-b')]
    assert refused['status'] == 'impossible'
    assert refused['conflicts'] == ['same.txt']
    assert 'merging branch job-b' in refused['message']
    assert 'conflicts in same.txt' in refused['message']
    assert by[CODE]['sources'] == ['branch job-a', 'branch job-c']
    assert (origin / CODE / 'same.txt').read_text() == 'from a\n'
    # above, job-b is not merged, for the reason named; the others are
    for rel in (DERIVED, '.'):
        assert by[(rel, 'branch job-b')]['status'] == 'impossible'
        assert 'refused in the subdataset' in \
            by[(rel, 'branch job-b')]['message']
        assert by[rel]['sources'] == ['branch job-a', 'branch job-c']
    assert tips['job-b'] not in git(origin / CODE, 'rev-list', 'HEAD')
    for rel in (DERIVED, '.'):
        head = git(origin / rel, 'rev-parse', 'HEAD')
        branch_b = git(origin / rel, 'rev-parse', 'job-b')
        assert branch_b not in git(origin / rel, 'rev-list', head)
    # nothing lost: job-b's branches and worktree are as they were
    assert git(origin / CODE, 'rev-parse', 'job-b') == tips['job-b']
    assert worktree_state(b) == wt_before
    assert clean(origin)
    assert a.exists() and c.exists()


@pytest.mark.parametrize('sources, says', [
    (['job-nope*'], "the pattern 'job-nope*' matches no branch"),
    (['-f', 'job-a'], "refusing branch name '-f': it looks like an option"),
    (['--upload-pack=touch /tmp/pwned', 'job-a'], 'looks like an option'),
    (['-*'], "refusing the pattern '-*': it looks like an option"),
    (['ITSELF', 'job-a'], 'is the dataset itself'),
    (['job-a', 'nope/*/x*'], 'matches no branch of any dataset here and '
                             'no linked worktree'),
    (['job-a', 'job-typo'], "no dataset here has a branch 'job-typo'"),
])
def test_bad_sources_refuse_everything(origin, tmp_path, sources, says):
    job(origin, tmp_path, 'job-a')
    sources = [str(origin) if s == 'ITSELF' else s for s in sources]
    before = snapshot(origin)
    res, _ = merge(origin, sources, recursive=True)
    assert res and {r['status'] for r in res} == {'impossible'}, res
    assert len(res) == 1
    assert says in res[0]['message']
    assert 'nothing was merged' in res[0]['message']
    assert snapshot(origin) == before


def test_sources_only_in_some_datasets(origin, tmp_path):
    """A sparse job (the top and derived/L5b only) merges where it has
    commits; a full job everywhere"""
    sparse = job(origin, tmp_path, 'job-s', sparse=True)
    full = job(origin, tmp_path, 'job-f')
    assert not (sparse / CODE / '.git').exists()
    res, by = merge(origin, [str(sparse), 'job-f'], recursive=True)
    # code has only the full job: a fast-forward, as for one source
    assert by[CODE]['how'] == 'fast-forward'
    assert by[CODE]['sources'] == ['branch job-f']
    assert by[DERIVED]['sources'] == [str(sparse / DERIVED), 'branch job-f']
    assert (origin / DERIVED / 'job-s.txt').exists()
    assert (origin / CODE / 'job-f.txt').exists()
    assert by['.']['status'] == 'ok'
    assert clean(origin)
    assert full.exists()


def test_ff_only_and_dry_run_with_several_sources(origin, tmp_path):
    job(origin, tmp_path, 'job-a')
    job(origin, tmp_path, 'job-b')
    before = snapshot(origin)
    res, by = merge(origin, 'job-*', recursive=True, dry_run=True)
    assert by[CODE]['message'].startswith('would merge 2 sources')
    assert snapshot(origin) == before
    res, by = merge(origin, 'job-*', recursive=True, ff_only=True)
    assert by[(CODE, 'branch job-a')]['status'] == 'impossible'
    assert 'with ff_only=True, several sources' in \
        by[(CODE, 'branch job-a')]['message']
    assert snapshot(origin) == before


def test_cli_several_sources(origin, tmp_path):
    job(origin, tmp_path, 'job-a')
    job(origin, tmp_path, 'job-b')
    out = datalad_cli('-f', 'json', 'worktree-merge', '-r', 'job-a', 'job-b',
                      cwd=origin)
    assert out.returncode == 0, out.stderr
    records = [json.loads(line) for line in out.stdout.splitlines()]
    code = next(r for r in records if r['path'] == str(origin / CODE))
    assert code['sources'] == ['branch job-a', 'branch job-b']
    bad = datalad_cli('worktree-merge', '--', 'job-a', '-x*', cwd=origin)
    assert bad.returncode != 0
    assert "refusing the pattern '-x*'" in bad.stdout + bad.stderr
    assert 'Traceback' not in bad.stdout + bad.stderr


def edited_jobs(origin, tmp_path):
    """job-a and job-c edit different lines of code/process.py, job-b adds
    a file: job-c needs git's own merge"""
    script = (origin / CODE / 'process.py').read_text()
    lines = script.splitlines(keepends=True)
    job(origin, tmp_path, 'job-a', {'process.py': '# a\n' + script})
    job(origin, tmp_path, 'job-b')
    job(origin, tmp_path, 'job-c', {'process.py': ''.join(
        lines[:-1]) + lines[-1].rstrip('\n') + '  # c\n'})
    return script


def test_sources_changing_the_same_file_merge_with_git(origin, tmp_path):
    script = edited_jobs(origin, tmp_path)
    res, by = merge(origin, 'job-*', recursive=True)
    assert by[CODE]['sources'] == ['branch job-a', 'branch job-b',
                                   'branch job-c']
    merged = (origin / CODE / 'process.py').read_text()
    assert merged.startswith('# a\n') and merged.endswith('  # c\n')
    assert merged.count('\n') == script.count('\n') + 1
    assert len(parents(origin / CODE)) == 4
    assert clean(origin)


def test_with_git_older_than_2_38(origin, tmp_path, old_git):  # noqa: F811
    """Sources that change different files merge as ever; one that needs
    git's own merge is left out, with why"""
    edited_jobs(origin, tmp_path)
    res, by = merge(origin, 'job-*', recursive=True)
    refused = by[(CODE, 'branch job-c')]
    assert refused['status'] == 'impossible'
    assert 'needs git 2.38 or newer' in refused['message']
    assert by[CODE]['sources'] == ['branch job-a', 'branch job-b']
    assert by['.']['sources'] == ['branch job-a', 'branch job-b']
    assert clean(origin)


def test_modification_times_come_from_each_source(origin, tmp_path):
    a = job(origin, tmp_path, 'job-a')
    b = job(origin, tmp_path, 'job-b')
    for wt, when in ((a, 1_600_000_000), (b, 1_500_000_000)):
        os.utime(wt / CODE / f'{wt.name}.txt', (when, when))
        git(wt / CODE, 'update-index', '--refresh')
    merge(origin, 'job-*', recursive=True)
    assert os.stat(origin / CODE / 'job-a.txt').st_mtime == 1_600_000_000
    assert os.stat(origin / CODE / 'job-b.txt').st_mtime == 1_500_000_000
    assert clean(origin)
    # without: the time of the checkout
    c = job(origin, tmp_path, 'job-c')
    d = job(origin, tmp_path, 'job-d')
    for wt in (c, d):
        os.utime(wt / CODE / f'{wt.name}.txt', (1_400_000_000,) * 2)
    merge(origin, ['job-c', 'job-d'], recursive=True, mtimes=False)
    assert os.stat(origin / CODE / 'job-c.txt').st_mtime > 1_400_000_000


def test_commit_tree_writes_more_parents_than_a_command_line_holds(
        tmp_path, monkeypatch):
    """Above ``PARENTS_ON_COMMAND_LINE`` parents the commit is the very
    object that ``git commit-tree`` writes with all of them on its command
    line"""
    from datalad_worktree.engine.merge import octopus
    monkeypatch.setenv('GIT_AUTHOR_DATE', '1700000000 +0100')
    monkeypatch.setenv('GIT_COMMITTER_DATE', '1700000001 +0200')
    repo = tmp_path / 'repo'
    git(tmp_path, 'init', '-q', str(repo))
    tree = git(repo, 'write-tree')
    tips = [git(repo, 'commit-tree', '-m', f'job {i}', tree)
            for i in range(5)]
    message = 'Merge results\n\nof 5 jobs, with an ä'
    expected = git(repo, 'commit-tree', *[a for p in tips for a in ('-p', p)],
                   '-m', message, tree)
    assert octopus.commit_tree(repo, tree, tips, message) == expected
    monkeypatch.setattr(octopus, 'PARENTS_ON_COMMAND_LINE', 2)
    assert octopus.commit_tree(repo, tree, tips, message) == expected
    assert parents(repo, expected) == tips


def test_a_merge_of_more_sources_than_a_command_line_holds(
        origin, tmp_path, monkeypatch):
    """With the limit of parents on git's command line at 2, three jobs
    (one of which git's own merge merges) become one merge commit of four
    parents, as ever"""
    from datalad_worktree.engine.merge import octopus
    monkeypatch.setattr(octopus, 'PARENTS_ON_COMMAND_LINE', 2)
    script = edited_jobs(origin, tmp_path)
    base = git(origin / CODE, 'rev-parse', 'HEAD')
    _, by = merge(origin, 'job-*', recursive=True)
    assert by[CODE]['sources'] == ['branch job-a', 'branch job-b',
                                   'branch job-c']
    assert parents(origin / CODE) == [base] + [
        git(origin / CODE, 'rev-parse', name)
        for name in ('job-a', 'job-b', 'job-c')]
    merged = (origin / CODE / 'process.py').read_text()
    assert merged.startswith('# a\n') and merged.endswith('  # c\n')
    assert merged.count('\n') == script.count('\n') + 1
    assert len(parents(origin)) == 4
    assert git(origin / CODE, 'fsck', '--no-dangling', '--no-progress') == ''
    assert clean(origin)
