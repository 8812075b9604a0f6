"""Small generated data sets for the estimator tests (numpy only, seeded)."""

from __future__ import annotations

import numpy as np


def clicks_views(rng: np.random.Generator, n: int, ctr: float = 0.3, conc: float = 4.0):
    """Per-user views (>= 1) and clicks with a heterogeneous per-user CTR."""
    views = 1 + rng.poisson(4.0, size=n)
    p = rng.beta(ctr * conc, (1 - ctr) * conc, size=n)
    clicks = rng.binomial(views, p)
    return clicks.astype(float), views.astype(float)


def session_rows(clicks: np.ndarray, views: np.ndarray, arm: int, user_offset: int):
    """Expand per-user counts to one row per view: (click, treatment, user id)."""
    users = np.repeat(np.arange(views.size) + user_offset, views.astype(int))
    click = np.zeros(users.size)
    start = 0
    for c, v in zip(clicks.astype(int), views.astype(int), strict=True):
        click[start : start + c] = 1.0
        start += v
    return click, np.full(users.size, float(arm)), users
