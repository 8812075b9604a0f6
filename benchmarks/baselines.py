"""Baselines for the docs/theory.md §2 reference-scenario benchmark (bench_sim.py).

Both draw what the suite draws (pool user with replacement, sessions uniform in the
user's window, one Bernoulli click per session, an independent pre-period at the
control CTR) and return the same (2, 15) moment table as ``sim.simulate_moments``
for one replicate. They use numpy's Generator with its own algorithms, so results
agree in distribution, not bit for bit.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def _moment_table(arm, v, m, pv, pm):
    cols = np.stack(
        [np.ones_like(v), v, m, v * v, m * m, v * m, pv, pm, pv * pv, pm * pm, pv * pm,
         v * pv, v * pm, m * pv, m * pm]
    ).astype(np.float64)  # fmt: skip
    return np.stack([cols[:, arm == a].sum(axis=1) for a in (0, 1)])


def numpy_replicate(gen, n_control, n_treatment, ctr_control, ctr_treatment, low, width):
    """Vectorised NumPy: one array op per draw type, then the moment sums."""
    n = n_control + n_treatment
    arm = np.repeat(np.array([0, 1]), [n_control, n_treatment])
    j = gen.integers(0, ctr_control.size, n)
    p = np.where(arm == 1, ctr_treatment[j], ctr_control[j])
    lo, w = low[j], width[j]
    m = lo + gen.integers(0, w)
    v = gen.binomial(m, p)
    pm = lo + gen.integers(0, w)
    pv = gen.binomial(pm, ctr_control[j])
    return _moment_table(arm, v, m, pv, pm)


def pandas_replicate(gen, n_control, n_treatment, ctr_control, ctr_treatment, low, width):
    """Straightforward pandas: a Python loop over users building one row per session,
    a DataFrame, a groupby to per-user counts, then the moment sums."""
    rows = []
    for user in range(n_control + n_treatment):
        arm = 0 if user < n_control else 1
        j = int(gen.integers(0, ctr_control.size))
        p = ctr_treatment[j] if arm == 1 else ctr_control[j]
        for period, ctr in (("exp", p), ("pre", ctr_control[j])):
            sessions = int(gen.integers(low[j], low[j] + width[j]))
            for _ in range(sessions):
                rows.append((user, arm, period, int(gen.random() < ctr)))
    df = pd.DataFrame(rows, columns=["user", "arm", "period", "click"])
    per_user = df.pivot_table(
        index=["user", "arm"], columns="period", values="click", aggfunc=["sum", "count"]
    ).fillna(0)
    arm = per_user.index.get_level_values("arm").to_numpy()
    v = per_user[("sum", "exp")].to_numpy(np.int64)
    m = per_user[("count", "exp")].to_numpy(np.int64)
    pv = per_user[("sum", "pre")].to_numpy(np.int64)
    pm = per_user[("count", "pre")].to_numpy(np.int64)
    return _moment_table(arm, v, m, pv, pm)
