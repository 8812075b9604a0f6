"""Slow, vectorised NumPy reference implementations of the A/B simulators.

They follow the scenario docstrings literally with numpy's own samplers (a
different algorithm and stream from the numba kernels), so agreement is
distributional only. ``variant`` switches on a deliberately wrong model, used as
the negative control of the agreement tests.
"""

from __future__ import annotations

import numpy as np

from sim import BetaBinomialCtr, Deng2018Classes, QueryScenario, ReferenceCtr


def reference_ctr(scenario: ReferenceCtr, n_per_arm: int, seed: int, variant: str = "ok"):
    """Per-user (arm, views, clicks, pre_views, pre_clicks) for ReferenceCtr.

    ``variant="fresh_pre_user"``: the pre-period belongs to another pool user (wrong).
    """
    gen = np.random.default_rng(seed)
    ctr_c, ctr_t, low, width = scenario.pool_arrays()
    arm = np.repeat([0, 1], n_per_arm)
    j = gen.integers(0, ctr_c.size, arm.size)
    p = np.where(arm == 1, ctr_t[j], ctr_c[j])
    views = gen.integers(low[j], low[j] + width[j])
    clicks = gen.binomial(views, p)
    jp = gen.integers(0, ctr_c.size, arm.size) if variant == "fresh_pre_user" else j
    pre_views = gen.integers(low[jp], low[jp] + width[jp])
    pre_clicks = gen.binomial(pre_views, ctr_c[jp])
    return arm, views, clicks, pre_views, pre_clicks


def reference_classes(scenario: Deng2018Classes, n_per_arm: int, seed: int, variant: str = "ok"):
    """Deng 2018 classes; ``variant="fresh_pre_user"``: the pre-period is another user's."""
    gen = np.random.default_rng(seed)
    arm = np.repeat([0, 1], n_per_arm)
    k = gen.choice(len(scenario.class_probs), size=arm.size, p=np.asarray(scenario.class_probs))
    lam = np.asarray(scenario.views_means)[k]
    mu = np.asarray(scenario.ctr_means)[k]
    sd = np.asarray(scenario.ctr_sds)[k]
    raw = gen.normal(mu, sd)
    p_c = np.clip(raw, 0, 1)
    p = np.where(arm == 1, np.clip(raw + scenario.effect, 0, 1), p_c)
    views = gen.poisson(lam)
    clicks = gen.binomial(views, p)
    if variant == "fresh_pre_user":
        k = gen.choice(len(scenario.class_probs), size=arm.size, p=np.asarray(scenario.class_probs))
        lam = np.asarray(scenario.views_means)[k]
        p_c = np.clip(
            gen.normal(np.asarray(scenario.ctr_means)[k], np.asarray(scenario.ctr_sds)[k]), 0, 1
        )
    pre_views = gen.poisson(lam)
    pre_clicks = gen.binomial(pre_views, p_c)
    return arm, views, clicks, pre_views, pre_clicks


def reference_beta(scenario: BetaBinomialCtr, n_per_arm: int, seed: int, variant: str = "ok"):
    """Beta-binomial; wrong variants: ``"fresh_pre_activity"`` redraws lambda for the
    pre-period, ``"pre_with_effect"`` lets the treatment act in the pre-period."""
    gen = np.random.default_rng(seed)
    arm = np.repeat([0, 1], n_per_arm)
    a, b = scenario.beta_params
    p_c = gen.beta(a, b, arm.size)
    if scenario.effect_type == "additive":
        p_t = np.clip(p_c + scenario.effect, 0, 1)
    else:
        p_t = np.minimum(1.0, p_c * (1 + scenario.effect))
    p = np.where(arm == 1, p_t, p_c)

    def activity():
        mean, disp = scenario.views_mean, scenario.views_dispersion
        if scenario.views == "poisson":
            return np.full(arm.size, mean)
        if scenario.views == "negative_binomial":
            return gen.gamma(disp, mean / disp, arm.size)
        return gen.lognormal(np.log(mean) - disp**2 / 2, disp, arm.size)

    lam = activity()
    views = gen.poisson(lam)
    clicks = gen.binomial(views, p)
    lam_pre = activity() if variant == "fresh_pre_activity" else lam
    pre_views = gen.poisson(lam_pre)
    pre_clicks = gen.binomial(pre_views, p if variant == "pre_with_effect" else p_c)
    return arm, views, clicks, pre_views, pre_clicks


def reference_queries(scenario: QueryScenario, n_per_arm: int, seed: int, variant: str = "ok"):
    """docs/theory.md §3 queries with fixed day effects; ``variant="fresh_pre_rate"`` is wrong."""
    assert scenario.day_effects is not None
    gen = np.random.default_rng(seed)
    arm = np.repeat([0, 1], n_per_arm)
    rate = gen.normal(scenario.rate_mean, scenario.rate_sd, arm.size)
    pre_rate = gen.normal(scenario.rate_mean, scenario.rate_sd, arm.size)
    base = pre_rate if variant == "fresh_pre_rate" else rate
    pre = np.maximum(0, np.trunc(base + gen.standard_normal(arm.size))).astype(np.int64)
    effects = np.asarray(scenario.day_effects)
    queries = np.zeros(arm.size, dtype=np.int64)
    visits = np.zeros(arm.size, dtype=np.int64)
    first = np.full(arm.size, -1, dtype=np.int64)
    for d in range(scenario.n_days):
        visit = gen.random(arm.size) < scenario.visit_prob
        x = rate + effects[d % 7] + scenario.effect_per_visit * arm + gen.standard_normal(arm.size)
        daily = np.maximum(0, np.trunc(x)).astype(np.int64)
        queries += np.where(visit, daily, 0)
        first = np.where(visit & (visits == 0), d % 7, first)
        visits += visit
    return arm, queries, pre, first, visits
