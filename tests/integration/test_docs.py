"""The documentation builds without a single warning"""

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.docs, pytest.mark.slow]

DOCS = Path(__file__).parents[2] / 'docs'


def test_docs_build_with_warnings_as_errors(tmp_path):
    out = subprocess.run(
        [sys.executable, '-m', 'sphinx', '-W', '--keep-going', '-q',
         '-b', 'html', str(DOCS), str(tmp_path / 'html')],
        capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert (tmp_path / 'html' / 'index.html').exists()
