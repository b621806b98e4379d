"""The shared fixtures themselves: git's configuration is the isolated one"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from .conftest import DATALAD


def test_git_configuration_is_isolated(isolated_git_config, tmp_path):
    """Only the session's own global configuration is read, by git and by
    the datalad processes that tests start"""
    home = isolated_git_config.parent
    assert Path(os.environ['HOME']) == home
    scopes = subprocess.run(
        ['git', 'config', '--list', '--show-scope', '--show-origin'],
        cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    assert scopes.splitlines() == [
        f'global\tfile:{isolated_git_config}\tuser.name=Test User',
        f'global\tfile:{isolated_git_config}\tuser.email=test@example.com']
    out = subprocess.run([DATALAD, '-f', 'json', 'configuration', 'dump'],
                         cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    seen = {r['name']: r.get('value')
            for r in map(json.loads, out.stdout.splitlines())
            if not r['name'].startswith('datalad.')}
    assert seen == {'user.name': 'Test User', 'user.email': 'test@example.com'}
