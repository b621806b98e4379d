"""The tutorial cannot rot: every shell block of docs/tutorial.rst runs"""

import re
import subprocess
from pathlib import Path

import pytest

from tests.helpers import env_with_datalad

pytestmark = [pytest.mark.docs, pytest.mark.slow]

TUTORIAL = Path(__file__).parents[2] / 'docs' / 'tutorial.rst'


def shell_blocks(text: str) -> list[str]:
    """The bodies of the ``.. code-block:: sh`` directives, dedented"""
    blocks = []
    for match in re.finditer(r'^\.\. code-block:: sh\n\n((?:   .*\n|\n)+)',
                             text, flags=re.M):
        lines = match.group(1).rstrip('\n').split('\n')
        blocks.append('\n'.join(line[3:] for line in lines))
    return blocks


def test_tutorial_runs_as_written(tmp_path):
    blocks = shell_blocks(TUTORIAL.read_text())
    assert len(blocks) >= 9
    script = 'set -eu\n' + '\n'.join(
        f'echo "### tutorial block {i}"\n{block}'
        for i, block in enumerate(blocks, 1))
    out = subprocess.run(['bash', '-c', script], cwd=tmp_path,
                         env=env_with_datalad(),
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    # what the page promises along the way
    assert 'sub-02,5' in out.stdout
    assert 'worktree-sync(ok):' in out.stdout
    assert 'with unmerged results' in out.stdout
    assert 'worktree-merge(ok):' in out.stdout
    assert 'made from lab-meeting' in out.stdout
    assert 'worktree-remove(ok):' in out.stdout
    assert 'no linked worktrees' in out.stdout
    assert (tmp_path / 'analysis/results/median-batch.txt').read_text() == \
        '4.0\n'
