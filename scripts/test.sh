#!/usr/bin/env bash
# Run the whole test suite, the slow Monte Carlo, Spark, Dask, gloo and mutation tests
# included, on up to 4 worker processes (pytest-xdist; one per core on a 2-core machine).
# Tests are handed out a file at a time (one xdist_group per file, tests/conftest.py), so
# a module's fixtures (a Spark session, a Dask LocalCluster, a quick-profile run) are
# built once; the mutation tests, heavy and independent, go one by one and so spread over
# the workers. Extra arguments go to pytest, e.g.
#   bash scripts/test.sh -m "not slow"      # the fast part only (what plain `pytest` runs)
#   bash scripts/test.sh tests/recsys -n 0  # one directory, in this process
# Run after scripts/setup.sh (the README's second command does both).
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python -m pytest -m "slow or not slow" -n auto --maxprocesses 4 --dist loadgroup \
    --durations 15 "$@"
