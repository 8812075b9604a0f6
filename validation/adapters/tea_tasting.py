"""tea-tasting's ratio-of-means and CUPED estimators behind the calibrate protocol.

tea-tasting [1]_ analyses a ratio metric with the delta method (``RatioOfMeans``) and
CUPED with ``Mean(covariate=...)``; its defaults (Welch t, 95 % interval, relative
interval on the log scale) are kept. It does not return a standard error: the
adapters report ``std_error`` as the interval's half-width over ``z_{0.975}`` (not
used by any verdict of the calibration battery).

References
----------
.. [1] E. Kasyanov, tea-tasting: a Python package for the statistical analysis of A/B
   tests, https://tea-tasting.e10v.me (2024).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import stats

from validation.adapters import require

__all__ = ["cuped", "mean", "ratio_of_means"]

_Z = float(stats.norm.ppf(0.975))


def _result(res: Any, relative: bool) -> dict[str, float]:
    if relative:
        est, lo, hi = (
            res.rel_effect_size,
            res.rel_effect_size_ci_lower,
            res.rel_effect_size_ci_upper,
        )
    else:
        est, lo, hi = res.effect_size, res.effect_size_ci_lower, res.effect_size_ci_upper
    return {
        "estimate": float(est),
        "std_error": float((hi - lo) / (2 * _Z)),
        "ci_low": float(lo),
        "ci_high": float(hi),
        "pvalue": float(res.pvalue),
    }


def _analyze(metric: Any, columns: dict[str, npt.ArrayLike], variant: npt.ArrayLike) -> Any:
    pd = require("pandas", "pandas")
    tt = require("tea_tasting", "tea-tasting")
    frame = pd.DataFrame({"variant": np.asarray(variant, dtype=np.int64), **columns})
    return tt.Experiment(m=metric).analyze(frame, control=0)["m"]


def ratio_of_means(num_t, den_t, num_c, den_c, *, relative: bool = False) -> dict[str, float]:
    """Run tea-tasting's ``RatioOfMeans(numer, denom)`` on per-user clicks and views.

    Returns
    -------
    dict
        ``estimate`` (difference, or relative lift when ``relative``), ``std_error``,
        ``ci_low``, ``ci_high``, ``pvalue``.
    """
    tt = require("tea_tasting", "tea-tasting")
    variant = np.r_[np.zeros(len(num_c)), np.ones(len(num_t))]
    cols = {"v": np.r_[num_c, num_t].astype(float), "m": np.r_[den_c, den_t].astype(float)}
    return _result(_analyze(tt.RatioOfMeans("v", "m"), cols, variant), relative)


def mean(y_t, y_c, *, relative: bool = False) -> dict[str, float]:
    """Run tea-tasting's ``Mean(value)`` (Welch t-test)."""
    tt = require("tea_tasting", "tea-tasting")
    variant = np.r_[np.zeros(len(y_c)), np.ones(len(y_t))]
    return _result(_analyze(tt.Mean("y"), {"y": np.r_[y_c, y_t].astype(float)}, variant), relative)


def cuped(y, arm, X, *, relative: bool = False) -> dict[str, float]:
    """Run tea-tasting CUPED, ``Mean(value, covariate=...)``, on the first column of ``X``."""
    tt = require("tea_tasting", "tea-tasting")
    x = np.asarray(X, dtype=float)
    x = x[:, 0] if x.ndim == 2 else x
    cols = {"y": np.asarray(y, dtype=float), "x": x}
    return _result(_analyze(tt.Mean("y", covariate="x"), cols, arm), relative)
