"""CUPED and OLS: exact equivalences, singular covariates, ratio metrics, a seeded MC."""

from __future__ import annotations

import math

import numpy as np
import pytest
import statsmodels.api as sm
from _est_data import clicks_views
from scipy import stats

from estimators import (
    RankDeficientWarning,
    RatioMoments,
    cuped_test,
    cuped_test_from_moments,
    cuped_theta,
    fill_missing_covariates,
    mean_test,
    ols_test,
    ratio_test,
)

RTOL = 1e-10
FIELDS = ("estimate", "std_error", "statistic", "pvalue", "ci_low", "ci_high", "df")


def _close(a, b, rtol=RTOL):
    np.testing.assert_allclose(np.asarray(a, float), np.asarray(b, float), rtol=rtol, atol=0)


def _data(seed, n=300, k=3, effect=0.4):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, k)) + np.arange(k)
    arm = rng.integers(0, 2, n)
    y = (
        1.0
        + x @ np.linspace(1.0, -0.5, k)
        + effect * arm
        + 0.3 * arm * x[:, 0]
        + rng.normal(size=n)
    )
    return y, arm, x


def _balanced(seed, n=150, k=2):
    """Equal arms whose covariates are permutations of each other: xbar_T = xbar_C."""
    rng = np.random.default_rng(seed)
    xc = rng.normal(size=(n, k))
    xt = xc[rng.permutation(n)]
    x = np.vstack([xt, xc])
    arm = np.r_[np.ones(n), np.zeros(n)]
    y = x @ [1.0, 0.5][:k] + 0.3 * arm + 0.5 * arm * x[:, 0] + rng.standard_t(5, size=2 * n)
    return y, arm, x


def test_theta_is_ols_slope():
    y, arm, x = _data(1)
    design = np.column_stack([np.ones(y.size), x])
    slope = np.linalg.lstsq(design, y, rcond=None)[0][1:]
    _close(cuped_theta(y, x), slope)
    assert isinstance(cuped_theta(y, x[:, 0]), float)


def test_pooled_matches_definition():
    y, arm, x = _data(2)
    theta = cuped_theta(y, x)
    y_cv = y - (x - x.mean(0)) @ theta
    t, c = arm == 1, arm == 0
    res = cuped_test(y, arm, x)
    _close(res.estimate, y_cv[t].mean() - y_cv[c].mean())
    se = math.sqrt(y_cv[t].var(ddof=1) / t.sum() + y_cv[c].var(ddof=1) / c.sum())
    _close(res.std_error, se)
    _close(res.theta, theta)
    plain = mean_test(y[t], y[c])
    _close(res.variance_reduction, 1 - se**2 / plain.std_error**2)


def test_within_equals_ols_coefficient():
    y, arm, x = _data(3)
    res = cuped_test(y, arm, x, theta="within")
    fit = sm.OLS(y, np.column_stack([np.ones(y.size), arm, x])).fit()
    _close(res.estimate, fit.params[1])
    _close(res.theta, fit.params[2:])
    ols = ols_test(y, arm, x)
    _close(ols.estimate, res.estimate)
    _close(ols.theta, res.theta)


def test_per_arm_equals_lin_interacted_coefficient():
    y, arm, x = _data(4)
    res = cuped_test(y, arm, x, theta="per_arm")
    xc = x - x.mean(0)
    fit = sm.OLS(y, np.column_stack([np.ones(y.size), arm, xc, arm[:, None] * xc])).fit()
    _close(res.estimate, fit.params[1])
    _close(res.theta[0], fit.params[2:5])  # control slopes
    _close(res.theta[1], fit.params[2:5] + fit.params[5:])  # treatment slopes
    _close(ols_test(y, arm, x, interacted=True).estimate, res.estimate)


@pytest.mark.parametrize("theta,interacted", [("within", False), ("per_arm", True)])
def test_se_equals_hc0_when_covariate_means_balance(theta, interacted):
    """Our s.e. (ddof=0) = the HC0 s.e. of OLS / Lin exactly when xbar_T = xbar_C."""
    y, arm, x = _balanced(5)
    res = cuped_test(y, arm, x, theta=theta, ddof=0)
    ols = ols_test(y, arm, x, interacted=interacted, cov_type="HC0")
    _close(res.estimate, ols.estimate, rtol=1e-9)
    _close(res.std_error, ols.std_error, rtol=1e-9)


def test_se_close_to_hc0_in_general():
    y, arm, x = _data(6, n=2000)
    res = cuped_test(y, arm, x, theta="within", ddof=0)
    ols = ols_test(y, arm, x, cov_type="HC0")
    assert abs(res.std_error / ols.std_error - 1) < 0.01  # O(1/n) apart, not equal
    assert res.std_error != ols.std_error


def test_ols_hc2_equals_welch():
    rng = np.random.default_rng(7)
    y = np.r_[rng.gamma(2, 1, 30), rng.gamma(2, 1.3, 45)]
    arm = np.r_[np.ones(30), np.zeros(45)]
    ols = ols_test(y, arm)
    welch = mean_test(y[:30], y[30:])
    _close(ols.estimate, welch.estimate)
    _close(ols.std_error, welch.std_error)


def test_ols_cluster_matches_delta_method():
    rng = np.random.default_rng(8)
    vt, mt = clicks_views(rng, 40)
    vc, mc = clicks_views(rng, 50)
    rows = []
    for arm_value, (v, m), off in ((1, (vt, mt), 0), (0, (vc, mc), 40)):
        for i, (c, views) in enumerate(zip(v.astype(int), m.astype(int), strict=True)):
            rows += [(1.0 if s < c else 0.0, arm_value, off + i) for s in range(views)]
    click, arm, user = (np.array(col) for col in zip(*rows, strict=True))
    res = ols_test(click, arm, cluster=user, use_correction=False)
    delta = ratio_test(vt, mt, vc, mc, ddof=0)
    _close(res.estimate, delta.estimate)
    _close(res.std_error, delta.std_error)
    assert res.n_treatment == 40 and res.n_control == 50
    t = ols_test(click, arm, cluster=user, distribution="t")
    assert t.df == 89.0


def test_full_dummy_set_warns_and_matches_ols():
    rng = np.random.default_rng(9)
    n = 400
    day = rng.integers(0, 7, n)
    dummies = np.eye(7)[day]  # all 7 levels: collinear with the intercept
    pre = rng.normal(8, 3, n)
    arm = rng.integers(0, 2, n)
    y = pre + day * 0.7 + 2 * arm + rng.normal(size=n)
    x = np.column_stack([dummies, pre])
    with pytest.warns(RankDeficientWarning, match="rank-deficient"):
        res = cuped_test(y, arm, x, theta="within")
    ref = ols_test(y, arm, np.column_stack([dummies[:, 1:], pre]))  # drop one level
    _close(res.estimate, ref.estimate, rtol=1e-8)
    with pytest.warns(RankDeficientWarning):
        pooled = cuped_test(y, arm, x)
    ref_pooled = cuped_test(y, arm, np.column_stack([dummies[:, 1:], pre]))
    _close(pooled.estimate, ref_pooled.estimate, rtol=1e-8)
    _close(pooled.std_error, ref_pooled.std_error, rtol=1e-8)
    assert pooled.variance_reduction > 0.5


@pytest.mark.parametrize("theta", ["pooled", "within", "per_arm"])
@pytest.mark.parametrize("ratio_metric", [False, True])
def test_moments_equal_arrays(theta, ratio_metric):
    rng = np.random.default_rng(10)
    n = 400
    arm = rng.integers(0, 2, n)
    v, m = clicks_views(rng, n)
    pv, pm = clicks_views(rng, n)
    pv = pv + v  # pre-period clicks correlated with the experiment's
    x = np.column_stack([pv, pm, rng.normal(size=n)])
    den = m if ratio_metric else None
    kw = dict(covariate_ratios=[(0, 1)], theta=theta, distribution="t")
    a = cuped_test(v, arm, x, den=den, **kw)
    t = arm == 1
    mt = RatioMoments.from_arrays(v[t], None if den is None else m[t], x[t])
    mc = RatioMoments.from_arrays(v[~t], None if den is None else m[~t], x[~t])
    b = cuped_test(mt, mc, **kw)
    assert a.method == b.method
    for f in FIELDS + ("variance_reduction", "theta", "control_value"):
        _close(getattr(b, f), getattr(a, f), rtol=1e-9)


def test_ratio_metric_unadjusted_variance_is_delta():
    rng = np.random.default_rng(11)
    n = 500
    arm = rng.integers(0, 2, n)
    v, m = clicks_views(rng, n)
    x = rng.normal(size=n) + 0.2 * v
    res = cuped_test(v, arm, x, den=m)
    t = arm == 1
    delta = ratio_test(v[t], m[t], v[~t], m[~t])
    plain_se = res.std_error / math.sqrt(1 - res.variance_reduction)
    _close(plain_se, delta.std_error)
    _close(res.control_value + res.theta[0] * (x[~t].mean() - x.mean()), delta.control_value)


def test_vectorised_cuped_over_replicates():
    rng = np.random.default_rng(12)
    reps, n = 5, 60
    data = []
    for _ in range(reps):
        x = rng.normal(size=(2 * n, 2))
        y = x @ [1.0, 0.5] + rng.normal(size=2 * n)
        data.append((y, np.r_[np.ones(n), np.zeros(n)], x))

    def stack(sel):
        ms = [RatioMoments.from_arrays(y[a == sel], None, x[a == sel]) for y, a, x in data]
        return RatioMoments(
            **{f: np.stack([getattr(m, f) for m in ms]) for f in RatioMoments.__slots__}
        )

    res = cuped_test_from_moments(stack(1), stack(0), theta="per_arm")
    assert res.theta.shape == (reps, 2, 2)
    for r, (y, a, x) in enumerate(data):
        one = cuped_test(y, a, x, theta="per_arm")
        for f in FIELDS + ("variance_reduction",):
            _close(getattr(res, f)[r], getattr(one, f), rtol=1e-9)


def test_noise_covariate_leaves_expectation_unchanged_monte_carlo():
    """Seeded MC over R replicates, true effect 0.5, tolerance z = 4 Monte Carlo s.e.

    A covariate independent of everything must leave E[estimate] at the true effect;
    the negative control uses a post-treatment "covariate" (affected by treatment),
    which removes most of the effect and must fail the same band.
    """
    rng = np.random.default_rng(13)
    reps, n, effect = 4000, 40, 0.5
    arm = np.r_[np.ones(n), np.zeros(n)].astype(bool)
    y = rng.exponential(1.0, (reps, 2 * n)) + effect * arm
    noise = rng.normal(size=(reps, 2 * n))
    post = y + rng.normal(size=(reps, 2 * n))  # depends on treatment: invalid covariate

    def moments(x, sel):
        yy, xx = y[:, sel], x[:, sel]
        return RatioMoments.from_mean_sums(
            sel.sum(),
            yy.sum(1),
            (yy**2).sum(1),
            sum_x=xx.sum(1)[:, None],
            sum_xx=(xx**2).sum(1)[:, None, None],
            sum_yx=(yy * xx).sum(1)[:, None],
        )

    for x, should_pass in ((noise, True), (post, False)):
        res = cuped_test_from_moments(moments(x, arm), moments(x, ~arm))
        est = res.estimate
        mcse = est.std(ddof=1) / math.sqrt(reps)
        assert (abs(est.mean() - effect) <= 4 * mcse) == should_pass, (est.mean(), mcse)
    # and the noise covariate barely changes the variance (reduction ~ 0)
    res = cuped_test_from_moments(moments(noise, arm), moments(noise, ~arm))
    assert abs(np.mean(res.variance_reduction)) < 0.05


def test_variance_reduction_tracks_r2():
    rng = np.random.default_rng(14)
    n = 20_000
    x = rng.normal(size=n)
    rho = 0.6
    y = rho * x + math.sqrt(1 - rho**2) * rng.normal(size=n)
    arm = rng.integers(0, 2, n)
    res = cuped_test(y, arm, x)
    # reduction 1 - rho^2 = 0.36 up to sampling error (s.e. about 2 (1 - rho^2) rho / sqrt(n))
    assert abs(res.variance_reduction - rho**2) < 4 * 2 * rho * (1 - rho**2) / math.sqrt(n)


def test_fill_missing_with_indicator_is_fill_invariant():
    rng = np.random.default_rng(15)
    n = 300
    pre = rng.normal(5, 2, n)
    y = pre + rng.normal(size=n)
    arm = rng.integers(0, 2, n)
    pre_missing = pre.copy()
    pre_missing[rng.random(n) < 0.3] = np.nan
    filled = fill_missing_covariates(pre_missing)
    assert filled.shape == (n, 2) and not np.isnan(filled).any()
    res = cuped_test(y, arm, filled)
    # a different fill value with the same indicator gives the same adjustment
    other = filled.copy()
    other[np.isnan(pre_missing), 0] = -100.0
    _close(cuped_test(y, arm, other).estimate, res.estimate, rtol=1e-9)
    assert res.variance_reduction > 0.3


def test_t_distribution_uses_welch_df():
    y, arm, x = _data(16)
    res = cuped_test(y, arm, x, distribution="t")
    z = cuped_test(y, arm, x)
    _close(res.estimate, z.estimate)
    assert math.isfinite(res.df) and res.df > 10
    _close(res.pvalue, 2 * stats.t.sf(abs(res.statistic), res.df))
    assert "theta" in res.summary()
