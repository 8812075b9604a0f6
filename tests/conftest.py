"""Shared test configuration: a derandomised hypothesis profile (JIT compilation breaks
deadlines, and CI must be deterministic), and one xdist group per test file but the
files in :data:`SPREAD_FILES` (how scripts/test.sh hands tests to its workers)."""

import signal
import threading

import pytest
from hypothesis import HealthCheck, settings

# pytest-xdist workers start with SIGINT ignored, and an ignored signal stays ignored in
# every process they start: the Ctrl-C tests' subprocesses (and the in-process ones)
# would never see the interrupt. Restore Python's default handler in the worker.
if (
    threading.current_thread() is threading.main_thread()
    and signal.getsignal(signal.SIGINT) is signal.SIG_IGN
):
    signal.signal(signal.SIGINT, signal.default_int_handler)

settings.register_profile(
    "suite",
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=50,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("suite")

#: Test files whose tests go to the xdist workers one at a time (scripts/test.sh runs
#: ``--dist loadgroup``): many independent, heavy tests and no costly module fixture.
#: Every other file is one group, so that its module fixtures (a Spark session, a Dask
#: LocalCluster, a quick-profile run) are built once, on one worker.
SPREAD_FILES = frozenset({"tests/validation/test_mutants.py"})


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(config, items):
    """Put every test of a file in one ``xdist_group``, except in :data:`SPREAD_FILES`."""
    for item in items:
        path = item.nodeid.split("::", 1)[0]
        if path not in SPREAD_FILES:
            item.add_marker(pytest.mark.xdist_group(path))
