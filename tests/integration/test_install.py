"""The distribution installs under a name of its own, and no page tells
users to install the other project that PyPI has as 'datalad-worktree'"""

import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

TOP = Path(__file__).parents[2]


@pytest.mark.slow
# pip builds the wheel in an isolated environment, with setuptools and wheel
# from PyPI (build-system.requires)
@pytest.mark.network
def test_wheel_has_its_own_name_and_registers_the_commands(tmp_path):
    subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--no-deps',
                    '-q', '-w', str(tmp_path),
                    str(TOP)], check=True, capture_output=True)
    wheel, = tmp_path.glob('*.whl')
    assert wheel.name.startswith('datalad_nested_worktrees-')
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        points, = [n for n in names if n.endswith('entry_points.txt')]
        entry = zf.read(points).decode()
        assert 'datalad_worktree/commands/worktree_get.py' in names
    assert '[datalad.extensions]' in entry
    assert 'datalad_worktree:command_suite' in entry


def test_no_page_says_to_install_the_other_project():
    pages = [TOP / 'README.md', *sorted((TOP / 'docs').glob('*.rst'))]
    for page in pages:
        for line in page.read_text().splitlines():
            if re.search(r'pip install\b.*\bdatalad-worktree\b', line):
                assert 'not' in line.lower() or 'Do not' in line, \
                    f'{page.name}: {line}'


@pytest.mark.slow
def test_missing_git_annex_is_named_up_front(origin, runs, tmp_path):
    """On a PATH where git is found but git-annex is not, every command
    that needs git-annex refuses before it changes anything, saying so"""
    import os
    import shutil

    from tests.helpers import (
        datalad_cli,
        snapshot,
    )
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    (bin_dir / 'git').symlink_to(shutil.which('git'))
    env = dict(os.environ, PATH=str(bin_dir))
    before = snapshot(origin), snapshot(runs)
    for args in (['worktree-add', '-d', str(origin), '-r',
                  str(tmp_path / 'new')],
                 ['worktree-sync', '-d', str(runs), '-r'],
                 ['worktree-merge', '-d', str(origin), '-r', str(runs)],
                 ['worktree-get', '-d', str(runs), str(runs / 'raw')]):
        out = datalad_cli(*args, env=env)
        assert out.returncode != 0, args
        assert 'no working git-annex was found on PATH' in out.stdout, \
            (args, out.stdout, out.stderr)
        assert 'Traceback' not in out.stderr
    assert (snapshot(origin), snapshot(runs)) == before
    assert not (tmp_path / 'new').exists()


@pytest.mark.slow
def test_too_old_git_and_git_annex_are_refused_up_front(origin, runs,
                                                        monkeypatch):
    """The real git and git-annex, against minimum versions above them:
    every command refuses before it changes anything, naming both"""
    from datalad import api as dl

    from datalad_worktree.runners import tools as gitlayer

    from tests.helpers import (
        quiet,
        snapshot,
    )
    before = snapshot(origin), snapshot(runs)
    for names, says in ((dict(MIN_ANNEX=(99999, 0)),
                         'git-annex 99999.0 or newer is needed, but '),
                        (dict(MIN_GIT=(99, 0)),
                         'git 99.0 or newer is needed, but an older one')):
        gitlayer.tools_problem.cache_clear()
        with monkeypatch.context() as mp:
            for name, value in names.items():
                mp.setattr(gitlayer, name, value)
            for res in (
                    dl.worktree_sync(dataset=runs, recursive=True, **quiet()),
                    dl.worktree_merge(str(runs), dataset=origin,
                                      recursive=True, **quiet()),
                    dl.worktree_get(str(runs / 'raw'), dataset=runs,
                                    **quiet())):
                assert [r['status'] for r in res] == ['impossible']
                assert says in res[0]['message']
        gitlayer.tools_problem.cache_clear()
    assert (snapshot(origin), snapshot(runs)) == before


@pytest.mark.slow
# pip installs DataLad from PyPI, and builds this distribution as above
@pytest.mark.network
def test_readme_install_into_an_existing_datalad_environment(tmp_path):
    """The README's commands, as written, in an environment that has only
    DataLad (from PyPI): afterwards its datalad has the commands"""
    import os

    env_dir = tmp_path / 'env'
    subprocess.run([sys.executable, '-m', 'venv', str(env_dir)], check=True)
    subprocess.run([str(env_dir / 'bin/python'), '-m', 'pip', 'install',
                    '-q', 'datalad'], check=True, capture_output=True)
    block = re.search(r'## Installing into an existing DataLad environment'
                      r'.*?```sh\n(.*?)```', (TOP / 'README.md').read_text(),
                      flags=re.S).group(1)
    script = block.replace('<this repository>', str(TOP))
    env = dict(os.environ, PATH=f'{env_dir / "bin"}:/usr/bin:/bin')
    out = subprocess.run(['bash', '-euc', script], cwd=tmp_path, env=env,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    helped = subprocess.run([str(env_dir / 'bin/datalad'), 'worktree-get',
                             '--help'], env=env, capture_output=True,
                            text=True)
    assert helped.returncode == 0, helped.stderr
    assert 'Usage: datalad worktree-get' in helped.stdout
