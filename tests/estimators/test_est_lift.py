"""Relative lifts: Edgeworth intervals (Deng et al. 2018 §2.2) and exact Fieller sets."""

from __future__ import annotations

import math

import numpy as np
import pytest
from _est_data import clicks_views
from hypothesis import assume, given
from hypothesis import strategies as st
from scipy import optimize, stats

from estimators import (
    EstimatorWarning,
    RatioMoments,
    mean_test,
    ratio_test,
    ratio_test_from_moments,
)


def _mean_moments(n, mean, var, third=None):
    """Moments of a mean metric with given n, sample mean and variance (ddof=1)."""
    s1 = n * mean
    s2 = (n - 1) * var + n * mean**2
    return RatioMoments.from_mean_sums(n, s1, s2, sum_yyy=third)


# --------------------------------------------------------------------- Fieller
@given(
    n_t=st.integers(3, 60),
    n_c=st.integers(3, 60),
    mean_t=st.floats(-2.0, 3.0),
    mean_c=st.floats(0.01, 2.0),
    sd_t=st.floats(0.05, 3.0),
    sd_c=st.floats(0.05, 3.0),
    alternative=st.sampled_from(["two-sided", "greater", "less"]),
    distribution=st.sampled_from(["z", "t"]),
    level=st.sampled_from([0.8, 0.95, 0.99]),
)
def test_fieller_set_contains_zero_exactly_when_p_at_least_alpha(
    n_t, n_c, mean_t, mean_c, sd_t, sd_c, alternative, distribution, level
):
    mt = _mean_moments(n_t, mean_t, sd_t**2)
    mc = _mean_moments(n_c, mean_c, sd_c**2)
    res = ratio_test_from_moments(
        mt,
        mc,
        relative=True,
        ci_method="fieller",
        alternative=alternative,
        distribution=distribution,
        confidence_level=level,
    )
    alpha = 1.0 - level
    assume(abs(res.pvalue - alpha) > 1e-9)
    assert res.ci_contains(0.0) == (res.pvalue >= alpha), (res.ci_low, res.ci_high, res.pvalue)


@given(
    mean_t=st.floats(-1.0, 3.0),
    mean_c=st.floats(0.02, 1.0),
    sd_c=st.floats(0.1, 4.0),
    alternative=st.sampled_from(["two-sided", "greater", "less"]),
    rho=st.lists(st.floats(-50.0, 50.0), min_size=5, max_size=5),
)
def test_fieller_set_is_the_set_of_unrejected_ratios(mean_t, mean_c, sd_c, alternative, rho):
    """Membership of the returned set equals the pivot test at every lift tried."""
    n = 12
    mt, mc = _mean_moments(n, mean_t, 1.0), _mean_moments(n, mean_c, sd_c**2)
    res = ratio_test_from_moments(
        mt, mc, relative=True, ci_method="fieller", alternative=alternative
    )
    vt, vc = 1.0 / n, sd_c**2 / n
    q = stats.norm.ppf(0.975 if alternative == "two-sided" else 0.95)
    for lift in rho:
        r = lift + 1.0
        pivot = (mean_t - r * mean_c) / math.sqrt(vt + r * r * vc)
        keep = {"two-sided": abs(pivot) <= q, "greater": pivot <= q, "less": pivot >= -q}
        assume(abs(abs(pivot) - q) > 1e-7)
        assert res.ci_contains(lift) == keep[alternative], (lift, pivot, res.ci_low, res.ci_high)


def test_fieller_kinds_interval_rays_line():
    n = 10
    bounded = ratio_test_from_moments(
        _mean_moments(n, 2.0, 1.0), _mean_moments(n, 2.0, 1.0), relative=True, ci_method="fieller"
    )
    rays = ratio_test_from_moments(
        _mean_moments(n, 3.0, 1.0), _mean_moments(n, 0.2, 1.0), relative=True, ci_method="fieller"
    )
    line = ratio_test_from_moments(
        _mean_moments(n, 0.1, 1.0), _mean_moments(n, 0.2, 1.0), relative=True, ci_method="fieller"
    )
    assert (bounded.ci_kind, rays.ci_kind, line.ci_kind) == ("interval", "rays", "line")
    assert not rays.ci_contains(0.0) and rays.pvalue < 0.05
    assert line.ci_contains(0.0) and line.pvalue >= 0.05
    vec = ratio_test_from_moments(
        _mean_moments(n, np.array([2.0, 3.0, 0.1]), 1.0),
        _mean_moments(n, np.array([2.0, 0.2, 0.2]), 1.0),
        relative=True,
        ci_method="fieller",
    )
    assert vec.ci_kind.tolist() == ["interval", "rays", "line"]


# -------------------------------------------------------------------- Edgeworth
def _reference_edgeworth(yt, yc, level=0.95, bc=False):
    """Slow reference: per-unit linearisation, sample skewness, numeric inversion."""
    nt, nc = yt.size, yc.size
    mt, mc = yt.mean(), yc.mean()
    a = (yt - mt) / mc  # treatment part of the linearised lift
    b = -mt * (yc - mc) / mc**2  # control part
    var = a.var(ddof=1) / nt + b.var(ddof=1) / nc
    k3 = (a**3).mean() / nt**2 + (b**3).mean() / nc**2
    se = math.sqrt(var)
    gamma = k3 / se**3
    est = mt / mc - 1.0
    if bc:
        est -= mt / mc**3 * yc.var(ddof=1) / nc

    def cdf(x):
        return stats.norm.cdf(x) - gamma / 6 * (x * x - 1) * stats.norm.pdf(x)

    tail = (1 - level) / 2
    hi_q = optimize.brentq(lambda x: cdf(x) - (1 - tail), -10, 10)
    lo_q = optimize.brentq(lambda x: cdf(x) - tail, -10, 10)
    return est, est - hi_q * se, est - lo_q * se, gamma


@pytest.mark.parametrize("bc", [False, True])
def test_edgeworth_matches_slow_reference(bc):
    rng = np.random.default_rng(21)
    yt, yc = rng.exponential(1.2, 25), rng.gamma(0.5, 2.0, 40)
    res = mean_test(yt, yc, relative=True, ci_method="edgeworth-bc" if bc else "edgeworth")
    est, lo, hi, gamma = _reference_edgeworth(yt, yc, bc=bc)
    assert abs(gamma) > 0.05  # the skewness matters here
    assert res.estimate == pytest.approx(est, rel=1e-12)
    assert res.ci_low == pytest.approx(lo, rel=1e-9)
    assert res.ci_high == pytest.approx(hi, rel=1e-9)
    delta = mean_test(yt, yc, relative=True, ci_method="delta-bc" if bc else "delta")
    assert res.std_error == pytest.approx(delta.std_error, rel=1e-12)
    assert abs(res.ci_low - delta.ci_low) > 1e-4  # Edgeworth is not the delta interval


def test_edgeworth_equals_delta_without_skewness():
    # symmetric per-unit values in both arms: every third central moment is 0
    yt = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    yc = np.array([2.0, 3.0, 4.0, 5.0, 6.0, 3.5, 4.5])
    e = mean_test(yt, yc, relative=True, ci_method="edgeworth")
    d = mean_test(yt, yc, relative=True, ci_method="delta")
    assert (e.ci_low, e.ci_high, e.pvalue) == pytest.approx((d.ci_low, d.ci_high, d.pvalue))


def test_edgeworth_from_moments_equals_arrays_for_ratio_metrics():
    rng = np.random.default_rng(22)
    vt, mt = clicks_views(rng, 40, ctr=0.35)
    vc, mc = clicks_views(rng, 50)
    for ci in ("edgeworth", "edgeworth-bc"):
        a = ratio_test(vt, mt, vc, mc, relative=True, ci_method=ci)
        b = ratio_test_from_moments(
            RatioMoments.from_arrays(vt, mt),
            RatioMoments.from_arrays(vc, mc),
            relative=True,
            ci_method=ci,
        )
        for f in ("estimate", "std_error", "pvalue", "ci_low", "ci_high"):
            assert getattr(b, f) == pytest.approx(getattr(a, f), rel=1e-9), f


def test_edgeworth_from_mean_sums_contract():
    """The call outside checks make: from_mean_sums with sum_yyy, vectorised."""
    rng = np.random.default_rng(23)
    y = rng.poisson(1.1, (4, 20)).astype(float)
    x = rng.poisson(1.0, (4, 20)).astype(float)
    mt = RatioMoments.from_mean_sums(20, y.sum(1), (y**2).sum(1), sum_yyy=(y**3).sum(1))
    mc = RatioMoments.from_mean_sums(20, x.sum(1), (x**2).sum(1), sum_yyy=(x**3).sum(1))
    vec = ratio_test_from_moments(mt, mc, relative=True, ci_method="edgeworth")
    for r in range(4):
        one = mean_test(y[r], x[r], relative=True, ci_method="edgeworth")
        assert vec.ci_low[r] == pytest.approx(one.ci_low, rel=1e-9)
        assert vec.ci_high[r] == pytest.approx(one.ci_high, rel=1e-9)


@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
def test_edgeworth_pvalue_agrees_with_its_interval(alternative):
    rng = np.random.default_rng(24)
    for _ in range(30):
        yt, yc = rng.exponential(1.3, 30), rng.exponential(1.0, 30)
        res = mean_test(yt, yc, relative=True, ci_method="edgeworth", alternative=alternative)
        assert res.ci_contains(0.0) == (res.pvalue >= 0.05)


def test_edgeworth_needs_third_order_sums_and_z():
    m = RatioMoments.from_mean_sums(10, 5.0, 4.0)
    with pytest.raises(ValueError, match=r"needs the third-order sums of `moments_t`"):
        ratio_test_from_moments(m, m, relative=True, ci_method="edgeworth")
    with pytest.raises(ValueError, match=r"`distribution` must be 'z' with ci_method='edgeworth'"):
        mean_test(
            [1.0, 2.0, 4.0], [1.0, 2.0], relative=True, ci_method="edgeworth", distribution="t"
        )


def test_bias_correction_near_zero_control_warns():
    yc = np.zeros(20)
    yc[:2] = 1.0  # control mean 0.1 from 2 of 20 units
    yt = np.ones(20)
    yt[::2] = 2.0
    with pytest.warns(
        EstimatorWarning, match="bias correction of the lift exceeds 25% of the ratio"
    ):
        mean_test(yt, yc, relative=True, ci_method="delta-bc")
    with pytest.warns(EstimatorWarning):
        mean_test(yt, yc, relative=True, ci_method="edgeworth-bc")
