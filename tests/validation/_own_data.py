"""Heavy-tailed own data and three estimators (right, naive binomial, summed s.e.).

Used by test_data_scenario.py and test_calibrate_data_cli.py (the CLI imports
``_own_data:naive_binomial`` etc. from this folder).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

import estimators
import sim

HEAVY = sim.BetaBinomialCtr(
    ctr_mean=0.1,
    concentration=2.0,
    views="lognormal",
    views_mean=5.0,
    views_dispersion=1.2,
    effect=0.0,
    effect_type="multiplicative",
)


def heavy_frame(n_users: int = 2000, *, seed: int = 5, events: bool = True) -> pd.DataFrame:
    """Rows of ``n_users`` heavy-tailed users (two rows per user when ``events``)."""
    d = sim.simulate_clicks(HEAVY, n_users, rng=seed)
    frame = pd.DataFrame(
        {
            "user": np.arange(n_users),
            "arm": np.where(d.arm == 1, "t", "c"),
            "clicks": d.clicks,
            "views": d.views,
            "pre": d.pre_clicks.astype(float),
        }
    )
    if not events:
        return frame
    half = frame.assign(clicks=frame.clicks // 2, views=frame.views // 2, pre=np.nan)
    rest = frame.assign(clicks=frame.clicks - half.clicks, views=frame.views - half.views)
    return pd.concat([half, rest], ignore_index=True).sample(frac=1.0, random_state=0)


def _normal_result(diff: float, se: float) -> dict[str, float]:
    z = stats.norm.ppf(0.975)
    p = 2.0 * stats.norm.sf(abs(diff) / se) if se > 0 else 1.0
    return {
        "estimate": diff,
        "std_error": se,
        "ci_low": diff - z * se,
        "ci_high": diff + z * se,
        "pvalue": float(p),
    }


def naive_binomial(num_t, den_t, num_c, den_c):
    """CTR difference with the binomial s.e. sqrt(p (1 - p) / sum M): ignores clustering."""
    p_t, p_c = num_t.sum() / den_t.sum(), num_c.sum() / den_c.sum()
    se = math.sqrt(p_t * (1 - p_t) / den_t.sum() + p_c * (1 - p_c) / den_c.sum())
    return _normal_result(float(p_t - p_c), se)


def summed_se(num_t, den_t, num_c, den_c):
    """CTR difference with s.e. = se_t + se_c (delta-method arm s.e. added, not in quadrature)."""
    se_t = estimators.ratio_sigma(num_t, den_t) / math.sqrt(num_t.size)
    se_c = estimators.ratio_sigma(num_c, den_c) / math.sqrt(num_c.size)
    diff = num_t.sum() / den_t.sum() - num_c.sum() / den_c.sum()
    return _normal_result(float(diff), float(se_t + se_c))


def tuple_return(num_t, den_t, num_c, den_c):
    """Breaks the protocol on every call: returns a tuple."""
    r = estimators.ratio_test(num_t, den_t, num_c, den_c)
    return (r.estimate, r.std_error)


def keyword_typo(num_t, den_t, num_c, den_c):
    """Raises on every call (a keyword typo)."""
    return estimators.ratio_test(num_t, den_t, num_c, den_c, confidence_levl=0.95)
