#!/usr/bin/env bash
# Create .venv (Python >= 3.11) and install the project with its dev extras.
# torch==2.13.0 is installed first: on the project's machines that request
# resolves to a local CPU wheel, so no multi-GB CUDA build is pulled.
# Set TORCH_SPEC to ask for another torch (e.g. TORCH_SPEC='torch>=2.13').
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
"$PY" - <<'PYCHECK'
import sys
if sys.version_info < (3, 11):
    sys.exit(f"Python >= 3.11 is required; got {sys.version.split()[0]}. Set PYTHON=/path/to/python3.11.")
PYCHECK
if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv" >&2
    "$PY" -m venv .venv
fi
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
    echo "setup: installing ${TORCH_SPEC:-torch==2.13.0} (CPU)" >&2
    .venv/bin/python -m pip install -q --disable-pip-version-check "${TORCH_SPEC:-torch==2.13.0}"
fi
# The tests need every extra but `adapters`: DuckDB/Spark (estimators.sources), a Dask
# LocalCluster and a loky pool (sim._fanout).
echo "setup: installing the project and its dev, sql, spark, dask and loky extras" >&2
if ! .venv/bin/python -m pip install -q --disable-pip-version-check -e ".[dev,sql,spark,dask,loky]" \
        > .venv/pip-install.log 2>&1; then
    cat .venv/pip-install.log >&2
    echo "setup: pip install failed (log above, also in .venv/pip-install.log)" >&2
    exit 1
fi
.venv/bin/python -c "import sim, estimators, recsys, validation" \
    || { echo "setup: the packages do not import" >&2; exit 1; }
echo "setup: done (.venv)" >&2
