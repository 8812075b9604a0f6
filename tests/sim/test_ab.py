"""Tests of the A/B click and query simulators (sim.ab, sim.scenarios, sim._ab_kernels).

Monte Carlo tolerances: every comparison is a z statistic against its Monte Carlo
standard error, accepted at |z| <= Z = 4 (two-sided tail 6.3e-5 per cell; the ~150
cells of this file have a family-wise false-failure bound below 1 %). Seeds are
pinned, so each run is deterministic. Every agreement test has a negative control
(a deliberately wrong model or truth) that must be rejected by the same statistic.
"""

from __future__ import annotations

import math

import numba
import numpy as np
import pytest
from _ab_reference import (
    reference_beta,
    reference_classes,
    reference_ctr,
    reference_queries,
)

from sim import (
    MOMENT_NAMES,
    BetaBinomialCtr,
    ClickData,
    Deng2018Classes,
    Moments,
    QueryScenario,
    ReferenceCtr,
    as_seed_sequence,
    child_sequences,
    simulate_clicks,
    simulate_moments,
    simulate_queries,
    simulate_sessions,
)

Z = 4.0
FIXED_DAYS = (2.0, -1.0, -2.5, 5.0, 0.5, 3.0, -3.0)


# --------------------------------------------------------------------------- helpers
def _user_stats(views, clicks, pre_views, pre_clicks):
    v, m = clicks.astype(float), views.astype(float)
    pv, pm = pre_clicks.astype(float), pre_views.astype(float)
    return {
        "M": m,
        "V": v,
        "preM": pm,
        "preV": pv,
        "MM": m * m,
        "VV": v * v,
        "VM": v * m,
        "VpreV": v * pv,
        "MpreM": m * pm,
    }


def _mean_z(a, b):
    se = math.sqrt(a.var(ddof=1) / a.size + b.var(ddof=1) / b.size)
    return (a.mean() - b.mean()) / se


def _ratio_z(v_a, m_a, v_b, m_b):
    """z of the CTR difference between two samples, delta-method s.e. (docs/theory.md §1)."""

    def ctr_and_var(v, m):
        r = v.sum() / m.sum()
        lin = (v - r * m) / m.mean()
        return r, lin.var(ddof=1) / v.size

    r_a, var_a = ctr_and_var(v_a.astype(float), m_a.astype(float))
    r_b, var_b = ctr_and_var(v_b.astype(float), m_b.astype(float))
    return (r_a - r_b) / math.sqrt(var_a + var_b)


def _max_abs_z(ours, ref):
    """Largest |z| over per-arm moment comparisons of two per-user datasets."""
    worst = 0.0
    for arm in (0, 1):
        a = [x[ours[0] == arm] for x in ours[1:]]
        b = [x[ref[0] == arm] for x in ref[1:]]
        sa, sb = _user_stats(*a), _user_stats(*b)
        for key in sa:
            worst = max(worst, abs(_mean_z(sa[key], sb[key])))
        worst = max(worst, abs(_ratio_z(a[1], a[0], b[1], b[0])))
    return worst


def _as_tuple(data: ClickData):
    return data.arm, data.views, data.clicks, data.pre_views, data.pre_clicks


# --------------------------------------------------------------------------- kernels vs NumPy
CTR_CASES = [
    (ReferenceCtr(), reference_ctr, "fresh_pre_user"),
    (ReferenceCtr(effect=0.0), reference_ctr, "fresh_pre_user"),
    (Deng2018Classes(effect=0.05), reference_classes, "fresh_pre_user"),
    (BetaBinomialCtr(effect=0.05), reference_beta, "pre_with_effect"),
    (
        BetaBinomialCtr(
            views="negative_binomial",
            views_dispersion=0.7,
            effect=0.3,
            effect_type="multiplicative",
        ),
        reference_beta,
        "fresh_pre_activity",
    ),
    (
        BetaBinomialCtr(views="lognormal", views_dispersion=1.0, ctr_mean=0.3),
        reference_beta,
        "fresh_pre_activity",
    ),
]


@pytest.mark.parametrize(("scenario", "reference", "wrong"), CTR_CASES)
def test_kernel_matches_numpy_reference(scenario, reference, wrong):
    n_per_arm = 20_000
    ours = _as_tuple(simulate_clicks(scenario, 2 * n_per_arm, rng=11))
    ref = reference(scenario, n_per_arm, seed=12)
    z = _max_abs_z(ours, ref)
    assert z <= Z, f"{scenario.describe()}: max |z| = {z:.2f} > {Z}"
    # negative control: the same statistic rejects a wrong model of the latent user
    z_wrong = _max_abs_z(ours, reference(scenario, n_per_arm, seed=12, variant=wrong))
    assert z_wrong > Z, f"negative control {wrong!r} not rejected: max |z| = {z_wrong:.2f}"


def _query_tuple(arm, queries, pre, first, visits):
    # reuse the moment comparison: (Y, visits) play (V, M) and (pre, first) the pre pair
    return arm, visits, queries, first + 1, pre


def test_queries_kernel_matches_numpy_reference():
    scenario = QueryScenario(day_effects=FIXED_DAYS)
    n_per_arm = 20_000
    d = simulate_queries(scenario, 2 * n_per_arm, rng=5)
    ours = _query_tuple(d.arm, d.queries, d.pre_queries, d.first_visit_dow, d.visit_days)
    z = _max_abs_z(ours, _query_tuple(*reference_queries(scenario, n_per_arm, seed=6)))
    assert z <= Z, f"max |z| = {z:.2f}"
    wrong = _query_tuple(*reference_queries(scenario, n_per_arm, seed=6, variant="fresh_pre_rate"))
    z_wrong = _max_abs_z(ours, wrong)
    assert z_wrong > Z, f"negative control not rejected: max |z| = {z_wrong:.2f}"
    # each first-visit day of week has the frequency of the reference, and -1 = never
    assert (d.queries[d.first_visit_dow == -1] == 0).all()
    assert ((d.first_visit_dow == -1) == (d.visit_days == 0)).all()


# --------------------------------------------------------------------------- truth
def _truth_z(data: ClickData, arm: int, value: float) -> float:
    sel = data.arm == arm
    v, m = data.clicks[sel].astype(float), data.views[sel].astype(float)
    r = v.sum() / m.sum()
    se = math.sqrt(((v - r * m) / m.mean()).var(ddof=1) / v.size)
    return (r - value) / se


TRUTH_CASES = [
    # scenario, n users per arm, a wrong "truth" for the treatment arm (negative control)
    (ReferenceCtr(), 200_000, lambda s: s.truth().ctr_treatment - 0.002),
    (
        Deng2018Classes(effect=0.02),
        100_000,
        # mean of per-class CTRs (a mean of ratios instead of the ratio of means)
        lambda s: sum(
            w * (mu + s.effect) for w, mu in zip(s.class_probs, s.ctr_means, strict=True)
        ),
    ),
    (
        BetaBinomialCtr(ctr_mean=0.5, concentration=2.0, effect=0.5, effect_type="multiplicative"),
        100_000,
        lambda s: s.ctr_mean * (1 + s.effect),
    ),  # ignores the clip at 1
    (
        BetaBinomialCtr(ctr_mean=0.1, concentration=1.0, effect=-0.08, views="lognormal"),
        100_000,
        lambda s: s.ctr_mean + s.effect,
    ),  # ignores the clip at 0
]


@pytest.mark.parametrize(("scenario", "n_per_arm", "wrong_truth"), TRUTH_CASES)
def test_truth_matches_simulation(scenario, n_per_arm, wrong_truth):
    data = simulate_clicks(scenario, 2 * n_per_arm, rng=21)
    truth = scenario.truth()
    for arm, value in ((0, truth.ctr_control), (1, truth.ctr_treatment)):
        z = _truth_z(data, arm, value)
        assert abs(z) <= Z, f"arm {arm}: z = {z:.2f} against truth {value}"
    assert data.views.mean() == pytest.approx(truth.mean_views, abs=Z * data.views.std() / 447)
    z_wrong = _truth_z(data, 1, wrong_truth(scenario))
    assert abs(z_wrong) > Z, f"wrong truth not rejected (z = {z_wrong:.2f})"


@pytest.mark.slow
@pytest.mark.parametrize(("scenario", "n_per_arm", "wrong_truth"), TRUTH_CASES)
def test_truth_matches_large_simulation(scenario, n_per_arm, wrong_truth):
    data = simulate_clicks(scenario, 40 * n_per_arm, rng=22)
    truth = scenario.truth()
    for arm, value in ((0, truth.ctr_control), (1, truth.ctr_treatment)):
        z = _truth_z(data, arm, value)
        assert abs(z) <= Z, f"arm {arm}: z = {z:.2f} against truth {value}"


def test_truth_fields_consistent():
    for s in (ReferenceCtr(), Deng2018Classes(effect=0.03), BetaBinomialCtr(effect=0.02)):
        t = s.truth()
        assert t.difference == pytest.approx(t.ctr_treatment - t.ctr_control, abs=1e-15)
        assert t.relative_lift == pytest.approx(t.ctr_treatment / t.ctr_control - 1, abs=1e-15)
    # A/A scenarios have zero true difference exactly
    for s in (ReferenceCtr(effect=0.0), Deng2018Classes(), BetaBinomialCtr()):
        assert s.truth().difference == 0.0


def _treated_ctr_by_quadrature(s: BetaBinomialCtr) -> float:
    from scipy import integrate, stats

    a, b = s.beta_params
    e = s.effect
    if s.effect_type == "additive":

        def arm_ctr(p):
            return min(1.0, max(0.0, p + e))

        kink = 1 - e if e > 0 else -e
    else:

        def arm_ctr(p):
            return min(1.0, p * (1 + e))

        kink = 1 / (1 + e)
    dens = stats.beta(a, b).pdf
    # split at the kink so quad integrates smooth pieces
    return sum(
        integrate.quad(lambda p: arm_ctr(p) * dens(p), lo, hi)[0]
        for lo, hi in ((0, kink), (kink, 1))
    )


@pytest.mark.parametrize(
    "scenario",
    [
        BetaBinomialCtr(ctr_mean=0.5, concentration=2.0, effect=0.5, effect_type="multiplicative"),
        BetaBinomialCtr(ctr_mean=0.3, concentration=3.0, effect=0.4),
        BetaBinomialCtr(ctr_mean=0.1, concentration=1.0, effect=-0.08),
    ],
)
def test_beta_truth_against_scipy_quadrature(scenario):
    expected = _treated_ctr_by_quadrature(scenario)
    assert scenario.truth().ctr_treatment == pytest.approx(expected, rel=1e-7)


def test_clipped_normal_truth_against_scipy():
    from scipy import stats

    s = Deng2018Classes(ctr_means=(0.02, 0.5, 0.97), ctr_sds=(0.05, 0.1, 0.05), effect=0.0)
    expected = 0.0
    for w, lam, mu, sd in zip(s.class_probs, s.views_means, s.ctr_means, s.ctr_sds, strict=True):
        x = stats.norm(mu, sd)
        # clip(X, 0, 1): the interior mean plus the mass above 1 (the mass below 0 adds 0)
        inner = x.expect(lambda p: p, lb=0, ub=1) + x.sf(1)
        expected += w * lam * inner
    mean_views = sum(w * lam for w, lam in zip(s.class_probs, s.views_means, strict=True))
    assert s.truth().ctr_control == pytest.approx(expected / mean_views, rel=1e-8)


def test_reference_truth_from_pool():
    s = ReferenceCtr()
    ctr_c, ctr_t, low, width = s.pool_arrays()
    assert ctr_c.size == 50_000
    # sessions window [max(r-2, 1), r+2) as in docs/theory.md §2 (r = 1 gives {1, 2})
    assert (low >= 1).all() and (width >= 2).all() and (width <= 4).all()
    # brute force E[sessions] by enumerating each window
    mean_sessions = np.array(
        [np.mean(np.arange(lo, lo + w)) for lo, w in zip(low[:500], width[:500], strict=True)]
    )
    assert np.allclose(mean_sessions, low[:500] + (width[:500] - 1) / 2)
    assert s.truth().ctr_control == pytest.approx(0.65, abs=1e-4)


# --------------------------------------------------------------------------- queries truth
def test_query_truth_fixed_days_matches_simulation():
    s = QueryScenario(day_effects=FIXED_DAYS)
    n_per_arm = 100_000
    d = simulate_queries(s, 2 * n_per_arm, rng=31)
    for arm in (0, 1):
        y = d.queries[d.arm == arm]
        z = (y.mean() - s.expected_queries(arm)) / (y.std(ddof=1) / math.sqrt(y.size))
        assert abs(z) <= Z, f"arm {arm}: z = {z:.2f}"
    assert d.true_effect_given_days == pytest.approx(s.true_effect())


def test_query_truth_exact_sum_against_brute_force():
    from scipy import integrate, stats

    s = QueryScenario()
    sd = math.sqrt(s.rate_sd**2 + 1)
    for t in (0, 1):
        mu = s.rate_mean + s.effect_per_visit * t

        def per_day(e, mu=mu):
            return sum(stats.norm.sf(k, loc=mu + e, scale=sd) for k in range(1, 80))

        avg = integrate.quad(per_day, s.day_effect_low, s.day_effect_high)[0] / (
            s.day_effect_high - s.day_effect_low
        )
        assert s.expected_queries(t) == pytest.approx(s.visit_prob * s.n_days * avg, rel=1e-9)


def test_query_truth_with_truncation_rejects_naive_effect():
    # Low rates: truncation at zero absorbs much of the +2 lift; the exact truth holds,
    # the naive 2 * visits does not (negative control).
    s = QueryScenario(rate_mean=0.0, rate_sd=1.0, day_effects=(0.0,) * 7)
    d = simulate_queries(s, 200_000, rng=32)
    y_t, y_c = d.queries[d.arm == 1], d.queries[d.arm == 0]
    se = math.sqrt(y_t.var(ddof=1) / y_t.size + y_c.var(ddof=1) / y_c.size)
    diff = y_t.mean() - y_c.mean()
    assert abs(diff - s.true_effect()) <= Z * se
    naive = s.effect_per_visit * s.visit_prob * s.n_days
    assert abs(diff - naive) > Z * se


def test_query_truth_random_days_is_mean_over_experiments():
    s = QueryScenario()
    seeds = child_sequences(as_seed_sequence(33), 300)
    diffs, given = [], []
    for ss in seeds:
        d = simulate_queries(s, 400, rng=ss)
        diffs.append(d.queries[d.arm == 1].mean() - d.queries[d.arm == 0].mean())
        given.append(d.true_effect_given_days)
    diffs = np.array(diffs)
    z = (diffs.mean() - s.true_effect()) / (diffs.std(ddof=1) / math.sqrt(diffs.size))
    assert abs(z) <= Z, f"z = {z:.2f}"
    # the conditional truths average to the marginal one (their s.d. sets the band)
    given = np.array(given)
    assert abs(given.mean() - s.true_effect()) <= Z * given.std(ddof=1) / math.sqrt(given.size)
    assert given.std() > 0  # day effects really are drawn per experiment


# --------------------------------------------------------------------------- Deng 2018 Table 2
def test_deng_table2_figures():
    """Published: true s.d. 0.00895, delta s.e. 0.00908, naive s.e. 0.00522 (Deng 2018, Table 2).

    These match the CTR of one group of 1,000 users (equivalently the difference of
    two groups of 2,000): sqrt(var(L) / 1000) = 0.00907 for this scenario.
    """
    reps = 1000
    mom = simulate_moments(Deng2018Classes(), (1000, 1000), reps, rng=41)
    ctr = mom.ctr().ravel()  # 2 * reps independent group CTRs (A/A)
    sd = ctr.std(ddof=1)
    sd_tol = Z * sd / math.sqrt(2 * (ctr.size - 1))  # s.e. of a normal-sample s.d.
    assert abs(sd - 0.00895) <= sd_tol, f"s.d. {sd:.5f}"
    # delta-method s.e. of each group from its sufficient statistics
    n, sv, sm = mom.n, mom.sum_v, mom.sum_m
    r = sv / sm
    s_vv = (mom.sum_vv - sv**2 / n) / (n - 1)
    s_mm = (mom.sum_mm - sm**2 / n) / (n - 1)
    s_vm = (mom.sum_vm - sv * sm / n) / (n - 1)
    delta = np.sqrt((s_vv - 2 * r * s_vm + r**2 * s_mm) / (n * (sm / n) ** 2)).ravel()
    naive = np.sqrt(r * (1 - r) / sm).ravel()
    assert abs(delta.mean() - sd) <= sd_tol, f"delta {delta.mean():.5f} vs s.d. {sd:.5f}"
    assert abs(naive.mean() - 0.00522) <= Z * naive.std(ddof=1) / math.sqrt(naive.size)
    assert abs(naive.mean() - sd) > sd_tol  # negative control: naive s.e. is wrong


# --------------------------------------------------------------------------- engine contracts
MOMENT_SCENARIOS = [ReferenceCtr(), Deng2018Classes(effect=0.01),
                    BetaBinomialCtr(views="negative_binomial", effect=0.02)]  # fmt: skip


@pytest.mark.parametrize("scenario", MOMENT_SCENARIOS)
def test_moments_equal_clicks_with_child_seed(scenario):
    reps, n_users = 5, (37, 51)
    mom = simulate_moments(scenario, n_users, reps, rng=7)
    children = child_sequences(as_seed_sequence(7), reps)
    for r in range(reps):
        data = simulate_clicks(scenario, n_users, rng=children[r])
        expected = data.moments()
        got = mom.replicate(r)
        for name in MOMENT_NAMES:
            np.testing.assert_array_equal(got[name], expected[name], err_msg=name)
    assert mom.n[0].tolist() == [37.0, 51.0]
    assert mom.seed == 7 and mom.truth == scenario.truth()


def test_moments_bit_identical_across_threads_and_chunks():
    scenario = Deng2018Classes(effect=0.01)
    results = []
    old = numba.get_num_threads()
    try:
        for threads in sorted({1, min(2, numba.config.NUMBA_NUM_THREADS)}):
            numba.set_num_threads(threads)
            for chunk in (1, 7, 64):
                mom = simulate_moments(scenario, 60, 23, rng=8, chunk_size=chunk)
                results.append(np.stack([mom.as_dict()[k] for k in MOMENT_NAMES]))
    finally:
        numba.set_num_threads(old)
    for other in results[1:]:
        np.testing.assert_array_equal(results[0], other)


def test_same_seed_same_result_different_seed_differs():
    s = BetaBinomialCtr(views="lognormal")
    a = simulate_clicks(s, 500, rng=3)
    b = simulate_clicks(s, 500, rng=np.random.SeedSequence(3))
    c = simulate_clicks(s, 500, rng=4)
    for name in ("views", "clicks", "pre_views", "pre_clicks"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.clicks, c.clicks)
    m1 = simulate_moments(s, 100, 4, rng=9)
    m2 = simulate_moments(s, 100, 4, rng=9)
    m3 = simulate_moments(s, 100, 4, rng=10)
    np.testing.assert_array_equal(m1.sum_v, m2.sum_v)
    assert not np.array_equal(m1.sum_v, m3.sum_v)
    assert len(set(m1.sum_v[:, 0].tolist())) > 1  # replicates differ from each other
    q1, q2 = (
        simulate_queries(QueryScenario(), 50, rng=1),
        simulate_queries(QueryScenario(), 50, rng=1),
    )
    np.testing.assert_array_equal(q1.queries, q2.queries)
    np.testing.assert_array_equal(q1.day_effects, q2.day_effects)


def test_seed_none_records_entropy():
    a = simulate_clicks(ReferenceCtr(), 20)
    b = simulate_clicks(ReferenceCtr(), 20, rng=np.random.SeedSequence(a.seed))
    np.testing.assert_array_equal(a.clicks, b.clicks)


@pytest.mark.parametrize("scenario", MOMENT_SCENARIOS)
def test_sessions_aggregate_to_clicks(scenario):
    n_users = (40, 25)
    rows = simulate_sessions(scenario, n_users, rng=12)
    data = simulate_clicks(scenario, n_users, rng=12)
    agg = rows.groupby("user").agg(
        views=("click", "size"), clicks=("click", "sum"), arm=("arm", "first")
    )
    has = data.views > 0
    np.testing.assert_array_equal(agg.index.to_numpy(), np.flatnonzero(has))
    np.testing.assert_array_equal(agg["views"].to_numpy(), data.views[has])
    np.testing.assert_array_equal(agg["clicks"].to_numpy(), data.clicks[has])
    np.testing.assert_array_equal(agg["arm"].to_numpy(), data.arm[has])
    assert set(rows["click"].unique()) <= {0, 1}


def test_sessions_click_positions_are_shuffled():
    rows = simulate_sessions(ReferenceCtr(), 2000, rng=13)
    # clicked rows are not always first within a user: position of a click is uniform
    pos = rows.groupby("user").cumcount()
    size = rows.groupby("user")["click"].transform("size")
    rel = (pos[rows.click == 1] / size[rows.click == 1]).to_numpy()
    unclicked_first = (rows.groupby("user")["click"].first() == 0).mean()
    assert unclicked_first > 0.2  # P(first row unclicked) ~ 0.35 if shuffled, 0 if not
    assert 0.3 < rel.mean() < 0.6


def test_n_users_split_and_allocation():
    d = simulate_clicks(Deng2018Classes(), 7, rng=0)
    assert (d.n_control, d.n_treatment) == (4, 3)
    assert d.arm.tolist() == [0, 0, 0, 0, 1, 1, 1]
    d = simulate_clicks(Deng2018Classes(), (2, 9), rng=0)
    assert (d.n_control, d.n_treatment) == (2, 9)
    assert d.views.dtype == np.int64 and d.arm.dtype == np.int64
    q = simulate_queries(QueryScenario(), (3, 5), rng=0)
    assert q.arm.tolist() == [0, 0, 0, 1, 1, 1, 1, 1]


def test_progress_callable_counts_replicates():
    seen = []
    simulate_moments(ReferenceCtr(), 20, 10, rng=0, progress=seen.append, chunk_size=3)
    assert sum(seen) == 10


def test_to_dict_is_json_serialisable():
    import json

    for s in (ReferenceCtr(), Deng2018Classes(), BetaBinomialCtr(), QueryScenario()):
        text = json.dumps(s.to_dict())
        assert type(s).__name__ in text
        assert isinstance(s.describe(), str) and len(s.describe()) > 20
    json.dumps(ReferenceCtr().truth().to_dict())


def test_moments_accessors():
    mom = simulate_moments(ReferenceCtr(), (10, 12), 3, rng=1)
    assert isinstance(mom, Moments) and mom.n_replicates == 3
    assert mom.arm(1)["n"].tolist() == [12.0] * 3
    assert mom.replicate(2)["sum_m"].shape == (2,)
    np.testing.assert_array_equal(mom.ctr(), mom.sum_v / mom.sum_m)
    with pytest.raises(ValueError, match="`arm` must be 0 or 1; got 2"):
        mom.arm(2)


# --------------------------------------------------------------------------- bad input
BAD = [
    (lambda: ReferenceCtr(effect=1.5), "`effect` must be in \\[-1, 1\\]; got 1.5"),
    (lambda: ReferenceCtr(ctr_mean=-0.1), "`ctr_mean` must be in \\[0, 1\\]; got -0.1"),
    (lambda: ReferenceCtr(ctr_sd=-1.0), "`ctr_sd` must be >= 0; got -1.0"),
    (lambda: ReferenceCtr(rate_mean=float("nan")), "`rate_mean` must be finite; got nan"),
    (lambda: ReferenceCtr(pool_size=0), "`pool_size` must be >= 1; got 0"),
    (lambda: ReferenceCtr(pool_seed=-3), "`pool_seed` must be >= 0; got -3"),
    (lambda: Deng2018Classes(class_probs=(0.5, 0.6, -0.1)), "`class_probs\\[2\\]` must be in"),
    (
        lambda: Deng2018Classes(class_probs=(0.5, 0.4, 0.2)),
        "`class_probs` must sum to 1; got sum 1.1",
    ),
    (
        lambda: Deng2018Classes(views_means=(2.0, 5.0)),
        "`views_means` must have one entry per class \\(3\\); got 2",
    ),
    (
        lambda: Deng2018Classes(views_means=(2.0, -5.0, 30.0)),
        "`views_means\\[1\\]` must be >= 0; got -5.0",
    ),
    (
        lambda: Deng2018Classes(ctr_means=(0.3, 1.2, 0.8)),
        "`ctr_means\\[1\\]` must be in \\[0, 1\\]; got 1.2",
    ),
    (
        lambda: Deng2018Classes(ctr_sds=(0.05, float("inf"), 0.05)),
        "`ctr_sds\\[1\\]` must be finite; got inf",
    ),
    (lambda: BetaBinomialCtr(ctr_mean=1.0), "`ctr_mean` must be in \\(0, 1\\); got 1.0"),
    (lambda: BetaBinomialCtr(concentration=0.0), "`concentration` must be > 0; got 0.0"),
    (lambda: BetaBinomialCtr(views="pareto"), "`views` must be one of .*; got 'pareto'"),
    (lambda: BetaBinomialCtr(views_mean=-2.0), "`views_mean` must be > 0; got -2.0"),
    (
        lambda: BetaBinomialCtr(views_dispersion=float("nan")),
        "`views_dispersion` must be finite; got nan",
    ),
    (
        lambda: BetaBinomialCtr(effect_type="log"),
        "`effect_type` must be 'additive' or 'multiplicative'; got 'log'",
    ),
    (
        lambda: BetaBinomialCtr(effect=-2.0, effect_type="multiplicative"),
        "`effect` must be >= -1 .*; got -2.0",
    ),
    (lambda: QueryScenario(visit_prob=1.5), "`visit_prob` must be in \\[0, 1\\]; got 1.5"),
    (lambda: QueryScenario(n_days=-1), "`n_days` must be >= 1; got -1"),
    (lambda: QueryScenario(rate_sd=-3.0), "`rate_sd` must be >= 0; got -3.0"),
    (lambda: QueryScenario(day_effects=(1.0, 2.0)), "`day_effects` must have 7 entries .*; got 2"),
    (
        lambda: QueryScenario(day_effect_low=5.0, day_effect_high=1.0),
        "`day_effect_high` must be >= ",
    ),
    (lambda: simulate_clicks(ReferenceCtr(), -4), "`n_users` must be >= 2 .*; got -4"),
    (lambda: simulate_clicks(ReferenceCtr(), (10, 0)), "`n_users` n_treatment must be >= 1; got 0"),
    (lambda: simulate_clicks(ReferenceCtr(), (1, 2, 3)), "`n_users` as a tuple must be"),
    (lambda: simulate_moments(ReferenceCtr(), 10, 0), "`n_replicates` must be >= 1; got 0"),
    (
        lambda: simulate_moments(ReferenceCtr(), 10, 2, chunk_size=0),
        "`chunk_size` must be >= 1; got 0",
    ),
    (lambda: simulate_queries(QueryScenario(), 1), "`n_users` must be >= 2 .*; got 1"),
    (
        lambda: simulate_clicks(ReferenceCtr(), 10, rng=-1),
        "`rng` must be a non-negative integer seed; got -1",
    ),
]


@pytest.mark.parametrize(("make", "message"), BAD)
def test_bad_input_raises_value_error(make, message):
    with pytest.raises(ValueError, match=message):
        make()


TYPE_BAD = [
    (lambda: simulate_clicks("reference", 10), "`scenario` must be a ReferenceCtr"),
    (lambda: simulate_queries(ReferenceCtr(), 10), "`scenario` must be a QueryScenario"),
    (lambda: simulate_clicks(ReferenceCtr(), 10.5), "`n_users` must be an int"),
    (lambda: simulate_moments(ReferenceCtr(), 10, 2.0), "`n_replicates` must be an int"),
    (lambda: ReferenceCtr(effect="0.1"), "`effect` must be a real number; got str"),
    (lambda: ReferenceCtr(pool_size=5.0), "`pool_size` must be an int; got float"),
]


@pytest.mark.parametrize(("make", "message"), TYPE_BAD)
def test_bad_type_raises_type_error(make, message):
    with pytest.raises(TypeError, match=message):
        make()
