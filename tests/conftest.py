"""pytest's configuration of the tests: only the registration of the shared
fixtures (made in ``tests/fixtures.py``); the markers are registered in
pyproject.toml. Test modules import their helpers from ``tests.helpers``
(and a template of their own's ``built_once`` and ``restore`` from
``tests.fixtures``), never from here.
"""

# datalad-next's check that no test changes the global git configuration
# (here: the isolated one of ``isolated_git_config``); only this fixture of
# its pytest plugin, whose others would change what the tests see
from datalad_next.tests.fixtures import check_gitconfig_global  # noqa: F401

from tests.fixtures import (  # noqa: F401 (fixtures, registered here)
    isolated_git_config,
    large,
    large_template,
    origin,
    runs,
    runs_template,
    template,
)
