"""A ready-to-run environment in every new worktree (datalad.worktree.setup)"""

from __future__ import annotations

import base64
import hashlib
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from datalad import api as dl

from tests.helpers import (
    CODE,
    add,
    by_path,
    commit_file,
    datalad_cli,
    git,
)

WHEEL = 'dist/mypkg-0.1-py3-none-any.whl'
# a real environment with the package installed by pip, offline; the venv
# gets no pip of its own (seeding it costs seconds), the pip of the Python
# that runs the tests installs into it (pip --python)
SETUP = (f'{sys.executable} -m venv --without-pip .venv && {sys.executable} '
         '-m pip --python .venv/bin/python install --no-index --quiet '
         f'--disable-pip-version-check {WHEEL} && echo environment ready')


def make_wheel(path: Path) -> None:
    """A tiny pure-Python wheel, made by hand: pip installs it offline"""
    files = {
        'mypkg/__init__.py': 'GREETING = "hello from mypkg"\n',
        'mypkg-0.1.dist-info/METADATA':
            'Metadata-Version: 2.1\nName: mypkg\nVersion: 0.1\n',
        'mypkg-0.1.dist-info/WHEEL':
            'Wheel-Version: 1.0\nGenerator: hand\nRoot-Is-Purelib: true\n'
            'Tag: py3-none-any\n',
    }
    record = []
    for name, text in files.items():
        digest = base64.urlsafe_b64encode(
            hashlib.sha256(text.encode()).digest()).rstrip(b'=').decode()
        record.append(f'{name},sha256={digest},{len(text.encode())}')
    record.append('mypkg-0.1.dist-info/RECORD,,')
    files['mypkg-0.1.dist-info/RECORD'] = '\n'.join(record) + '\n'
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, 'w') as z:
        for name, text in files.items():
            z.writestr(name, text)


@pytest.fixture
def project(origin):
    """The code subdataset ships a package that its environment installs"""
    code = origin / CODE
    make_wheel(code / WHEEL)
    (code / 'setup-requirements.txt').write_text('mypkg==0.1\n')
    git(code, 'add', WHEEL, 'setup-requirements.txt')
    git(code, 'commit', '-q', '-m', 'a package for the environment')
    dl.Dataset(origin).save(path=CODE, recursive=True,
                            message='code with a package',
                            result_renderer='disabled')
    return origin


def configure(repo: Path, command: str, where: str = 'local') -> None:
    items = [('datalad.worktree.setup', command),
             ('datalad.worktree.setup-inputs',
              f'setup-requirements.txt {WHEEL}')]
    for key, value in items:
        if where == 'local':
            git(repo, 'config', '--local', key, value)
        else:
            git(repo, 'config', '-f', '.datalad/config', key, value)
    if where == 'committed':
        git(repo, 'commit', '-q', '-m', 'declare setup', '.datalad/config')


def setups(results, root):
    return by_path([r for r in results if r['action'] == 'worktree-setup'],
                   root)


def venv_python(wt: Path) -> Path:
    return wt / CODE / '.venv/bin/python'


@pytest.mark.slow
def test_new_worktree_is_ready_to_run(project, tmp_path):
    configure(project / CODE, SETUP)
    dl.Dataset(project).save(path=CODE, recursive=True,
                             result_renderer='disabled')
    wt = tmp_path / 'runs'
    res = add(project, wt, branch='runs', recursive=True)
    done = setups(res, wt)
    assert list(done) == [CODE]
    assert done[CODE]['status'] == 'ok'
    assert done[CODE]['exit_code'] == 0
    assert done[CODE]['output_tail'][-1] == 'environment ready'
    # the setup ran after every worktree existed: it is the last record
    assert res[-1]['action'] == 'worktree-setup'
    # a datalad run in the worktree uses the environment
    derived = dl.Dataset(wt / 'derived/L5b')
    derived.run(
        'code/.venv/bin/python -c "import mypkg; print(mypkg.GREETING)" '
        '> greeting.txt', message='use the environment',
        outputs=['greeting.txt'], result_renderer='disabled')
    assert (wt / 'derived/L5b/greeting.txt').read_text() == \
        'hello from mypkg\n'


@pytest.mark.slow
def test_sync_keeps_or_rebuilds_the_environment(project, tmp_path):
    configure(project / CODE, SETUP)
    wt = tmp_path / 'runs'
    add(project, wt, branch='runs', recursive=True)
    marker = wt / CODE / '.venv/kept'
    marker.write_text('this environment is the first one\n')
    # new code, but no change to what the environment depends on: kept
    git(project / CODE, 'checkout', '-q', '--detach')
    commit_file(project / CODE, 'analysis.py', 'x = 1\n', 'more code')
    res = dl.worktree_sync(dataset=wt, recursive=True,
                           result_renderer='disabled', return_type='list')
    assert setups(res, wt) == {}
    assert marker.exists()
    # a changed dependency file: the setup runs again, nothing is deleted
    commit_file(project / CODE, 'setup-requirements.txt', 'mypkg>=0.1\n',
                'new requirements')
    res = dl.worktree_sync(dataset=wt, recursive=True,
                           result_renderer='disabled', return_type='list')
    assert setups(res, wt)[CODE]['status'] == 'ok'
    assert marker.exists()
    out = subprocess.run([str(venv_python(wt)), '-c', 'import mypkg'])
    assert out.returncode == 0


@pytest.mark.slow
def test_failing_setup_is_an_error_and_the_worktree_stays(project, tmp_path):
    configure(project / CODE, 'echo "resolving deps"; echo broken >&2; exit 3')
    wt = tmp_path / 'runs'
    res = add(project, wt, branch='runs', recursive=True)
    failed = setups(res, wt)[CODE]
    assert failed['status'] == 'error'
    assert failed['exit_code'] == 3
    assert failed['output_tail'] == ['resolving deps', 'broken']
    assert 'failed with exit code 3' in failed['message']
    assert "worktree_sync(setup=True)" in failed['message']
    assert (wt / CODE / '.git').exists()
    # fixed: rerun it as the message says
    configure(project / CODE, SETUP)
    res = dl.worktree_sync(dataset=wt, recursive=True, setup=True,
                           result_renderer='disabled', return_type='list')
    assert setups(res, wt)[CODE]['status'] == 'ok'
    assert venv_python(wt).exists()


@pytest.mark.slow
def test_cli_shows_output_and_fails_on_a_broken_setup(project, tmp_path):
    configure(project / CODE, 'echo step one; exit 5')
    out = datalad_cli('worktree-add', '-r', '-b', 'runs',
                      str(tmp_path / 'runs'), cwd=project)
    assert out.returncode != 0
    assert 'step one' in out.stderr
    assert 'worktree-setup(error)' in out.stdout
    assert 'Traceback' not in out.stderr


@pytest.mark.slow
def test_a_past_state_worktree_is_ready_to_run_too(project, tmp_path):
    """The setup command runs in a worktree of a past state as in one of
    HEAD, with the files that state has"""
    configure(project / CODE, SETUP)
    commit_file(project, 'NEWS.txt', 'later\n', 'main moves on')
    wt = tmp_path / 'then'
    res = add(project, wt, commit='HEAD~1', recursive=True)
    done = setups(res, wt)
    assert [(k, r['status']) for k, r in done.items()] == [(CODE, 'ok')]
    assert git(wt, 'rev-parse', 'HEAD') == git(project, 'rev-parse',
                                               'HEAD~1')
    out = subprocess.run([venv_python(wt), '-c',
                          'import mypkg; print(mypkg.GREETING)'],
                         capture_output=True, text=True, check=True)
    assert out.stdout == 'hello from mypkg\n'


@pytest.mark.slow
def test_setup_that_comes_with_the_dataset_needs_consent(project, tmp_path):
    configure(project / CODE, SETUP, where='committed')
    dl.Dataset(project).save(path=CODE, recursive=True,
                             result_renderer='disabled')
    wt = tmp_path / 'runs'
    res = setups(add(project, wt, branch='runs', recursive=True), wt)
    assert res[CODE]['status'] == 'notneeded'
    assert 'comes with the dataset' in res[CODE]['message']
    assert SETUP in res[CODE]['message']
    assert not venv_python(wt).exists()
    # explicit consent runs it
    res = dl.worktree_sync(dataset=wt, recursive=True, setup=True,
                           result_renderer='disabled', return_type='list')
    assert setups(res, wt)[CODE]['status'] == 'ok'
    assert venv_python(wt).exists()


def test_no_setup(project, tmp_path):
    configure(project / CODE, SETUP)
    wt = tmp_path / 'runs'
    res = setups(add(project, wt, recursive=True, setup=False), wt)
    assert res[CODE]['status'] == 'notneeded'
    assert 'setup=False' in res[CODE]['message']
    assert not venv_python(wt).exists()
