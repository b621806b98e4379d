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


# The tests that take longest (pytest --durations on the 2-core CI machine,
# 30 s and more each), which CI (pytest-xdist, --dist loadgroup: the SLURM
# tests in one process, with one cluster, the others one by one) is to start
# first, longest first: started last, one of them alone kept a worker busy
# minutes after the others ran out of tests (and the machine's second core
# idle). Prefixes of test ids; the other tests keep their order, the slow
# ones first.
LONGEST = (
    'tests/integration/test_concurrency.py::test_many_jobs_add_worktrees',
    'tests/integration/test_slurm.py::test_a_task_killed',
    'tests/integration/test_slurm.py::',
    'tests/runners/test_locale.py::test_many_jobs',
    'tests/integration/test_crash_points.py::test_every_crash_point'
    '_converges[merge',
    'tests/integration/test_crash_points.py::test_every_crash_point'
    '_converges[sync',
    'tests/integration/test_tutorial.py::',
    'tests/integration/test_large_tree.py::',
    'tests/integration/test_install.py::',
    'tests/integration/test_benchmark.py::',
    'tests/environment/test_snakemake.py::',
    'tests/integration/test_crash_points.py::',
    'tests/integration/test_bench_jobs.py::',
    'tests/integration/test_reliability.py::test_parallel_batches',
    'tests/hierarchy/test_living.py::test_interrupted',
    'tests/engine/test_merge_many.py::test_local_work',
    'tests/environment/test_containers.py::',
    'tests/integration/test_slurm_job.py::',
)


def pytest_collection_modifyitems(config, items):
    def rank(item):
        for i, prefix in enumerate(LONGEST):
            if item.nodeid.startswith(prefix):
                return i
        return len(LONGEST) + (0 if item.get_closest_marker('slow') else 1)

    items.sort(key=rank)  # stable: the order within a rank stays
