"""statsmodels OLS with robust standard errors behind the calibrate protocol.

:func:`cluster_ols` expands each user's views into session rows (click 0/1) and fits
``click ~ 1 + treatment`` with ``cov_type="cluster"`` grouped by user and statsmodels'
defaults (small-sample correction on, normal reference distribution): the docs/theory.md §1
equivalence with the delta method [1]_, up to the correction factor
``G/(G-1) (N-1)/(N-K)``. Users with no views have no rows. :func:`ols` fits
``y ~ 1 + arm + X`` per user with ``cov_type="HC1"`` (regression adjustment, the OLS
form of CUPED).

References
----------
.. [1] A. Deng, U. Knoblich, J. Lu, "Applying the Delta Method in Metric Analytics:
   A Practical Guide with Novel Ideas", KDD 2018.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from validation.adapters import require

__all__ = ["cluster_ols", "ols"]


def _result(fit: Any, column: int) -> dict[str, float]:
    ci = np.asarray(fit.conf_int(alpha=0.05))
    return {
        "estimate": float(np.asarray(fit.params)[column]),
        "std_error": float(np.asarray(fit.bse)[column]),
        "ci_low": float(ci[column, 0]),
        "ci_high": float(ci[column, 1]),
        "pvalue": float(np.asarray(fit.pvalues)[column]),
    }


def cluster_ols(num_t, den_t, num_c, den_c, *, use_correction: bool = True) -> dict[str, float]:
    """Session-level OLS ``click ~ 1 + treatment``, errors clustered by user."""
    sm = require("statsmodels.api", "statsmodels")
    clicks = np.r_[num_c, num_t].astype(np.int64)
    views = np.r_[den_c, den_t].astype(np.int64)
    treated = np.r_[np.zeros(len(num_c)), np.ones(len(num_t))]
    user = np.repeat(np.arange(views.size), views)
    starts = np.repeat(np.cumsum(views) - views, views)
    click = ((np.arange(user.size) - starts) < np.repeat(clicks, views)).astype(float)
    design = np.column_stack([np.ones(user.size), treated[user]])
    fit = sm.OLS(click, design).fit(
        cov_type="cluster", cov_kwds={"groups": user, "use_correction": use_correction}
    )
    return _result(fit, 1)


def ols(y, arm, X, *, cov_type: str = "HC1") -> dict[str, float]:
    """User-level OLS ``y ~ 1 + arm + X`` with robust errors (``cov_type``)."""
    sm = require("statsmodels.api", "statsmodels")
    x = np.asarray(X, dtype=float)
    x = x[:, None] if x.ndim == 1 else x
    design = np.column_stack([np.ones(len(y)), np.asarray(arm, dtype=float), x])
    fit = sm.OLS(np.asarray(y, dtype=float), design).fit(cov_type=cov_type)
    return _result(fit, 1)
