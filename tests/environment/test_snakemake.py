"""Directory times for Snakemake: a real ``snakemake`` with a ``directory()``
output, run in a worktree and merged home

Snakemake judges a ``directory()`` output by the time of the
``.snakemake_timestamp`` marker that it keeps in it (by the directory's own
time without one), and reruns a job whose input is newer and has another
checksum than it recorded (``.snakemake/metadata``, which is untracked and
stays in each worktree). Here derived/L5b has a rule that makes
results/plots/ from code/fmt.py (code/ is a subdataset) and an annexed
input; the marker and ``.snakemake/`` are ignored by git, as a Snakemake
dataset would have them.

Snakemake is a tool here, not a library: it is found as
``$WORKTREE_TESTS_SNAKEMAKE``, on the PATH, or in ``.venv-snakemake`` at the
top of the repository (where ``.ci/run`` installs it: its pins conflict with
the development tools'). Without it these tests skip, or fail where
``WORKTREE_TESTS_REQUIRE_SNAKEMAKE`` is set (as in CI).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.environment.test_mtimes import FMT_PY, merge, mtime, save, sync
from tests.fixtures import built_once, restore
from tests.helpers import CODE, DERIVED, TOP, add, datasets_of, git

pytestmark = pytest.mark.slow

REQUIRE = 'WORKTREE_TESTS_REQUIRE_SNAKEMAKE'
MARKER = 'results/plots/.snakemake_timestamp'
NOTHING = 'Nothing to be done'

SNAKEFILE = f"""\
rule all:
    input: "results/plots"

rule plots:
    input: "code/fmt.py", "inputs/2p/sub-01/F.csv"
    output: directory("results/plots")
    shell: "mkdir -p {{output}} && {sys.executable} code/fmt.py {{input[1]}} > {{output}}/F.txt"
"""


def snakemake_command() -> str:
    """The snakemake to run; skips (or fails, see the module) without"""
    found = os.environ.get('WORKTREE_TESTS_SNAKEMAKE') or \
        shutil.which('snakemake')
    venv = TOP / '.venv-snakemake' / 'bin' / 'snakemake'
    if not found and venv.exists():
        found = str(venv)
    if not found:
        why = 'snakemake is not installed (see tests/environment/' \
            'test_snakemake.py)'
        if os.environ.get(REQUIRE):
            pytest.fail(f'{why}, and {REQUIRE} is set')
        pytest.skip(why)
    return found


def snakemake(where: Path, *args: str) -> str:
    """Run snakemake in ``where``; its output (it must succeed)"""
    res = subprocess.run([snakemake_command(), '--cores', '1', *args],
                         cwd=where, capture_output=True, text=True,
                         check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    return res.stdout + res.stderr


def up_to_date(where: Path) -> bool:
    """Whether ``snakemake -n`` has nothing to do in ``where``"""
    return NOTHING in snakemake(where, '-n')


@pytest.fixture(scope='session')
def plots_template(template, tmp_path_factory) -> Path:
    """The hierarchy with the Snakemake workflow run once and its outputs
    saved, made once per test run (Snakemake and DataLad take some 12 s
    for it): ROOT/project/super; returns ROOT"""
    def build(root):
        restore(template.parent.parent, root)
        origin = root / 'project' / 'super'
        (origin / CODE / 'fmt.py').write_text(FMT_PY)
        save(origin, 'fmt.py')
        derived = origin / DERIVED
        (derived / 'Snakefile').write_text(SNAKEFILE)
        with open(derived / '.gitignore', 'a') as f:
            f.write('.snakemake/\n.snakemake_timestamp\n')
        with open(derived / '.gitattributes', 'a') as f:
            f.write('Snakefile annex.largefiles=nothing\n'
                    'results/plots/** annex.largefiles=nothing\n')
        save(origin, 'the workflow')
        snakemake(derived)
        save(origin, 'run the workflow')

    return built_once(tmp_path_factory, 'snakemake-plots', build)


@pytest.fixture
def plots(plots_template, tmp_path):
    """A copy of ``plots_template`` (times kept, as the copy keeps them):
    the origin with the workflow run, nothing left to do"""
    restore(plots_template, tmp_path)
    origin = tmp_path / 'project' / 'super'
    derived = origin / DERIVED
    assert (derived / MARKER).is_file()
    assert git(derived, 'status', '--porcelain') == ''
    assert up_to_date(derived)
    return origin


def heads(top: Path) -> dict:
    return {ds: git(ds, 'rev-parse', 'HEAD') for ds in datasets_of(top)}


def test_directory_output_merged_home_is_up_to_date(plots, tmp_path):
    wt = tmp_path / 'runs'
    add(plots, wt, branch='runs', recursive=True)
    derived, here = plots / DERIVED, wt / DERIVED
    # the marker came along with its time, so nothing is to be done there
    assert mtime(here / MARKER) == mtime(derived / MARKER)
    assert mtime(here / 'results/plots') == mtime(derived / 'results/plots')
    assert up_to_date(here)
    # new code: the output changes; run and saved in the worktree
    (wt / CODE / 'fmt.py').write_text(FMT_PY.replace('.upper()', '.lower()'))
    time.sleep(0.05)
    save(wt, 'lower case')
    assert not up_to_date(here)
    snakemake(here)
    save(wt, 'rerun')
    assert up_to_date(here)
    res = merge(plots, wt, recursive=True)
    assert res[DERIVED]['status'] == 'ok', res[DERIVED]
    # merged home: the merged code is not newer than the merged output,
    # which main's own metadata recorded with the old code's checksum
    assert mtime(derived / MARKER) == mtime(here / MARKER)
    assert up_to_date(derived)


def test_identical_rerun_merged_home_is_up_to_date(plots, tmp_path):
    wt = tmp_path / 'runs'
    add(plots, wt, branch='runs', recursive=True)
    derived, here = plots / DERIVED, wt / DERIVED
    # main comments the code: its output is out of date there
    (plots / CODE / 'fmt.py').write_text('# a comment\n' + FMT_PY)
    save(plots, 'comment fmt.py')
    assert not up_to_date(derived)
    sync(wt, recursive=True)
    # the sync brought the directory's and its marker's times along
    assert mtime(here / MARKER) == mtime(derived / MARKER)
    assert mtime(here / 'results/plots') == mtime(derived / 'results/plots')
    assert not up_to_date(here)
    # the worktree reruns: byte for byte the same, nothing to commit
    before = heads(wt)
    time.sleep(0.05)
    snakemake(here)
    save(wt, 'nothing new')
    assert heads(wt) == before
    assert up_to_date(here)
    res = merge(plots, wt, recursive=True)
    assert {r['status'] for r in res.values()} == {'notneeded'}, res
    assert mtime(derived / MARKER) == mtime(here / MARKER)
    assert mtime(derived / 'results/plots/F.txt') == \
        mtime(here / 'results/plots/F.txt')
    assert up_to_date(derived)


def test_no_times_for_a_directory_main_moved_on_from(plots, tmp_path):
    wt = tmp_path / 'runs'
    add(plots, wt, branch='runs', recursive=True)
    derived, here = plots / DERIVED, wt / DERIVED
    (plots / CODE / 'fmt.py').write_text('# a comment\n' + FMT_PY)
    save(plots, 'comment fmt.py')
    sync(wt, recursive=True)
    time.sleep(0.05)
    snakemake(here)
    save(wt, 'nothing new')
    # main changes the code again after the sync
    (plots / CODE / 'fmt.py').write_text('# again\n' + FMT_PY)
    save(plots, 'comment fmt.py again')
    marker = mtime(derived / MARKER)
    res = merge(plots, wt, recursive=True)
    assert res[DERIVED]['mtimes_withheld'] == 'other-tree', res[DERIVED]
    assert mtime(derived / MARKER) == marker
    assert not up_to_date(derived)


def test_a_stale_untracked_file_keeps_the_directory_s_time(plots, tmp_path):
    wt = tmp_path / 'runs'
    add(plots, wt, branch='runs', recursive=True)
    derived, here = plots / DERIVED, wt / DERIVED
    (plots / CODE / 'fmt.py').write_text('# a comment\n' + FMT_PY)
    save(plots, 'comment fmt.py')
    sync(wt, recursive=True)
    # main has a file of its own in the output directory, which the
    # worktree's rerun did not make: the directory is not what the
    # worktree's is, so neither it nor its marker gets the newer time
    (derived / 'results/plots/old.png').write_text('stale\n')
    git(derived, 'update-index', '-q', '--refresh')
    time.sleep(0.05)
    snakemake(here)
    save(wt, 'nothing new')
    marker = mtime(derived / MARKER)
    folder = mtime(derived / 'results/plots')
    merge(plots, wt, recursive=True)
    assert mtime(derived / MARKER) == marker
    assert mtime(derived / 'results/plots') == folder
    assert not up_to_date(derived)
    assert (derived / 'results/plots/old.png').read_text() == 'stale\n'
