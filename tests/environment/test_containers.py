"""`datalad containers-run` in a nested worktree, with a container runtime
that sees only what is bind-mounted into it (bubblewrap)"""

from __future__ import annotations

import os
import shutil
import subprocess
from contextlib import contextmanager
from pathlib import Path

import pytest
from datalad import api as dl

from tests.fixtures import built_once, restore
from tests.helpers import (
    DERIVED,
    add,
    by_path,
    datalad_cli,
    git,
)

pytestmark = pytest.mark.container

INPUTS = ['inputs/bpod/sub-01/trials.tsv', 'inputs/2p/sub-01/F.csv']
ENTRYPOINT = '#!/bin/sh\nexec "$@"\n'
# the container sees /usr and the dataset it runs in, nothing else
BWRAP = ('bwrap --ro-bind /usr /usr --symlink usr/bin /bin '
         '--symlink usr/lib /lib --symlink usr/lib64 /lib64 '
         '--proc /proc --dev /dev --bind "$PWD" "$PWD" --chdir "$PWD" '
         '{{worktree-binds-bwrap}} sh {img} {cmd}')
COUNT = "sh -c 'cat {inputs} | wc -l > {out}'"


def bwrap_works() -> bool:
    return shutil.which('bwrap') is not None and subprocess.run(
        ['bwrap', '--ro-bind', '/usr', '/usr', '--symlink', 'usr/bin', '/bin',
         '--symlink', 'usr/lib', '/lib', '--symlink', 'usr/lib64', '/lib64',
         'true']).returncode == 0


def register_box(ds: Path, cmdexec: str = BWRAP, default: bool = True):
    """Register the container 'box' in ``ds`` as datalad containers-add
    does, with an empty committed default for the bind substitution"""
    image = ds / '.datalad/environments/box/image'
    image.parent.mkdir(parents=True)
    image.write_text(ENTRYPOINT)
    dl.containers_add('box', image=str(image.relative_to(ds)),
                      call_fmt=cmdexec, dataset=ds,
                      result_renderer='disabled')
    if default:
        git(ds, 'config', '-f', '.datalad/config',
            'datalad.run.substitutions.worktree-binds-bwrap', '')
    dl.save(dataset=ds, message='substitution default',
            result_renderer='disabled')


def box_run(ds: Path, out: str, inputs: list[str] = INPUTS,
            name: str = 'box'):
    """``datalad containers-run`` in ``ds``, as a user runs it there"""
    cmd = COUNT.format(inputs=' '.join(inputs), out=out)
    with inside(ds):
        return dl.containers_run(cmd, container_name=name, dataset=ds,
                                 inputs=inputs, outputs=[out],
                                 message=f'count into {out}',
                                 result_renderer='disabled',
                                 return_type='list', on_failure='ignore')


@contextmanager
def inside(directory: Path):
    """Work in ``directory``, as a user who changed into it"""
    cwd = os.getcwd()
    os.chdir(directory)
    try:
        yield
    finally:
        os.chdir(cwd)


def configured(repo: Path) -> str:
    """The bind substitutions that git's configuration has in ``repo`` (a
    dataset's top): '' when it has none; a failure of git fails the test"""
    assert git(repo, 'rev-parse', '--show-toplevel') == str(repo)
    out = subprocess.run(
        ['git', 'config', '--get-regexp', 'substitutions'], cwd=repo,
        capture_output=True, text=True)
    # git config exits with 1, silently, when nothing matches
    if out.returncode == 1 and not out.stdout and not out.stderr:
        return ''
    assert out.returncode == 0 and out.stdout, \
        f'git config failed with {out.returncode}: {out.stderr}'
    return out.stdout


def ok(results) -> bool:
    return all(r['status'] in ('ok', 'notneeded') for r in results)


@pytest.fixture(scope='session')
def boxed_template(template, tmp_path_factory) -> Path:
    """A copy of the project with the container 'box' registered in
    derived/L5b, made once: ROOT/project/super; returns ROOT"""
    def build(root):
        restore(template.parent.parent, root)
        top = root / 'project' / 'super'
        register_box(top / DERIVED)
        dl.save(dataset=top, path=str(top / DERIVED), message='register box',
                result_renderer='disabled')

    return built_once(tmp_path_factory, 'boxed', build)


@pytest.fixture
def boxed(boxed_template, tmp_path):
    """A private copy of the project, with the container 'box' registered
    in derived/L5b, at tmp_path/project/super; returns the superdataset"""
    assert bwrap_works(), (
        'these tests need bubblewrap: apt-get install bubblewrap')
    restore(boxed_template, tmp_path)
    return tmp_path / 'project' / 'super'


def test_the_container_sees_only_bound_paths(boxed, tmp_path):
    """Without the bind paths, the runtime cannot follow annex links of a
    worktree: the failure this feature exists for"""
    wt = tmp_path / 'runs'
    res = by_path(add(boxed, wt, recursive=True, bindpaths=False), wt)
    assert all(r['action'] == 'worktree-add' for r in res.values())
    failed = [r for r in box_run(wt / DERIVED, 'results/count.txt')
              if r['status'] not in ('ok', 'notneeded')]
    assert [(r['action'], r['status']) for r in failed] == [('run', 'error')]
    assert not (wt / DERIVED / 'results/count.txt').exists()


@pytest.mark.slow
def test_containers_run_works_in_the_worktree(boxed, tmp_path):
    wt = tmp_path / 'runs'
    res = add(boxed, wt, recursive=True)
    binds = [r for r in res if r['action'] == 'worktree-bindpaths']
    assert [r['path'] for r in binds] == [str(wt / DERIVED)]
    assert binds[0]['status'] == 'ok'
    # the dataset's own annex, its input's, and the annex that the
    # ephemeral clone inputs/2p links to
    assert set(binds[0]['bindpaths']) == {
        str(boxed / DERIVED / '.git'),
        str(boxed / DERIVED / 'inputs/bpod/.git'),
        str(boxed / DERIVED / 'inputs/2p/.git'),
        str(boxed / 'raw/2p/.git/annex'),
    }
    assert ok(box_run(wt / DERIVED, 'results/count.txt'))
    assert (wt / DERIVED / 'results/count.txt').read_text().strip() == '4'
    # the worktree's own configuration has the bind paths
    assert 'worktree-binds-bwrap' in configured(wt / DERIVED)
    # nothing of it is committed, and the main worktree is unchanged
    assert git(wt / DERIVED, 'status', '--porcelain') == ''
    assert not configured(boxed / DERIVED)
    # a rerun of worktree-add has nothing to change
    again = add(boxed, wt, recursive=True)
    assert not [r for r in again if r['action'] == 'worktree-bindpaths']


@pytest.mark.slow
def test_containers_run_works_in_a_past_state_worktree(boxed, tmp_path):
    """A worktree of a past state gets its bind paths as one of HEAD
    does: containers-run works in it"""
    git(boxed, 'commit', '-q', '--allow-empty', '-m', 'main moves on')
    wt = tmp_path / 'then'
    res = add(boxed, wt, commit='HEAD~1', recursive=True)
    binds = [r for r in res if r['action'] == 'worktree-bindpaths']
    assert [(r['path'], r['status']) for r in binds] == [
        (str(wt / DERIVED), 'ok')]
    assert git(wt, 'rev-parse', 'HEAD') == git(boxed, 'rev-parse', 'HEAD~1')
    assert ok(box_run(wt / DERIVED, 'results/count.txt'))
    assert (wt / DERIVED / 'results/count.txt').read_text().strip() == '4'


@pytest.mark.slow
def test_container_of_a_subdataset(origin, tmp_path):
    """Containers kept in a subdataset, run from its parent, which commits
    only the substitution's default"""
    assert bwrap_works()
    derived = origin / DERIVED
    dl.create(derived / 'envs', dataset=derived, result_renderer='disabled')
    register_box(derived / 'envs')
    git(derived, 'config', '-f', '.datalad/config',
        'datalad.run.substitutions.worktree-binds-bwrap', '')
    dl.save(dataset=origin, path=[str(derived)], recursive=True,
            message='containers in a subdataset', result_renderer='disabled')
    wt = tmp_path / 'runs'
    res = [r for r in add(origin, wt, recursive=True)
           if r['action'] == 'worktree-bindpaths']
    assert sorted(r['path'] for r in res) == [
        str(wt / DERIVED), str(wt / DERIVED / 'envs')]
    assert ok(box_run(wt / DERIVED, 'results/count.txt', name='envs/box'))
    assert (wt / DERIVED / 'results/count.txt').read_text().strip() == '4'


@pytest.mark.slow
def test_run_records_stay_rerunnable(boxed, tmp_path):
    # inputs/2p is left out: in the main worktree it is an ephemeral clone,
    # whose annex lies outside the dataset, where the container cannot see
    wt = tmp_path / 'runs'
    add(boxed, wt, recursive=True)
    assert ok(box_run(wt / DERIVED, 'results/count.txt', INPUTS[:1]))
    record = git(wt / DERIVED, 'log', '-1', '--format=%B')
    assert '{worktree-binds-bwrap}' in record and str(boxed) not in record
    rerun_in_main_and_a_clone(boxed, wt, tmp_path / 'clone', [])


def rerun_in_main_and_a_clone(origin: Path, wt: Path, clone: Path,
                              more: list[str]) -> None:
    """Merge the run record of derived/L5b in the worktree ``wt`` home and
    rerun it in the main worktree and in a plain clone (with its
    subdatasets inputs/bpod and ``more`` installed); it counts 2 lines in
    both"""
    dl.Dataset(wt).save(path=DERIVED, message='record the count',
                        result_renderer='disabled')
    dl.worktree_merge(str(wt), dataset=origin, recursive=True,
                      result_renderer='disabled')
    assert ok(dl.rerun(dataset=origin / DERIVED, result_renderer='disabled',
                       return_type='list', on_failure='ignore'))
    assert (origin / DERIVED / 'results/count.txt').read_text().strip() == \
        '2'
    dl.clone(source=str(origin / DERIVED), path=clone,
             result_renderer='disabled')
    dl.get(dataset=clone,
           path=[str(clone / p) for p in ['inputs/bpod', *more]],
           get_data=False, result_renderer='disabled')
    with inside(clone):
        assert ok(dl.rerun(dataset=clone, result_renderer='disabled',
                           return_type='list', on_failure='ignore'))
    assert (clone / 'results/count.txt').read_text().strip() == '2'


def test_no_bindpaths_configures_nothing(boxed, tmp_path):
    wt = tmp_path / 'runs'
    add(boxed, wt, recursive=True, bindpaths=False)
    assert not configured(wt / DERIVED)


UNEDITED = BWRAP.replace('{{worktree-binds-bwrap}} ', '')
"""A bubblewrap cmdexec as users write it, without any substitution"""

SINGULARITY_CMD = """#!/bin/sh
# Stands in for singularity behind ReproNim's scripts/singularity_cmd: the
# image runs in bubblewrap and sees /usr, the current directory and what
# SINGULARITY_BIND names (src:dest:ro, comma-separated), as singularity
# binds it.
shift
img=$1
shift
set -f
binds=''
IFS=,
for b in $SINGULARITY_BIND; do
    src=${b%%:*}
    rest=${b#*:}
    binds="$binds --ro-bind $src ${rest%%:*}"
done
unset IFS
exec bwrap --ro-bind /usr /usr --symlink usr/bin /bin --symlink usr/lib /lib \\
    --symlink usr/lib64 /lib64 --proc /proc --dev /dev \\
    --bind "$PWD" "$PWD" --chdir "$PWD" $binds sh "$img" "$@"
"""
REPRONIM = '{img_dspath}/scripts/singularity_cmd run {img} {cmd}'
"""The cmdexec form of ReproNim/containers: a wrapper script before {img}"""


@pytest.fixture
def yoda(origin):
    """A containers subdataset at derived/L5b/code/containers, as in a YODA
    layout, with two containers whose cmdexec nobody edited: 'box'
    (bubblewrap) and 'repronim' (a wrapper script, ReproNim's form)"""
    assert bwrap_works()
    code = origin / DERIVED / 'code'
    containers = code / 'containers'
    dl.create(containers, dataset=code, result_renderer='disabled')
    register_box(containers, cmdexec=UNEDITED, default=False)
    script = containers / 'scripts' / 'singularity_cmd'
    script.parent.mkdir()
    script.write_text(SINGULARITY_CMD)
    script.chmod(0o755)
    dl.save(dataset=containers, path=[str(script)], to_git=True,
            message='the singularity_cmd script', result_renderer='disabled')
    dl.containers_add('repronim', image='.datalad/environments/box/image',
                      call_fmt=REPRONIM, dataset=containers,
                      result_renderer='disabled')
    dl.save(dataset=origin, recursive=True, message='containers',
            result_renderer='disabled')
    return origin


@pytest.mark.slow
def test_unedited_containers_of_a_yoda_subdataset_work(yoda, tmp_path):
    wt = tmp_path / 'runs'
    res = [r for r in add(yoda, wt, recursive=True)
           if r['action'] == 'worktree-bindpaths']
    # one short record per dataset: the containers' own dataset, and those
    # above it, from where they are run
    assert sorted((r['path'], r['status']) for r in res) == [
        (str(wt), 'ok'), (str(wt / DERIVED), 'ok'),
        (str(wt / DERIVED / 'code'), 'ok'),
        (str(wt / DERIVED / 'code/containers'), 'ok')]
    mine = by_path(res, wt)[f'{DERIVED}/code/containers']
    assert mine['containers'] == 2
    assert mine['message'].startswith(
        'set bind mounts and a cmdexec of its own for 2 container(s) (box, '
        'repronim), for this worktree, so that containers see ')
    assert mine['substitutions'] == []
    for name, out in (('box', 'results/box.txt'),
                      ('repronim', 'results/repronim.txt')):
        assert ok(box_run(wt / DERIVED, out, name=f'code/containers/{name}'))
        assert (wt / DERIVED / out).read_text().strip() == '4'
    # nothing is committed, and the main worktree's datasets are untouched
    assert git(wt / DERIVED / 'code/containers', 'status', '--porcelain') == ''
    assert 'cmdexec' not in git(yoda / DERIVED / 'code/containers',
                                'config', '--list', '--local')


@pytest.mark.slow
def test_unedited_container_records_rerun_in_main_and_a_clone(yoda,
                                                              tmp_path):
    wt = tmp_path / 'runs'
    add(yoda, wt, recursive=True)
    assert ok(box_run(wt / DERIVED, 'results/count.txt', INPUTS[:1],
                      name='code/containers/box'))
    record = git(wt / DERIVED, 'log', '-1', '--format=%B')
    assert str(tmp_path) not in record
    rerun_in_main_and_a_clone(yoda, wt, tmp_path / 'clone',
                              ['code/containers'])
    # and worktree-remove leaves nothing of the worktree's configuration
    dl.worktree_remove(str(wt), dataset=yoda, result_renderer='disabled')
    for ds in (yoda, yoda / DERIVED, yoda / DERIVED / 'code/containers'):
        local = git(ds, 'config', '--list', '--show-origin')
        assert 'cmdexec' not in local and 'binds' not in local, local


def test_shared_core_worktree_is_refused_and_left_alone(boxed, tmp_path):
    """A repository whose shared configuration sets core.worktree cannot
    get per-worktree configuration safely: reported, nothing changed"""
    derived = boxed / DERIVED
    git(derived, 'config', 'core.worktree', str(derived))
    wt = tmp_path / 'runs'
    res = [r for r in add(boxed, wt, recursive=True)
           if r['action'] == 'worktree-bindpaths']
    assert res[0]['status'] == 'impossible'
    assert 'sets core.worktree' in res[0]['message']
    assert subprocess.run(
        ['git', 'config', '--get', 'extensions.worktreeConfig'], cwd=derived,
        capture_output=True).returncode == 1


@pytest.mark.slow
@pytest.mark.parametrize('flag, shown', [([], True),
                                          (['--no-bindpaths'], False)])
def test_cli(boxed, tmp_path, flag, shown):
    wt = tmp_path / 'runs'
    out = datalad_cli('worktree-add', '-r', *flag, str(wt), cwd=boxed)
    assert out.returncode == 0, out.stderr
    assert ('worktree-bindpaths(ok)' in out.stdout) == shown
