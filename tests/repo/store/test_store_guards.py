"""A repository that a newer git made, or an environment that points git
elsewhere, is never read as if git 2.39 had written it: ``store.guard``
hands every question to git where the files may say something else than
git would, and the readers agree with git wherever they do read

Each marker is written into a real repository: git 2.39 writes the config
entries of extensions it does not know itself (and then refuses the
repository, which the commands must report).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from datalad_next.runners import CommandError

from datalad_worktree.hierarchy.walk import subdataset_pointers
from datalad_worktree.repo import records
from datalad_worktree.repo.config import may_be_configured
from datalad_worktree.repo.queries import (
    adjusted_problem,
    branch_tip,
    current_branch,
    head_commit,
)
from datalad_worktree.repo.records import gitlinks, path_kind, submodule_paths
from datalad_worktree.repo.store import guard
from datalad_worktree.repo.store.refs import (
    Head,
    branch_commit,
    git_dirs,
    read_head,
    read_worktrees,
)
from datalad_worktree.repo.worktrees import (
    _from_git,
    forget_worktree,
    list_worktrees,
)


def git(repo: Path, *args: str, env: dict | None = None) -> str:
    return subprocess.run(['git', *args], cwd=repo, check=True,
                          capture_output=True, text=True,
                          env=None if env is None else {**os.environ, **env}
                          ).stdout.strip()


@pytest.fixture
def repo(tmp_path) -> Path:
    """Two commits on main, a branch 'other' at the first, the second
    recording a subdataset 'sub' (a gitlink, with its .gitmodules) at the
    first; a linked worktree 'linked' on 'other'"""
    path = tmp_path / 'repo'
    path.mkdir()
    git(path, 'init', '-q', '-b', 'main')
    (path / 'f').write_text('one\n')
    git(path, 'add', 'f')
    git(path, 'commit', '-q', '-m', 'one')
    first = git(path, 'rev-parse', 'HEAD')
    (path / '.gitmodules').write_text(
        '[submodule "sub"]\n\tpath = sub\n\turl = ./sub\n')
    git(path, 'add', '.gitmodules')
    git(path, 'update-index', '--add', '--cacheinfo', f'160000,{first},sub')
    git(path, 'commit', '-q', '-m', 'two')
    git(path, 'branch', 'other', first)
    git(path, 'worktree', 'add', '-q', str(tmp_path / 'linked'), 'other')
    return path


def files_are_read(repo: Path, head: str) -> dict:
    """What each reader of git's files answers for ``repo``, whose HEAD
    is the commit ``head`` (None: it hands the question to git)"""
    gitdir, common = git_dirs(repo)
    return dict(
        head=read_head(gitdir, common),
        branch=branch_commit(common, 'refs/heads/other'),
        worktrees=read_worktrees(common),
        tree=records._tree_from_files(repo, head),
        object=records._object_from_files(repo, head),
    )


def all_none(found: dict) -> bool:
    return all(v is None for v in found.values())


def set_config(repo: Path, *entries: tuple[str, str]) -> None:
    for key, value in entries:
        git(repo, 'config', key, value)


# --------------------------------------------------------------------------
# the repository format


TO_GIT = {
    'reftable': [('core.repositoryformatversion', '1'),
                 ('extensions.refStorage', 'reftable')],
    'files at another place': [('core.repositoryformatversion', '1'),
                               ('extensions.refStorage', 'files:///x')],
    'sha256': [('core.repositoryformatversion', '1'),
               ('extensions.objectFormat', 'sha256')],
    'compat sha256': [('core.repositoryformatversion', '1'),
                      ('extensions.compatObjectFormat', 'sha256')],
    'relative worktrees': [('core.repositoryformatversion', '1'),
                           ('extensions.relativeWorktrees', 'true')],
    'submodule path config': [('core.repositoryformatversion', '1'),
                              ('extensions.submodulePathConfig', 'true')],
    'unknown extension': [('core.repositoryformatversion', '1'),
                          ('extensions.somethingNew', 'true')],
    'extension subsection': [('core.repositoryformatversion', '1'),
                             ('extensions.new.kind', 'true')],
    'version 2': [('core.repositoryformatversion', '2')],
    'v1-only extension in version 0': [('extensions.noop-v1', 'true')],
    'object format in version 0': [('extensions.objectFormat', 'sha1')],
}
"""Repository formats whose files are not read here"""

READ = {
    'version 0': [],
    'version 1': [('core.repositoryformatversion', '1')],
    'worktreeConfig': [('core.repositoryformatversion', '1'),
                       ('extensions.worktreeConfig', 'true')],
    'worktreeConfig in version 0': [('extensions.worktreeConfig', 'true')],
    'sha1 said aloud': [('core.repositoryformatversion', '1'),
                        ('extensions.objectFormat', 'sha1')],
    'noop and noop-v1': [('core.repositoryformatversion', '1'),
                         ('extensions.noop', 'true'),
                         ('extensions.noop-v1', 'true')],
    'precious objects': [('extensions.preciousObjects', 'true')],
    'partial clone': [('core.repositoryformatversion', '1'),
                      ('extensions.partialClone', 'origin')],
}
"""Repository formats whose files are read, with the same answers as
git's"""


@pytest.mark.parametrize('marker', sorted(TO_GIT))
def test_a_repository_format_not_known_here_goes_to_git(repo, tmp_path,
                                                        marker):
    head, other = (git(repo, 'rev-parse', b) for b in ('HEAD', 'other'))
    set_config(repo, *TO_GIT[marker])
    common = git_dirs(repo)[1]
    assert all_none(files_are_read(repo, head))
    assert all_none(files_are_read(tmp_path / 'linked', other))
    assert guard.unreadable(common) is not None
    # a key no file mentions may still be set: git would have to say
    assert may_be_configured(repo, 'datalad.worktree.nothing')
    # the same repository with the marker gone is read again
    (common / 'config').write_text(
        '[core]\n\trepositoryformatversion = 0\n')
    assert None not in files_are_read(repo, head).values()
    assert not may_be_configured(repo, 'datalad.worktree.nothing')


@pytest.mark.parametrize('marker', sorted(READ))
def test_harmless_extensions_are_read_as_git_reads_them(repo, tmp_path,
                                                        marker):
    set_config(repo, *READ[marker])
    common = git_dirs(repo)[1]
    assert guard.unreadable(common) is None
    for where in (repo, tmp_path / 'linked'):
        found = files_are_read(where, git(where, 'rev-parse', 'HEAD'))
        assert None not in found.values(), found
        assert found['head'].commit == git(where, 'rev-parse', 'HEAD')
        assert found['branch'] == git(where, 'rev-parse', 'other')
        assert [w.path for w in found['worktrees']] == \
            [w.path for w in _from_git(where)]
    assert not may_be_configured(repo, 'datalad.worktree.nothing')


def test_worktree_config_is_looked_into(repo, tmp_path):
    """With extensions.worktreeConfig, a key set in a worktree's own
    config.worktree only is found by may_be_configured"""
    linked = tmp_path / 'linked'
    set_config(repo, *READ['worktreeConfig'])
    assert not may_be_configured(linked, 'datalad.worktree.setup')
    git(linked, 'config', '--worktree', 'datalad.worktree.setup', 'true')
    assert may_be_configured(linked, 'datalad.worktree.setup')
    assert not may_be_configured(repo, 'datalad.worktree.setup')


CONFIGS = {
    'a value that goes on at the next line':
        '[alias]\n\tx = !echo \\\n[core]\n\trepositoryformatversion = 1\n'
        '[extensions]\n\trefStorage = reftable\n',
    'a quoted version': '[core]\n\trepositoryformatversion = "1"\n',
    'a key before any section': 'repositoryformatversion = 0\n',
    'a broken header': '[core\n\trepositoryformatversion = 0\n',
    'an extension on the header line':
        '[core]\n\trepositoryformatversion = 1\n[extensions] refStorage = '
        'reftable\n',
}
"""Config files whose repository format is not told with certainty here,
or that declare one not read here in a way that is easy to miss"""


@pytest.mark.parametrize('config', sorted(CONFIGS))
def test_a_config_file_not_read_with_certainty_goes_to_git(repo, config):
    common = git_dirs(repo)[1]
    head = git(repo, 'rev-parse', 'HEAD')
    (common / 'config').write_text(CONFIGS[config])
    assert all_none(files_are_read(repo, head))
    assert guard.unreadable(common) is not None


def test_comments_quotes_and_sections_are_read_as_git_reads_them():
    assert guard.repository_format(
        '\ufeff# a comment [extensions]\n'
        '[remote "o#;[extensions]"]\n\turl = "a # b" ; comment\n'
        '[CORE]\n\tRepositoryFormatVersion = 1 # one\n'
        '[core "extensions"]\n\trefStorage = reftable\n'
        '[Extensions]\n\tWorktreeConfig\n') == (1, {'worktreeconfig': 'true'})


def test_the_decision_is_remembered_while_the_config_file_stays(repo):
    common = git_dirs(repo)[1]
    guard._format_problem.cache_clear()
    for _ in range(5):
        assert guard.unreadable(common) is None
    assert guard._format_problem.cache_info().hits == 4
    set_config(repo, *TO_GIT['reftable'])
    assert 'refstorage' in guard.unreadable(common)
    git(repo, 'config', '-f', '.git/config', '--unset', 'extensions.refStorage')
    assert guard.unreadable(common) is None


# --------------------------------------------------------------------------
# the environment


@pytest.mark.parametrize('variable', guard.REDIRECTING)
def test_an_environment_that_points_git_elsewhere_goes_to_git(
        repo, monkeypatch, variable):
    """With any of these set, nothing is read from files; the answers are
    git's (each variable set to what git then still reads as this
    repository)"""
    common = repo / '.git'
    value = {'GIT_DIR': common, 'GIT_COMMON_DIR': common,
             'GIT_WORK_TREE': repo, 'GIT_OBJECT_DIRECTORY': common / 'objects',
             'GIT_ALTERNATE_OBJECT_DIRECTORIES': common / 'objects',
             'GIT_QUARANTINE_PATH': common / 'objects',
             'GIT_NAMESPACE': 'elsewhere',
             'GIT_REPLACE_REF_BASE': 'refs/replace/',
             'GIT_NO_REPLACE_OBJECTS': '1',
             'GIT_REF_URI': f'files://{common}'}[variable]
    monkeypatch.setenv(variable, str(value))
    assert all_none(files_are_read(repo, git(repo, 'rev-parse', 'HEAD')))
    assert head_commit(repo) == git(repo, 'rev-parse', 'HEAD')
    assert branch_tip(repo, 'other') == git(repo, 'rev-parse', 'other')
    assert guard.unreadable(common) == f'{variable} is set'


# --------------------------------------------------------------------------
# replacement refs


@pytest.fixture
def replaced(repo) -> tuple[str, str, str]:
    """The second commit of ``repo``, replaced (``git replace``) by a commit
    that records 'sub' at the second commit instead of the first: the
    commit, what it records, what its replacement records"""
    commit = git(repo, 'rev-parse', 'HEAD')
    raw = git(repo, 'rev-parse', 'HEAD:sub')
    (repo / 'g').write_text('in the replacement\n')
    git(repo, 'add', 'g')
    git(repo, 'update-index', '--cacheinfo', f'160000,{commit},sub')
    tree = git(repo, 'write-tree')
    replacement = git(repo, 'commit-tree', '-p', 'HEAD~1', '-m', 'two',
                      tree)
    git(repo, 'reset', '-q', '--hard', commit)
    git(repo, 'replace', commit, replacement)
    return commit, raw, commit


@pytest.mark.parametrize('packed', [False, True])
def test_replacement_refs_send_object_reads_to_git(repo, replaced, packed):
    """git reads the replacement wherever the commit is named: so do the
    records, for every question (no answer from the raw commit mixed with
    one from its replacement)"""
    commit, raw, recorded = replaced
    if packed:
        git(repo, 'pack-refs', '--all')
        assert not any((repo / '.git' / 'refs' / 'replace').iterdir())
    common = git_dirs(repo)[1]
    assert git(repo, 'ls-tree', commit, '--', 'sub').split()[2] == recorded
    assert gitlinks(repo, commit, ['sub']) == {'sub': recorded} == \
        gitlinks(repo, 'HEAD', ['sub'])
    assert path_kind(repo, commit, 'g') == 'blob'
    assert submodule_paths(repo, commit) == ['sub']
    # what the hierarchy walk takes a commit's subdatasets from
    assert subdataset_pointers(repo, commit) == [('sub', recorded)]
    assert records.has_commit(repo, commit)
    assert guard.has_replacements(common)
    assert 'replacement' in guard.unreadable(common, what=guard.OBJECTS)
    # refs are no objects: they are still read
    assert guard.unreadable(common) is None
    git(repo, 'replace', '-d', commit)
    assert not guard.has_replacements(common)
    assert gitlinks(repo, commit, ['sub']) == {'sub': raw}
    assert path_kind(repo, commit, 'g') is None


def test_a_replacement_under_another_base_goes_to_git(repo, replaced,
                                                      monkeypatch):
    """GIT_REPLACE_REF_BASE: replacement refs elsewhere than refs/replace/,
    which git follows and no file reader looks for"""
    commit, raw, recorded = replaced
    replacement = git(repo, 'rev-parse', f'refs/replace/{commit}')
    git(repo, 'update-ref', f'refs/other-replace/{commit}', replacement)
    git(repo, 'replace', '-d', commit)
    monkeypatch.setenv('GIT_REPLACE_REF_BASE', 'refs/other-replace/')
    assert gitlinks(repo, commit, ['sub']) == {'sub': recorded}


def test_an_empty_replace_directory_is_no_replacement(repo):
    common = git_dirs(repo)[1]
    (common / 'refs' / 'replace' / 'sub').mkdir(parents=True)
    assert not guard.has_replacements(common)
    assert guard.unreadable(common, what=guard.OBJECTS) is None


# --------------------------------------------------------------------------
# relative paths, paths with newlines, a worktree's own reftable


def relative_links(repo: Path, linked: Path) -> Path:
    """Make the links between ``repo`` and its worktree ``linked`` relative,
    as git 2.48 writes them with ``worktree.useRelativePaths`` (without the
    extension it also sets, which git 2.39 refuses); the registration"""
    admin = repo / '.git' / 'worktrees' / linked.name
    (admin / 'gitdir').write_text(
        os.path.relpath(linked / '.git', admin) + '\n')
    (linked / '.git').write_text(
        f'gitdir: {os.path.relpath(admin, linked)}\n')
    return admin


def test_relative_links_are_resolved_against_their_own_directory(repo,
                                                                 tmp_path):
    linked = tmp_path / 'linked'
    admin = relative_links(repo, linked)
    assert not os.path.isabs((admin / 'gitdir').read_text())
    assert [os.path.realpath(d) for d in git_dirs(linked)] == [
        os.path.realpath(admin), os.path.realpath(repo / '.git')]
    assert read_head(*git_dirs(linked)) == Head(
        'refs/heads/other', git(repo, 'rev-parse', 'other'))
    listed = read_worktrees(git_dirs(repo)[1])
    assert [(w.path, w.head.branch, w.prunable) for w in listed[1:]] == [
        (linked, 'refs/heads/other', False)]
    assert [w.path for w in list_worktrees(linked)] == [repo, linked]
    # its directory gone: prunable, and forgotten as prune would
    shutil.rmtree(linked)
    assert read_worktrees(git_dirs(repo)[1])[1].prunable
    forget_worktree(admin, repo)
    assert not admin.exists()
    assert [w.path for w in list_worktrees(repo)] == [repo]


def test_git_lists_paths_and_lock_reasons_with_newlines(repo, tmp_path):
    odd = tmp_path / 'a\nworktree'
    git(repo, 'worktree', 'add', '-q', '--detach', str(odd))
    git(repo, 'worktree', 'lock', '--reason', 'two\nlines', str(odd))
    listed = {w.path: w for w in _from_git(repo)}
    assert set(listed) == {repo, tmp_path / 'linked', odd}
    assert listed[odd].locked == 'two\nlines'
    assert listed[odd].head == git(repo, 'rev-parse', 'HEAD')
    assert listed[tmp_path / 'linked'].branch == 'refs/heads/other'
    assert [w.path for w in list_worktrees(repo)] == \
        [w.path for w in _from_git(repo)]


def test_a_worktrees_own_reftable_goes_to_git(repo, tmp_path):
    """reftable keeps a worktree's HEAD in the worktree's own reftable and
    leaves the dummy ``ref: refs/heads/.invalid`` in its HEAD file"""
    linked = tmp_path / 'linked'
    admin = git_dirs(linked)[0]
    (admin / 'reftable').mkdir()
    assert read_head(admin, git_dirs(repo)[1]) is None
    assert read_worktrees(git_dirs(repo)[1]) is None
    assert current_branch(linked) == 'other'
    assert guard.unreadable(git_dirs(repo)[1], admin) is not None


def test_a_head_that_names_no_plain_branch_goes_to_git(repo, tmp_path):
    """The dummy HEAD of reftable, even without the reftable directory, is
    no branch whose file could be read"""
    linked = tmp_path / 'linked'
    admin = git_dirs(linked)[0]
    (admin / 'HEAD').write_text('ref: refs/heads/.invalid\n')
    assert read_head(admin, git_dirs(repo)[1]) is None
    assert read_worktrees(git_dirs(repo)[1]) is None
    assert branch_commit(git_dirs(repo)[1], 'refs/heads/x.lock') is None
    assert branch_commit(git_dirs(repo)[1], 'refs/heads/a/.b') is None


def test_an_adjusted_branch_is_found_where_head_is_not_read(repo,
                                                           monkeypatch):
    git(repo, 'checkout', '-q', '-b', 'adjusted/main(unlocked)')
    assert 'adjusted branch adjusted/main(unlocked)' in adjusted_problem(repo)
    monkeypatch.setenv('GIT_NO_REPLACE_OBJECTS', '1')
    assert read_head(*git_dirs(repo)) is None
    assert 'adjusted branch adjusted/main(unlocked)' in adjusted_problem(repo)


def test_no_commit_is_not_the_same_as_no_answer(repo):
    """Where git refuses the repository, the HEAD, branch and branch tip
    are not given as none: git's failure is raised"""
    set_config(repo, *TO_GIT['version 2'])
    for ask in (head_commit, current_branch,
                lambda r: branch_tip(r, 'other')):
        with pytest.raises(CommandError) as refused:
            ask(repo)
        assert 'repo version' in refused.value.stderr


# --------------------------------------------------------------------------
# the commands, on a hierarchy with a repository that git 2.39 refuses


REFUSED = {
    'reftable': (TO_GIT['reftable'], 'refstorage'),
    'relative worktrees': (TO_GIT['relative worktrees'],
                           'relativeworktrees'),
}
"""Markers that git 2.39 refuses a repository for, and the word of its
refusal that a failure's message is to carry"""


def command(name: str, origin: Path, runs: Path, tmp_path: Path) -> list:
    from datalad import api as dl

    from tests.helpers import quiet
    if name == 'add':
        return dl.worktree_add(str(tmp_path / 'new'), dataset=origin,
                               recursive=True, branch='new', **quiet())
    if name == 'list':
        return dl.worktree_list(dataset=origin, recursive=True, **quiet())
    if name == 'sync':
        return dl.worktree_sync(dataset=runs, recursive=True, **quiet())
    if name == 'merge':
        return dl.worktree_merge(str(runs), dataset=origin, recursive=True,
                                 **quiet())
    return dl.worktree_remove(str(runs), dataset=origin, **quiet())


@pytest.mark.parametrize('name,where', [
    pytest.param(name, where, id=f'{name} in {where}')
    for where in ('.', 'raw/bpod')
    for name in ('add', 'list', 'sync', 'merge', 'remove')])
@pytest.mark.parametrize('marker', sorted(REFUSED))
def test_a_command_reports_a_repository_git_refuses(origin, runs, tmp_path,
                                                    marker, name, where):
    """Each command on a hierarchy where the top dataset or a subdataset
    carries a marker git 2.39 refuses: a failure record that says why,
    nothing done, never a traceback or an answer read from files"""
    from tests.helpers import snapshot
    entries, says = REFUSED[marker]
    before = snapshot(runs)
    config = origin / where / '.git' / 'config'
    kept = config.read_bytes()
    for key, value in entries:
        git(origin / where, 'config', '-f', '.git/config', key, value)
    try:
        res = command(name, origin, runs, tmp_path)
    finally:
        marked = config.read_bytes()
        config.write_bytes(kept)
    assert marked != kept
    failed = [r for r in res if r['status'] in ('impossible', 'error')]
    assert failed, res
    assert any(says in (r.get('message') or '') for r in failed), failed
    assert not (tmp_path / 'new').exists()
    assert snapshot(runs) == before
