"""Adapters that put other libraries' A/B estimators behind the calibrate protocol.

Optional extras (``pip install 'abrec-validate[adapters]'``), not needed by the tests:

* :mod:`validation.adapters.tea_tasting`: tea-tasting's ``RatioOfMeans`` and CUPED
  ``Mean(covariate=...)``;
* :mod:`validation.adapters.gbstats`: GrowthBook gbstats' frequentist t-test on
  ``RatioStatistic``, ``SampleMeanStatistic`` and ``RegressionAdjustedStatistic``;
* :mod:`validation.adapters.statsmodels_ols`: statsmodels OLS with cluster-robust
  (by user) or heteroskedasticity-robust errors, the library's defaults.

Each module imports its library lazily, on the first call, and raises
``ImportError`` naming the package to install when it is missing. Each function has
the signature of its kind (``fn(num_t, den_t, num_c, den_c)``, ``fn(y_t, y_c)`` or
``fn(y, arm, X)``) and returns a dict with ``estimate``, ``std_error``, ``ci_low``,
``ci_high``, ``pvalue``, so ``python -m validation calibrate
validation.adapters.gbstats:ratio --out DIR`` calibrates it. ``docs/calibrate.md``
holds the table of their calibration on the same scenarios.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["require"]


def require(module: str, package: str) -> ModuleType:
    """Import ``module`` or raise ``ImportError`` naming the package to install.

    Examples
    --------
    >>> require("math", "math").sqrt(4.0)
    2.0
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f"this adapter needs the {package!r} package, which is not installed: "
            f"pip install 'abrec-validate[adapters]' (or pip install {package})."
        ) from exc
