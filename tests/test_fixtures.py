"""The shared fixtures themselves: restored copies are independent of their
template, and git's configuration is the isolated one"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from tests.helpers import (
    DATALAD,
    INSTALLED,
    clean,
    datasets_of,
    git,
)


def template_paths_in(top: Path, old: list[Path]) -> list[str]:
    """Every place below ``top`` that names a path below one of ``old``:
    symbolic link targets and file contents (git's object stores aside,
    which hold no paths), except files whose content is committed as it
    is (a .gitmodules that records where a subdataset was cloned from)"""
    needles = [os.fsencode(p) for p in old]
    found = []
    for dirpath, dirnames, filenames in os.walk(top):
        here = Path(dirpath)
        in_git = '.git' in here.relative_to(top).parts
        for name in dirnames + filenames:
            path = here / name
            if path.is_symlink():
                target = os.fsencode(os.readlink(path))
                if any(n in target for n in needles):
                    found.append(f'link {path} -> {os.fsdecode(target)}')
            elif path.is_file():
                if any(n in path.read_bytes() for n in needles) and (
                        in_git or name == '.git' or not committed(path)):
                    found.append(f'file {path}')
        dirnames[:] = [d for d in dirnames if not (in_git and d == 'objects')]
    return found


def committed(path: Path) -> bool:
    """Whether ``path`` is tracked by its dataset and unchanged"""
    ds = next(p for p in path.parents if (p / '.git').exists())
    rel = str(path.relative_to(ds))
    return subprocess.run(['git', 'ls-files', '--error-unmatch', '--', rel],
                          cwd=ds, capture_output=True).returncode == 0 and \
        subprocess.run(['git', 'diff', '--quiet', 'HEAD', '--', rel],
                       cwd=ds).returncode == 0


def worktrees(repo: Path) -> list[str]:
    """`git worktree list --porcelain` of ``repo``: paths and any problem"""
    return [line for line in git(repo, 'worktree', 'list',
                                 '--porcelain').splitlines()
            if line.startswith(('worktree ', 'prunable', 'locked'))]


def test_restored_worktree_points_only_into_its_copy(
        origin, runs, template, runs_template, tmp_path):
    old = [template.parent.parent, runs_template]
    assert template_paths_in(tmp_path, old) == []
    # the ephemeral clone's annex is the one of raw/2p in the copy
    assert os.readlink(origin / 'derived/L5b/inputs/2p/.git/annex') == \
        str(origin / 'raw/2p/.git/annex')
    # every dataset knows its two worktrees, both in the copy, none prunable
    for rel in INSTALLED:
        assert worktrees(origin / rel) == [
            f'worktree {(origin / rel).resolve()}',
            f'worktree {(runs / rel).resolve()}'], rel
        common = git(runs / rel, 'rev-parse', '--path-format=absolute',
                     '--git-common-dir')
        assert Path(common) == origin / rel / '.git', rel
        assert git(runs / rel, 'symbolic-ref', 'HEAD') == 'refs/heads/runs'
    assert sorted(datasets_of(origin)) == sorted(origin / r for r in INSTALLED)
    assert sorted(datasets_of(runs)) == sorted(runs / r for r in INSTALLED)
    for ds in [*datasets_of(origin), *datasets_of(runs)]:
        # nothing modified, nothing stale in the stat cache
        assert git(ds, 'status', '--porcelain', '--ignored') == '', ds
        assert git(ds, 'diff-files', '--name-only') == '', ds
    assert clean(origin) and clean(runs)
    # annexed content is readable in the worktree, also through the
    # ephemeral clone, and git-annex finds it in the copy's annex
    assert 'trials.tsv: 2 lines' in \
        (runs / 'derived/L5b/results/summary.txt').read_text()
    assert (runs / 'derived/L5b/inputs/2p/sub-01/F.csv').read_text() \
        .startswith('2p')
    where = git(runs / 'derived/L5b/inputs/2p', 'annex', 'contentlocation',
                git(runs / 'derived/L5b/inputs/2p', 'annex', 'lookupkey',
                    'sub-01/F.csv'))
    assert (runs / 'derived/L5b/inputs/2p' / where).resolve().is_relative_to(
        (origin / 'raw/2p/.git/annex').resolve())
    # the template is untouched: its worktree is still its own
    assert worktrees(runs_template / 'project/super') == [
        f'worktree {(runs_template / "project/super").resolve()}',
        f'worktree {(runs_template / "runs").resolve()}']


def test_restored_origin_alone_has_no_worktree(origin, template, tmp_path):
    assert template_paths_in(tmp_path, [template.parent.parent]) == []
    assert sorted(os.listdir(tmp_path)) == ['project']
    for rel in INSTALLED:
        assert worktrees(origin / rel) == [
            f'worktree {(origin / rel).resolve()}'], rel
        assert git(origin / rel, 'branch', '--list', 'runs') == ''
    assert clean(origin)


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
