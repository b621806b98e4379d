"""The layering that docs/architecture.rst describes, checked on the code"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parent.parent / 'datalad_worktree'

LAYERS = [
    ['git'],
    ['outcome', 'paths', 'gitfiles', 'objects'],
    ['repo', 'settings'],
    ['records'],
    ['sharedannex', 'clones', 'sparse'],
    ['registry', 'hierarchy', 'scheduler'],
    ['nested', 'integrate', 'mtimes', 'bindpaths', 'envsetup', 'stale',
     'octopus', 'mergesources'],
    ['mergemany', 'removal'],
    ['provision'],
    ['interface'],
    ['provider'],
    ['worktree_add', 'worktree_sync', 'worktree_merge', 'worktree_list',
     'worktree_remove', 'worktree_get'],
]
LAYER = {name: i for i, names in enumerate(LAYERS) for name in names}


def own_imports(module: str) -> set[str]:
    """The modules of this package that ``module`` imports"""
    tree = ast.parse((PACKAGE / f'{module}.py').read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.add(node.module)
            else:
                found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and \
                node.module.startswith('datalad_worktree.'):
            found.add(node.module.split('.', 1)[1])
    return found


def external_imports(module: str) -> set[str]:
    tree = ast.parse((PACKAGE / f'{module}.py').read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name.split('.')[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            found.add(node.module.split('.')[0])
    return found


def test_every_module_has_a_layer():
    modules = {p.stem for p in PACKAGE.glob('*.py')} - {'__init__'}
    assert modules == set(LAYER)


@pytest.mark.parametrize('module', sorted(LAYER))
def test_imports_only_lower_layers(module):
    for imported in own_imports(module):
        assert LAYER[imported] < LAYER[module], \
            f'{module} (layer {LAYER[module]}) imports {imported} ' \
            f'(layer {LAYER[imported]})'


def test_only_the_git_layer_and_envsetup_start_processes():
    starters = {m for m in LAYER if 'subprocess' in external_imports(m)}
    assert starters == {'git', 'envsetup'}
    for module in LAYER:
        text = (PACKAGE / f'{module}.py').read_text()
        for call in ('os.system(', 'os.popen(', 'os.exec', 'os.spawn'):
            assert call not in text, (module, call)


@pytest.mark.parametrize('module', sorted(LAYER))
def test_no_module_over_450_lines(module):
    lines = (PACKAGE / f'{module}.py').read_text().count('\n')
    assert lines <= 450, f'{module}.py has {lines} lines'


def test_the_architecture_page_names_every_module():
    page = (PACKAGE.parent / 'docs' / 'architecture.rst').read_text()
    for module in LAYER:
        assert f'``{module}``' in page, module
