"""GrowthBook gbstats' frequentist t-test behind the calibrate protocol.

gbstats [1]_ takes per-arm sufficient statistics: ``SampleMeanStatistic`` (n, sum,
sum of squares), ``RatioStatistic`` (numerator and denominator statistics and their
sum of products: the delta method) and ``RegressionAdjustedStatistic`` (CUPED with
the pooled theta of ``compute_theta``). ``TwoSidedTTest`` reports the relative lift
by default (``difference_type="relative"``); the adapters default to the absolute
difference and take ``relative=True`` for the lift. ``std_error`` is gbstats'
``uplift.stddev``. Note: when the control mean or a variance is 0, gbstats returns
estimate 0, interval [0, 0] and p-value 1 with an error message instead of raising.

References
----------
.. [1] GrowthBook, gbstats: the GrowthBook statistics engine,
   https://github.com/growthbook/growthbook (packages/stats), version 0.8.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from validation.adapters import require

__all__ = ["cuped", "mean", "ratio"]


def _mean_stat(values: Any) -> Any:
    s = require("gbstats.models.statistics", "gbstats")
    v = np.asarray(values, dtype=float)
    return s.SampleMeanStatistic(n=int(v.size), sum=float(v.sum()), sum_squares=float(v @ v))


def _test(stat_c: Any, stat_t: Any, relative: bool) -> dict[str, float]:
    t = require("gbstats.frequentist.tests", "gbstats")
    config = t.FrequentistConfig(difference_type="relative" if relative else "absolute")
    res = t.TwoSidedTTest(stat_c, stat_t, config).compute_result()
    return {
        "estimate": float(res.expected),
        "std_error": float(res.uplift.stddev),
        "ci_low": float(res.ci[0]),
        "ci_high": float(res.ci[1]),
        "pvalue": float(res.p_value),
    }


def ratio(num_t, den_t, num_c, den_c, *, relative: bool = False) -> dict[str, float]:
    """Run gbstats' ``TwoSidedTTest`` on two ``RatioStatistic`` (the delta method)."""
    s = require("gbstats.models.statistics", "gbstats")

    def stat(num: Any, den: Any) -> Any:
        v, m = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
        return s.RatioStatistic(
            n=int(v.size),
            m_statistic=_mean_stat(v),
            d_statistic=_mean_stat(m),
            m_d_sum_of_products=float(v @ m),
        )

    return _test(stat(num_c, den_c), stat(num_t, den_t), relative)


def mean(y_t, y_c, *, relative: bool = False) -> dict[str, float]:
    """Run gbstats' ``TwoSidedTTest`` on two ``SampleMeanStatistic``."""
    return _test(_mean_stat(y_c), _mean_stat(y_t), relative)


def cuped(y, arm, X, *, relative: bool = False) -> dict[str, float]:
    """Run gbstats CUPED, ``RegressionAdjustedStatistic`` with the pooled ``compute_theta``."""
    s = require("gbstats.models.statistics", "gbstats")
    yv = np.asarray(y, dtype=float)
    x = np.asarray(X, dtype=float)
    x = x[:, 0] if x.ndim == 2 else x
    treated = np.asarray(arm) == 1
    stats_ = []
    for mask in (~treated, treated):
        stats_.append(
            s.RegressionAdjustedStatistic(
                n=int(mask.sum()),
                post_statistic=_mean_stat(yv[mask]),
                pre_statistic=_mean_stat(x[mask]),
                post_pre_sum_of_products=float(yv[mask] @ x[mask]),
                theta=0.0,
            )
        )
    theta = float(s.compute_theta(stats_[0], stats_[1]))
    for st in stats_:
        st.theta = theta
    return _test(stats_[0], stats_[1], relative)
