"""The distribution installs under a name of its own, and no page tells
users to install the other project that PyPI has as 'datalad-worktree'"""

import re
import subprocess
import sys
import zipfile
from pathlib import Path

TOP = Path(__file__).parent.parent


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
        assert 'datalad_worktree/worktree_get.py' in names
    assert '[datalad.extensions]' in entry
    assert 'datalad_worktree:command_suite' in entry


def test_no_page_says_to_install_the_other_project():
    pages = [TOP / 'README.md', *sorted((TOP / 'docs').glob('*.rst'))]
    for page in pages:
        for line in page.read_text().splitlines():
            if re.search(r'pip install\b.*\bdatalad-worktree\b', line):
                assert 'not' in line.lower() or 'Do not' in line, \
                    f'{page.name}: {line}'
