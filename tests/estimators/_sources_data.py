"""Event-level experiment rows and their per-unit arrays (the reference), seeded."""

from __future__ import annotations

import numpy as np
import pandas as pd


def event_rows(seed: int, n_units: int = 400, arms=("control", "treatment", "t2"), offset=0.0):
    """Event rows (several per unit, integer clicks/views) plus pre-period rows.

    Returns ``(events, units)``: ``events`` a pandas DataFrame with columns
    ``user_id, variant, clicks, views, revenue, pre_clicks, pre_views``; ``units``
    a dict arm -> dict of per-unit arrays ``clicks, views, revenue, pre_clicks,
    pre_views, present`` (the sums per unit, 0 where a unit has no row of a kind).
    ``offset`` is added to every revenue event row (the large-mean precision case).
    """
    rng = np.random.default_rng(seed)
    arm_of = rng.integers(0, len(arms), size=n_units)
    n_events = 1 + rng.poisson(3.0, size=n_units)
    user = np.repeat(np.arange(n_units), n_events)
    views = rng.integers(1, 5, size=user.size)
    p = rng.beta(2.0, 5.0, size=n_units)[user]
    clicks = rng.binomial(views, p)
    revenue = rng.gamma(2.0, 3.0, size=user.size) + offset
    ev = pd.DataFrame(
        {
            "user_id": user,
            "variant": np.asarray(arms)[arm_of[user]],
            "clicks": clicks.astype(np.int64),
            "views": views.astype(np.int64),
            "revenue": revenue,
            "pre_clicks": np.nan,
            "pre_views": np.nan,
        }
    )
    has_pre = rng.random(n_units) < 0.7
    pre_users = np.flatnonzero(has_pre)
    pre = pd.DataFrame(
        {
            "user_id": pre_users,
            "variant": np.asarray(arms)[arm_of[pre_users]],
            "clicks": 0,
            "views": 0,
            "revenue": 0.0,
            "pre_clicks": rng.poisson(3.0, size=pre_users.size).astype(float),
            "pre_views": 1.0 + rng.poisson(6.0, size=pre_users.size),
        }
    )
    events = pd.concat([ev, pre], ignore_index=True).sample(frac=1.0, random_state=seed)
    events = events.reset_index(drop=True)
    per_unit = events.groupby("user_id").agg(
        variant=("variant", "first"),
        clicks=("clicks", "sum"),
        views=("views", "sum"),
        revenue=("revenue", "sum"),
        pre_clicks=("pre_clicks", "sum"),
        pre_views=("pre_views", "sum"),
        present=("pre_views", "count"),
    )
    units = {}
    for a in arms:
        g = per_unit[per_unit["variant"] == a]
        units[a] = {c: g[c].to_numpy(dtype=float) for c in g.columns if c != "variant"}
        units[a]["present"] = (units[a]["present"] > 0).astype(float)
    return events, units
