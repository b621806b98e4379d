"""The layering that docs/architecture.rst describes, checked on the code
with import-linter (the contracts are in .importlinter)"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent
PACKAGE = ROOT / 'datalad_worktree'


def modules() -> list[str]:
    """Every module of the package, dotted, below the package"""
    return sorted('.'.join(p.relative_to(PACKAGE).with_suffix('').parts)
                  for p in PACKAGE.rglob('*.py') if p.name != '__init__.py')


def test_import_contracts_are_kept():
    """lint-imports, as CI's environment has it: the layers, and that only
    the runners and the setup command start processes"""
    res = subprocess.run(
        [str(Path(sys.executable).with_name('lint-imports')),
         '--config', str(ROOT / '.importlinter'), '--no-cache'],
        cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    assert 'Contracts: 2 kept, 0 broken.' in res.stdout


def test_no_module_outside_runners_calls_a_shell():
    for module in modules():
        text = (PACKAGE / (module.replace('.', '/') + '.py')).read_text()
        for call in ('os.system(', 'os.popen(', 'os.exec', 'os.spawn',
                     'shell=True'):
            assert call not in text, (module, call)


def test_the_architecture_page_names_every_module():
    page = (ROOT / 'docs' / 'architecture.rst').read_text()
    for module in modules():
        assert f'``{module}``' in page, module
