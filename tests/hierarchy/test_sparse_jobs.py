"""Sparse job worktrees with plain ``datalad run`` (no ``--explicit``) and
a whole-dataset ``datalad save``: DataLad records every file the sparse
checkout left out as deleted (datalad/datalad#7815); ``worktree-merge``
merges the jobs' own changes and keeps those files

The hierarchy, built once (``jobs_template``)::

    super/                     annex; misc/ holds plain-git files with a
    │                          space and non-ASCII in their names
    ├── inputs/                annexed subdataset: sub-01 ... sub-04, each
    │                          bold.dat (annexed) and events.tsv
    └── code/                  plain git subdataset: proc.py

Each job: ``worktree-add -r --branch job-NN --sparse inputs/sub-NN
--sparse code``, ``datalad run -i inputs/sub-NN/bold.dat -o
outputs/sub-NN.txt`` and a ``datalad save`` of the whole dataset.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from datalad import api as dl

from datalad_worktree.base.outcome import Refusal
from tests.fixtures import built_once, restore
from tests.helpers import (
    add,
    datalad_cli,
    datasets_of,
    git,
    quiet,
    snapshot,
)

pytestmark = pytest.mark.slow

SUBJECTS = ['01', '02', '03', '04']
TRICKY = ['misc/a b.txt', 'misc/grüße.txt']
"""Plain-git files outside every job's cone, with names git must not mangle
(DataLad's save cannot handle a newline in a name: see
``test_restored_names_are_kept_byte_for_byte``)"""

PROC_PY = """\
import sys
from pathlib import Path

src, dst = Path(sys.argv[1]), Path(sys.argv[2])
dst.parent.mkdir(parents=True, exist_ok=True)
dst.write_text(f"{src}: {src.read_text().strip()}\\n")
"""


def build(root: Path) -> None:
    q = {'result_renderer': 'disabled'}
    sup = dl.create(root / 'super', **q)
    inputs = dl.create(sup.pathobj / 'inputs', dataset=sup, **q)
    for n in SUBJECTS:
        sub = inputs.pathobj / f'sub-{n}'
        sub.mkdir()
        (sub / 'bold.dat').write_text(f'bold of {n}\n')
        (sub / 'events.tsv').write_text(f'events of {n}\n')
    (inputs.pathobj / 'README').write_text('inputs\n')
    inputs.save(message='inputs', **q)
    code = dl.create(sup.pathobj / 'code', dataset=sup, annex=False, **q)
    (code.pathobj / 'proc.py').write_text(PROC_PY)
    code.save(message='code', **q)
    misc = sup.pathobj / 'misc'
    misc.mkdir()
    (misc / '.gitattributes').write_text('* annex.largefiles=nothing\n')
    for name in TRICKY:
        (sup.pathobj / name).write_text(f'{name}\n')
    sup.save(recursive=True, message='inputs, code, misc', **q)


@pytest.fixture(scope='session')
def jobs_template(tmp_path_factory) -> Path:
    return built_once(tmp_path_factory, 'sparse-jobs', build)


@pytest.fixture
def main(jobs_template, tmp_path) -> Path:
    restore(jobs_template, tmp_path)
    return tmp_path / 'super'


def files_of(repo: Path, commit: str = 'HEAD') -> dict[str, str]:
    """path -> object of every file (and subdataset) in ``commit``"""
    out = subprocess.run(['git', 'ls-tree', '-r', '-z', commit], cwd=repo,
                         check=True, capture_output=True).stdout
    found = {}
    for entry in os.fsdecode(out).split('\0')[:-1]:
        meta, path = entry.split('\t', 1)
        found[path] = meta.split(' ')[2]
    return found


def start_job(main: Path, n: str) -> Path:
    wt = main.parent / 'jobs' / f'job-{n}'
    res = add(main, wt, branch=f'job-{n}', recursive=True,
              sparse=[f'inputs/sub-{n}', 'code'])
    assert res and all(r['status'] == 'ok' for r in res), res
    assert not (wt / 'inputs' / f'sub-{SUBJECTS[-1]}').exists()
    assert not (wt / 'misc').exists()
    return wt


def run_job(wt: Path, n: str) -> None:
    """The job as the handbook writes it: a plain ``datalad run``, then a
    whole-dataset ``datalad save`` of a note"""
    out = datalad_cli(
        'run', '-m', f'job {n}', '-i', f'inputs/sub-{n}/bold.dat',
        '-o', f'outputs/sub-{n}.txt',
        f'{sys.executable} code/proc.py inputs/sub-{n}/bold.dat '
        f'outputs/sub-{n}.txt', cwd=wt)
    assert out.returncode == 0, out.stdout + out.stderr
    # DataLad recorded the files the job never had as deleted, in both
    # the superdataset and the inputs subdataset (datalad/datalad#7815)
    deleted = git(wt, 'show', '--diff-filter=D', '--name-only', '--format=',
                  '-z', 'HEAD').split('\0')
    assert set(TRICKY) <= set(deleted)
    assert f'sub-{SUBJECTS[-1]}/bold.dat' in git(
        wt / 'inputs', 'show', '--diff-filter=D', '--name-only', '--format=',
        'HEAD')
    (wt / 'logs').mkdir(exist_ok=True)
    (wt / 'logs' / f'job-{n}.log').write_text(f'log of {n}\n')
    out = datalad_cli('save', '-m', f'log of job {n}', cwd=wt)
    assert out.returncode == 0, out.stdout + out.stderr


def messages(repo: Path) -> list[str]:
    return git(repo, 'log', '--format=%B%x00', 'HEAD').split('\0')


def count_with(repo: Path, text: str) -> int:
    return sum(text in m for m in messages(repo))


def kept_everything(main: Path, before: dict[str, dict[str, str]],
                    but: dict[str, set[str]] | None = None) -> None:
    """Every file that ``before`` (per dataset: path -> object) lists is in
    main's HEAD as it was, also in the checkout, annexed content readable;
    ``but``: per dataset, paths that changed"""
    but = but or {}
    for rel, files in before.items():
        now = files_of(main / rel)
        for path, obj in files.items():
            if path in but.get(rel, ()):
                continue
            assert now.get(path) == obj, (rel, path)
            assert os.path.lexists(main / rel / path), (rel, path)
    for n in SUBJECTS:
        assert (main / 'inputs' / f'sub-{n}' / 'bold.dat').read_text() == \
            f'bold of {n}\n'
    for name in TRICKY:
        if name not in but.get('.', ()):
            assert (main / name).read_text() == f'{name}\n'


def test_plain_run_jobs_merge_home(main):
    """Three sparse jobs with plain ``datalad run`` and a whole-dataset
    save, merged by one ``worktree-merge -r 'job-*'``: their results
    arrive, every file they never had stays, each run record is there
    once, a second merge changes nothing, and the jobs go without
    --force"""
    jobs = {n: start_job(main, n) for n in SUBJECTS[:3]}
    for n, wt in jobs.items():
        run_job(wt, n)
    before = {rel: files_of(main / rel) for rel in ('.', 'inputs', 'code')}
    # a dry run predicts the merge, and changes nothing
    state = snapshot(main)
    dry = dl.worktree_merge(['job-*'], dataset=main, recursive=True,
                            dry_run=True, **quiet())
    assert dry and all(r['status'] in ('ok', 'notneeded') for r in dry), dry
    assert snapshot(main) == state

    res = dl.worktree_merge(['job-*'], dataset=main, recursive=True,
                            **quiet())
    assert res and all(r['status'] in ('ok', 'notneeded') for r in res), res
    mine = {os.path.relpath(r['path'], main): r for r in res}
    for rel in ('.', 'inputs'):
        assert mine[rel]['status'] == 'ok'
        assert 'kept the files outside the sparse checkout' in \
            mine[rel]['message']
    for n in jobs:
        assert (main / f'outputs/sub-{n}.txt').read_text() == \
            f'inputs/sub-{n}/bold.dat: bold of {n}\n'
        assert (main / f'logs/job-{n}.log').read_text() == f'log of {n}\n'
    # (the superdataset records the merged inputs)
    kept_everything(main, before, but={'.': {'inputs'}})
    assert git(main, 'status', '--porcelain', '--ignore-submodules=none') \
        == ''
    for n in jobs:
        # each run record once: in the superdataset and in inputs, where
        # DataLad's recursive save committed the deletions with it
        assert count_with(main, f'[DATALAD RUNCMD] job {n}\n') == 1
        assert count_with(main / 'inputs', f'[DATALAD RUNCMD] job {n}\n') == 1
        assert count_with(main, f'log of job {n}') == 1
    # the files the jobs never had: no change in any dataset's tree but
    # the jobs' own results
    for rel in ('inputs', 'code'):
        assert files_of(main / rel) == before[rel]
    assert set(files_of(main)) - set(before['.']) == {
        *(f'outputs/sub-{n}.txt' for n in jobs),
        *(f'logs/job-{n}.log' for n in jobs)}
    fsck = subprocess.run(['git', 'annex', 'fsck', '--fast', '--quiet'],
                          cwd=main / 'inputs', capture_output=True, text=True,
                          check=False)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr

    heads = {str(ds): git(ds, 'rev-parse', 'HEAD')
             for ds in datasets_of(main)}
    again = dl.worktree_merge(['job-*'], dataset=main, recursive=True,
                              **quiet())
    assert again and all(r['status'] == 'notneeded' for r in again), again
    assert {str(ds): git(ds, 'rev-parse', 'HEAD')
            for ds in datasets_of(main)} == heads

    removed = dl.worktree_remove([str(wt) for wt in jobs.values()],
                                 dataset=main, **quiet())
    assert removed and all(r['status'] == 'ok' for r in removed), removed
    for ds in datasets_of(main):
        assert git(ds, 'for-each-ref', 'refs/heads/job-*') == ''
    kept_everything(main, before, but={'.': {'inputs'}})


def test_one_job_merged_by_path_after_main_changed_a_file_it_lacks(main):
    """The one-source path (``worktree-merge -r WORKTREE``) where main
    changed, since the job started, a file outside the job's cone that
    the job's commits delete: main's change stays; a job commit in inputs
    that holds nothing but such deletions changes nothing there"""
    wt = start_job(main, '01')
    out = datalad_cli(
        'run', '-m', 'job 01', '-i', 'inputs/sub-01/bold.dat',
        '-o', 'outputs/sub-01.txt',
        f'{sys.executable} code/proc.py inputs/sub-01/bold.dat '
        'outputs/sub-01.txt', cwd=wt)
    assert out.returncode == 0, out.stdout + out.stderr
    before = {rel: files_of(main / rel) for rel in ('.', 'inputs')}
    events = main / 'inputs' / 'sub-02' / 'events.tsv'
    events.write_text('changed in main\n')
    dl.save(dataset=main, path=[events], message='main changed sub-02',
            recursive=True, result_renderer='disabled')
    (main / 'misc' / 'a b.txt').write_text('changed in main too\n')
    dl.save(dataset=main, path=[main / 'misc'], message='main changed misc',
            result_renderer='disabled')
    ours = files_of(main / 'inputs')

    res = dl.worktree_merge(str(wt), dataset=main, recursive=True, **quiet())
    assert res and all(r['status'] in ('ok', 'notneeded') for r in res), res
    by = {os.path.relpath(r['path'], main): r for r in res}
    assert 'kept the files outside the sparse checkout' in \
        by['inputs']['message']
    assert events.read_text() == 'changed in main\n'
    assert (main / 'misc' / 'a b.txt').read_text() == 'changed in main too\n'
    # the job's inputs commit held only deletions: nothing changed there
    assert files_of(main / 'inputs') == ours
    kept_everything(main, before, but={
        '.': {'inputs', 'misc/a b.txt'}, 'inputs': {'sub-02/events.tsv'}})
    assert (main / 'outputs/sub-01.txt').read_text() == \
        'inputs/sub-01/bold.dat: bold of 01\n'
    assert count_with(main, '[DATALAD RUNCMD] job 01\n') == 1
    assert count_with(main / 'inputs', '[DATALAD RUNCMD] job 01\n') == 1
    assert git(main, 'status', '--porcelain', '--ignore-submodules=none') \
        == ''
    again = dl.worktree_merge(str(wt), dataset=main, recursive=True,
                              **quiet())
    assert again and all(r['status'] == 'notneeded' for r in again), again
    removed = dl.worktree_remove(str(wt), dataset=main, **quiet())
    assert removed and all(r['status'] == 'ok' for r in removed), removed


def test_deletion_in_the_cone_and_writes_outside_it_merge(main):
    """A deletion inside the cone merges as a deletion. Writing outside
    the cone is not refused: a new file there is added, and a tracked
    file there that the job never had but wrote (git clears its
    skip-worktree bit) merges as a change; the rest outside stays"""
    wt = start_job(main, '01')
    out = datalad_cli(
        'run', '-m', 'job 01', '-o', 'inputs/sub-03/events.tsv',
        '-o', 'elsewhere/new.txt',
        'rm inputs/sub-01/events.tsv && mkdir -p elsewhere inputs/sub-03 && '
        'echo new > elsewhere/new.txt && '
        'echo written by job 01 > inputs/sub-03/events.tsv', cwd=wt)
    assert out.returncode == 0, out.stdout + out.stderr
    # git keeps what the job wrote outside the cone, DataLad saves it
    assert 'M\tsub-03/events.tsv' in git(wt / 'inputs', 'show',
                                         '--name-status', '--format=', 'HEAD')
    before = {rel: files_of(main / rel) for rel in ('.', 'inputs')}
    res = dl.worktree_merge(str(wt), dataset=main, recursive=True, **quiet())
    assert res and all(r['status'] in ('ok', 'notneeded') for r in res), res
    assert not (main / 'inputs/sub-01/events.tsv').exists()
    assert 'sub-01/events.tsv' not in files_of(main / 'inputs')
    assert (main / 'inputs/sub-03/events.tsv').read_text() == \
        'written by job 01\n'
    assert (main / 'elsewhere/new.txt').read_text() == 'new\n'
    kept_everything(main, before, but={
        '.': {'inputs'},
        'inputs': {'sub-01/events.tsv', 'sub-03/events.tsv'}})
    fsck = subprocess.run(['git', 'annex', 'fsck', '--fast', '--quiet'],
                          cwd=main / 'inputs', capture_output=True, text=True,
                          check=False)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    removed = dl.worktree_remove(str(wt), dataset=main, **quiet())
    assert removed and all(r['status'] == 'ok' for r in removed), removed


def test_deletions_that_cannot_be_restored_are_refused(main):
    """Where restoring a deleted file would undo the job's own change (it
    put a directory of its own where that file was), the source is
    refused with the code sparse-deletions, and nothing changes"""
    wt = start_job(main, '01')
    # with plain git: the file outside the cone gone, a directory there
    git(wt, 'rm', '-q', '--sparse', '--cached', '--', 'misc/a b.txt')
    (wt / 'misc' / 'a b.txt').mkdir(parents=True)
    (wt / 'misc' / 'a b.txt' / 'inner.txt').write_text('inner\n')
    git(wt, '-c', 'annex.largefiles=nothing', 'add', '--sparse', '--',
        'misc/a b.txt/inner.txt')
    git(wt, 'commit', '-q', '-m', 'a directory where a file was')
    other = start_job(main, '02')
    run_job(other, '02')
    state = snapshot(main)
    res = dl.worktree_merge(str(wt), dataset=main, recursive=True, **quiet())
    refused = [r for r in res if r['status'] == 'impossible']
    assert [r['refusal'] for r in refused] == [Refusal.SPARSE_DELETIONS.value]
    assert refused[0]['path'] == str(main)
    assert 'never checked out' in refused[0]['message']
    assert 'misc/a b.txt' in refused[0]['message']
    assert snapshot(main) == state
    # among several sources, only that one is left out
    res = dl.worktree_merge(['job-*'], dataset=main, recursive=True,
                            **quiet())
    refused = [r for r in res if r['status'] == 'impossible']
    assert [r['source'] for r in refused] == ['branch job-01'], res
    assert (main / 'outputs/sub-02.txt').is_file()
    assert (main / 'misc' / 'a b.txt').read_text() == 'misc/a b.txt\n'


def test_restored_names_are_kept_byte_for_byte(main):
    """Files outside the cone whose names hold a space, a newline, non-ASCII
    and bytes that are not UTF-8, deleted from the index as DataLad's save
    does it (``git update-index --remove``), committed with plain git
    (DataLad cannot save such names): the merge keeps each of them"""
    names = [b'odd/a b.txt', b'odd/new\nline.txt', b'odd/gr\xc3\xbc\xc3\x9fe',
             b'odd/latin\xe9.txt']
    for name in names:
        path = main / os.fsdecode(name)
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(name + b'\n')
    subprocess.run(['git', '-c', 'annex.largefiles=nothing', 'add', '--',
                    'odd'], cwd=main, check=True)
    git(main, 'commit', '-q', '-m', 'odd names')
    wt = start_job(main, '01')
    assert not (wt / 'odd').exists()
    subprocess.run(['git', 'update-index', '-z', '--remove', '--stdin'],
                   cwd=wt, check=True, input=b'\0'.join(names) + b'\0')
    (wt / 'code' / 'mine.txt').write_text('mine\n')
    git(wt, 'commit', '-q', '-m', 'the job, with the deletions')
    state = files_of(main)
    res = dl.worktree_merge(str(wt), dataset=main, recursive=True, **quiet())
    assert res and all(r['status'] in ('ok', 'notneeded') for r in res), res
    assert files_of(main) == state
    for name in names:
        assert (main / os.fsdecode(name)).read_bytes() == name + b'\n'
    restore = git(main, 'log', '-1', '--format=%s', 'HEAD')
    assert restore == "Restore files outside the sparse job's checkout"
    assert git(main, 'rev-parse', 'HEAD^') == git(wt, 'rev-parse', 'HEAD')
    assert git(main, 'status', '--porcelain') == ''


def test_git_refuses_files_it_stores_outside_the_cone(main):
    """Where git itself stores what a job writes outside its cone (a plain
    git dataset), ``git add`` refuses it, so DataLad's save fails after
    the command ran: nothing is committed, the file stays in the
    worktree, main is untouched. (Annexed files git-annex adds anyway:
    ``test_deletion_in_the_cone_and_writes_outside_it_merge``.) The cure
    is the output directory as a ``--sparse`` PATH, made before the run"""
    wt = main.parent / 'jobs' / 'job-01'
    res = add(main, wt, branch='job-01', recursive=True,
              sparse=['inputs/sub-01', 'code/lib'])
    assert res and all(r['status'] == 'ok' for r in res), res
    assert git(wt / 'code', 'sparse-checkout', 'list').splitlines() == \
        ['.datalad', 'lib']
    before = snapshot(main)
    head = git(wt / 'code', 'rev-parse', 'HEAD')
    out = datalad_cli('run', '-m', 'outside', '-o', 'other/new.txt',
                      'mkdir -p other && echo new > other/new.txt',
                      cwd=wt / 'code')
    assert out.returncode != 0
    assert 'outside of your sparse-checkout definition' in \
        out.stdout + out.stderr
    assert git(wt / 'code', 'rev-parse', 'HEAD') == head
    assert (wt / 'code' / 'other' / 'new.txt').read_text() == 'new\n'
    assert snapshot(main) == before
    # inside a --sparse PATH, the same output is saved
    shutil.rmtree(wt / 'code' / 'other')
    assert git(wt / 'code', 'status', '--porcelain') == ''
    out = datalad_cli('run', '-m', 'inside', '-o', 'lib/new.txt',
                      'mkdir -p lib && echo new > lib/new.txt',
                      cwd=wt / 'code')
    assert out.returncode == 0, out.stdout + out.stderr
    assert 'lib/new.txt' in git(wt / 'code', 'show', '--name-only',
                                '--format=', 'HEAD')
