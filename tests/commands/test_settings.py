"""Settings read the DataLad way, and parameters refused before any I/O"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from datalad import api as dl
from datalad import cfg
from datalad_next.constraints.exceptions import CommandParametrizationError

from datalad_worktree.commands._common import worker_count

from tests.helpers import (
    add,
    snapshot,
)

DATALAD = str(Path(sys.executable).with_name('datalad'))


@pytest.fixture
def max_jobs():
    """Set DataLad's job limit for this process, as `datalad -c` would"""
    def configure(value):
        cfg.set('datalad.runtime.max-jobs', str(value), scope='override')
    yield configure
    cfg.unset('datalad.runtime.max-jobs', scope='override')


def test_jobs_follow_datalads_setting(max_jobs):
    assert worker_count(None) == 1
    max_jobs(3)
    assert worker_count('auto') == 3
    assert worker_count(None) == 3
    assert worker_count(2) == 2


@pytest.mark.slow
@pytest.mark.parametrize('how', ['merge', 'ff-only'])
def test_sync_force_needs_reset(origin, tmp_path, how):
    wt = tmp_path / 'runs'
    add(origin, wt, branch='runs')
    before = snapshot(origin), snapshot(wt)
    with pytest.raises(CommandParametrizationError) as e:
        dl.worktree_sync(dataset=wt, how=how, force=True,
                         result_renderer='disabled')
    # advice in the caller's terms: Python arguments here, flags below
    assert "force=True only applies to how='reset'" in str(e.value)
    assert '--force' not in str(e.value)
    out = subprocess.run([DATALAD, 'worktree-sync', '--force'], cwd=wt,
                         capture_output=True, text=True)
    assert out.returncode != 0
    assert '--force only applies to --how reset' in out.stderr
    assert 'give --how reset together with --force, or leave out --force' \
        in out.stderr
    assert "force=True only applies" not in out.stderr
    assert 'Traceback' not in out.stderr
    assert (snapshot(origin), snapshot(wt)) == before


@pytest.mark.parametrize('how', ['override', 'environment'])
def test_setup_from_datalad_configuration_runs(origin, tmp_path, how):
    """`datalad -c datalad.worktree.setup=...` and DATALAD_WORKTREE_SETUP
    are the user's own configuration: the command runs by default"""
    wt = tmp_path / 'runs'
    command = 'touch made-by-setup'
    env = dict(os.environ)
    args = [DATALAD]
    if how == 'override':
        args += ['-c', f'datalad.worktree.setup={command}']
    else:
        env['DATALAD_WORKTREE_SETUP'] = command
    out = subprocess.run([*args, 'worktree-add', str(wt)], cwd=origin,
                         env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert 'worktree-setup(ok)' in out.stdout
    assert (wt / 'made-by-setup').exists()
    assert not (origin / 'made-by-setup').exists()
