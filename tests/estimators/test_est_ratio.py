"""Delta method, ratio and mean tests: exact identities, moments = arrays, properties."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import statsmodels.api as sm
from _est_data import clicks_views, session_rows
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from estimators import (
    RatioMoments,
    TestResult,
    linearize_ratio,
    mean_test,
    ratio_sigma,
    ratio_test,
    ratio_test_from_moments,
    ratio_variance,
)

RTOL = 1e-10
FIELDS = ("estimate", "std_error", "statistic", "pvalue", "ci_low", "ci_high", "df")


def _arms(seed: int, n_t: int = 60, n_c: int = 50):
    rng = np.random.default_rng(seed)
    vt, mt = clicks_views(rng, n_t, ctr=0.33)
    vc, mc = clicks_views(rng, n_c, ctr=0.30)
    return vt, mt, vc, mc


def _close(a, b, rtol=RTOL):
    a, b = np.asarray(a, float), np.asarray(b, float)
    np.testing.assert_allclose(a, b, rtol=rtol, atol=0)


# ------------------------------------------------------------ exact identities
def test_delta_se_equals_cluster_robust_ols_without_correction():
    vt, mt, vc, mc = _arms(1)
    ct, at, ut = session_rows(vt, mt, 1, 0)
    cc, ac, uc = session_rows(vc, mc, 0, vt.size)
    click, arm, user = np.r_[ct, cc], np.r_[at, ac], np.r_[ut, uc].astype(int)
    design = sm.add_constant(arm)
    kw = {"groups": user, "use_correction": False}
    fit = sm.OLS(click, design).fit(cov_type="cluster", cov_kwds=kw)
    res = ratio_test(vt, mt, vc, mc, ddof=0)
    _close(res.estimate, fit.params[1])
    _close(res.std_error, fit.bse[1])
    # statsmodels' default correction multiplies the variance by G/(G-1) * (N-1)/(N-K)
    fit_c = sm.OLS(click, design).fit(cov_type="cluster", cov_kwds={"groups": user})
    g, n_rows, k = vt.size + vc.size, click.size, 2
    factor = math.sqrt(g / (g - 1) * (n_rows - 1) / (n_rows - k))
    _close(fit_c.bse[1], res.std_error * factor)
    assert abs(fit_c.bse[1] / res.std_error - 1) > 1e-3  # the factor is not 1 here


def test_ddof_changes_variance_by_n_over_n_minus_1_per_arm():
    vt, mt, vc, mc = _arms(2)
    v1 = ratio_variance(vt, mt, ddof=1)
    v0 = ratio_variance(vt, mt, ddof=0)
    _close(v1, v0 * vt.size / (vt.size - 1))
    _close(ratio_sigma(vt, mt) ** 2 / vt.size, v1)
    res = ratio_test(vt, mt, vc, mc)
    _close(res.std_error**2, ratio_variance(vt, mt) + ratio_variance(vc, mc))


def test_delta_variance_formula_matches_linearisation():
    vt, mt, _, _ = _arms(3)
    n = vt.size
    r = vt.mean() / mt.mean()
    cov = np.cov(vt, mt)
    formula = (cov[0, 0] - 2 * r * cov[0, 1] + r**2 * cov[1, 1]) / (n * mt.mean() ** 2)
    _close(ratio_variance(vt, mt), formula)
    lin = linearize_ratio(vt, mt)
    assert abs(lin.mean()) < 1e-12
    _close(lin.var(ddof=1) / n, formula)


def test_covariance_via_linearisation_equals_delta_covariance():
    rng = np.random.default_rng(4)
    n = 300
    v, m = clicks_views(rng, n)
    x = 0.5 * v + rng.normal(size=n)  # a covariate correlated with the numerator
    v2, m2 = v + rng.poisson(2.0, size=n), m + rng.poisson(1.0, size=n)  # a second ratio
    lin, lin2 = linearize_ratio(v, m), linearize_ratio(v2, m2)
    c = np.cov(np.vstack([v, m, x, v2, m2]))
    mu_v, mu_m, mu_v2, mu_m2 = v.mean(), m.mean(), v2.mean(), m2.mean()
    # docs/theory.md §3: cov(Vbar/Mbar, Xbar) = cov(Vbar, Xbar)/mu_M - mu_V cov(Mbar, Xbar)/mu_M^2
    delta_x = c[0, 2] / mu_m - mu_v * c[1, 2] / mu_m**2
    _close(np.cov(lin, x)[0, 1], delta_x)
    # two ratios: gradient (1/mu_M, -mu_V/mu_M^2) on each side
    g1 = np.array([1 / mu_m, -mu_v / mu_m**2])
    g2 = np.array([1 / mu_m2, -mu_v2 / mu_m2**2])
    _close(np.cov(lin, lin2)[0, 1], g1 @ c[np.ix_([0, 1], [3, 4])] @ g2)


def test_mean_test_equals_welch_and_student():
    rng = np.random.default_rng(5)
    yt, yc = rng.gamma(2.0, 1.5, size=40), rng.gamma(2.0, 1.2, size=25)
    ref = stats.ttest_ind(yt, yc, equal_var=False)
    res = mean_test(yt, yc, distribution="t")
    _close(res.statistic, ref.statistic)
    _close(res.pvalue, ref.pvalue)
    _close(res.df, ref.df)
    ci = ref.confidence_interval(0.9)
    res90 = mean_test(yt, yc, distribution="t", confidence_level=0.9)
    _close([res90.ci_low, res90.ci_high], [ci.low, ci.high])
    for alt in ("less", "greater"):
        _close(
            mean_test(yt, yc, distribution="t", alternative=alt).pvalue,
            stats.ttest_ind(yt, yc, equal_var=False, alternative=alt).pvalue,
        )
    # the z version uses the same s.e. and the normal
    z = mean_test(yt, yc)
    _close(z.pvalue, 2 * stats.norm.sf(abs(ref.statistic)))


def test_mean_is_ratio_with_unit_denominator():
    rng = np.random.default_rng(6)
    yt, yc = rng.normal(1, 1, 30), rng.normal(1.2, 1, 35)
    for relative, method in [(False, "delta"), (True, "delta"), (True, "fieller")]:
        a = mean_test(yt + 5, yc + 5, relative=relative, ci_method=method)
        b = ratio_test(
            yt + 5, np.ones(30), yc + 5, np.ones(35), relative=relative, ci_method=method
        )
        for f in FIELDS:
            _close(getattr(a, f), getattr(b, f))


def test_relative_methods_formulas():
    vt, mt, vc, mc = _arms(7)
    rt, rc = vt.sum() / mt.sum(), vc.sum() / mc.sum()
    var_t, var_c = ratio_variance(vt, mt), ratio_variance(vc, mc)
    z = stats.norm.ppf(0.975)
    d = ratio_test(vt, mt, vc, mc, relative=True)
    se = math.sqrt(var_t / rc**2 + rt**2 * var_c / rc**4)
    _close([d.estimate, d.std_error], [rt / rc - 1, se])
    _close([d.ci_low, d.ci_high], [rt / rc - 1 - z * se, rt / rc - 1 + z * se])
    lg = ratio_test(vt, mt, vc, mc, relative=True, ci_method="log")
    sl = math.sqrt(var_t / rt**2 + var_c / rc**2)
    _close([lg.ci_low, lg.ci_high], np.exp(np.log(rt / rc) + np.array([-z, z]) * sl) - 1)
    _close(lg.std_error, se)  # back-transformed log s.e. equals the delta s.e.
    fl = ratio_test(vt, mt, vc, mc, relative=True, ci_method="fieller")
    for end in (fl.ci_low, fl.ci_high):  # both ends solve the Fieller equation
        rho = end + 1
        _close((rt - rho * rc) ** 2, z**2 * (var_t + rho**2 * var_c), rtol=1e-9)
    assert fl.ci_low < fl.estimate < fl.ci_high


def test_fieller_duality_and_unbounded_case():
    vt, mt, vc, mc = _arms(8)
    for alt in ("two-sided", "greater", "less"):
        fl = ratio_test(vt, mt, vc, mc, relative=True, ci_method="fieller", alternative=alt)
        ab = ratio_test(vt, mt, vc, mc, alternative=alt)
        _close(fl.statistic, ab.statistic)  # Fieller pivot at lift 0 = absolute z
        _close(fl.pvalue, ab.pvalue)
    # control ratio not distinguishable from 0 at this level -> the exact set is two
    # rays (ci_low > ci_high) that exclude a lift of 0, as the tiny p-value says
    vc0 = np.zeros(20)
    vc0[0] = 1.0
    res = ratio_test(vt, mt, vc0, np.full(20, 3.0), relative=True, ci_method="fieller")
    assert res.ci_kind == "rays" and res.ci_low > res.ci_high
    assert res.pvalue < 0.05 and not res.ci_contains(0.0)
    assert res.ci_contains(res.ci_low + 1.0) and res.ci_contains(res.ci_high - 1.0)


def test_delta_bc_reduces_to_deng_mean_formula():
    rng = np.random.default_rng(9)
    yt, yc = rng.gamma(2.0, 1.0, 30), rng.gamma(2.0, 1.0, 25)
    res = mean_test(yt, yc, relative=True, ci_method="delta-bc")
    plain = mean_test(yt, yc, relative=True)
    # Deng et al. 2018: E[Ybar_T/Ybar_C] ~ mu_T/mu_C + mu_T sigma_C^2 / (n_C mu_C^3)
    bias = yt.mean() * yc.var(ddof=1) / (yc.size * yc.mean() ** 3)
    _close(res.estimate, plain.estimate - bias)
    _close(res.std_error, plain.std_error)


def test_delta_bc_removes_small_sample_bias_monte_carlo():
    """Seeded MC: 20 gamma(2) units per arm, true lift 0; E[lift_hat] = 40/39 - 1.

    Tolerance z = 4 times the Monte Carlo s.e.; the uncorrected estimate is the
    negative control and must fall outside the band.
    """
    rng = np.random.default_rng(10)
    reps, n = 20_000, 20
    yt, yc = rng.gamma(2.0, 1.0, (reps, n)), rng.gamma(2.0, 1.0, (reps, n))
    mt = RatioMoments.from_mean_sums(n, yt.sum(1), (yt**2).sum(1))
    mc = RatioMoments.from_mean_sums(n, yc.sum(1), (yc**2).sum(1))
    bc = ratio_test_from_moments(mt, mc, relative=True, ci_method="delta-bc")
    plain = ratio_test_from_moments(mt, mc, relative=True)
    for est, should_pass in ((bc.estimate, True), (plain.estimate, False)):
        mcse = est.std(ddof=1) / math.sqrt(reps)
        assert (abs(est.mean()) <= 4 * mcse) == should_pass, (est.mean(), mcse)
    assert abs(plain.estimate.mean() - 1 / 39) <= 4 * plain.estimate.std() / math.sqrt(reps)


# --------------------------------------------------------- moments = arrays
@pytest.mark.parametrize(
    "relative,ci_method,alternative,distribution",
    [(False, "delta", a, d) for a in ("two-sided", "less", "greater") for d in ("z", "t")]
    + [
        (True, m, a, d)
        for m, a, d in itertools.product(
            ("delta", "log", "fieller", "delta-bc"), ("two-sided", "greater"), ("z", "t")
        )
    ],
)
def test_moments_equal_arrays(relative, ci_method, alternative, distribution):
    vt, mt, vc, mc = _arms(11)
    kw = dict(
        relative=relative, ci_method=ci_method, alternative=alternative, distribution=distribution
    )
    a = ratio_test(vt, mt, vc, mc, **kw)
    b = ratio_test(RatioMoments.from_arrays(vt, mt), RatioMoments.from_arrays(vc, mc), **kw)
    assert a.method == b.method
    for f in FIELDS + ("control_value", "treatment_value", "n_control", "n_treatment"):
        _close(getattr(b, f), getattr(a, f))


def test_vectorised_moments_equal_per_replicate_results():
    reps = 7
    data = [_arms(100 + r, n_t=30 + r, n_c=40 - r) for r in range(reps)]

    def stack(i, j):
        ms = [RatioMoments.from_arrays(d[i], d[j]) for d in data]
        names = ("n", "sum_v", "sum_m", "sum_vv", "sum_mm", "sum_vm")
        return RatioMoments(**{k: np.array([float(getattr(m, k)) for m in ms]) for k in names})

    mt, mc = stack(0, 1), stack(2, 3)
    for ci in ("delta", "log", "fieller", "delta-bc"):
        vec = ratio_test_from_moments(mt, mc, relative=True, ci_method=ci, distribution="t")
        assert vec.estimate.shape == (reps,)
        for r, d in enumerate(data):
            one = ratio_test(*d, relative=True, ci_method=ci, distribution="t")
            for f in FIELDS:
                _close(getattr(vec, f)[r], getattr(one, f))


def test_vectorised_degenerate_replicates_raise_or_nan():
    mt = RatioMoments(
        n=[5, 5, 1],
        sum_v=[2, 0, 1],
        sum_m=[10, 0, 3],
        sum_vv=[2, 0, 1],
        sum_mm=[22, 0, 9],
        sum_vm=[5, 0, 3],
    )
    mc = RatioMoments.from_arrays([1, 0, 2, 1, 0], [3, 2, 4, 3, 1])
    with pytest.raises(ValueError, match=r"treatment arm.*replicates \[2\]"):
        ratio_test_from_moments(mt, mc)
    res = ratio_test_from_moments(mt, mc, degenerate="nan")
    assert np.isfinite(res.estimate[0]) and np.isnan(res.estimate[1:]).all()


def test_from_simulator_columns():
    rng = np.random.default_rng(12)
    fields = [
        "n",
        "sum_v",
        "sum_m",
        "sum_vv",
        "sum_mm",
        "sum_vm",
        "pre_sum_v",
        "pre_sum_m",
        "pre_sum_vv",
        "pre_sum_mm",
        "pre_sum_vm",
        "sum_v_pre_v",
        "sum_v_pre_m",
        "sum_m_pre_v",
        "sum_m_pre_m",
    ]
    reps = 3
    per = {}  # build from actual units so the moments are consistent
    units = [[None, None] for _ in range(reps)]
    for r in range(reps):
        for a in (0, 1):
            v, m = clicks_views(rng, 20 + a)
            pv, pm = clicks_views(rng, 20 + a)
            units[r][a] = (v, m, pv, pm)

    def agg(v, m, pv, pm):
        return dict(
            n=v.size,
            sum_v=v.sum(),
            sum_m=m.sum(),
            sum_vv=v @ v,
            sum_mm=m @ m,
            sum_vm=v @ m,
            pre_sum_v=pv.sum(),
            pre_sum_m=pm.sum(),
            pre_sum_vv=pv @ pv,
            pre_sum_mm=pm @ pm,
            pre_sum_vm=pv @ pm,
            sum_v_pre_v=v @ pv,
            sum_v_pre_m=v @ pm,
            sum_m_pre_v=m @ pv,
            sum_m_pre_m=m @ pm,
        )

    for f in fields:
        per[f] = np.array([[agg(*units[r][a])[f] for a in (0, 1)] for r in range(reps)], float)
    mt = RatioMoments.from_simulator(per, 1)
    for r in range(reps):
        v, m, pv, pm = units[r][1]
        ref = RatioMoments.from_arrays(v, m, np.column_stack([pv, pm]))
        for f in ("n", "sum_v", "sum_vm", "sum_x", "sum_xx", "sum_vx", "sum_mx"):
            _close(getattr(mt, f)[r], getattr(ref, f))


def test_pooling_moments_adds():
    vt, mt, vc, mc = _arms(13)
    pooled = RatioMoments.from_arrays(vt, mt) + RatioMoments.from_arrays(vc, mc)
    ref = RatioMoments.from_arrays(np.r_[vt, vc], np.r_[mt, mc])
    for f in ("n", "sum_v", "sum_m", "sum_vv", "sum_mm", "sum_vm"):
        _close(getattr(pooled, f), getattr(ref, f))


def test_nan_omit_drops_whole_units():
    vt, mt, vc, mc = _arms(14)
    vt2, mt2 = vt.copy(), mt.copy()
    vt2[3] = np.nan
    mt2[7] = np.nan
    keep = np.ones(vt.size, bool)
    keep[[3, 7]] = False
    a = ratio_test(vt2, mt2, vc, mc, nan_policy="omit")
    b = ratio_test(vt[keep], mt[keep], vc, mc)
    for f in FIELDS:
        _close(getattr(a, f), getattr(b, f))
    assert a.n_treatment == vt.size - 2


def test_result_object():
    vt, mt, vc, mc = _arms(15)
    res = ratio_test(vt, mt, vc, mc, relative=True, ci_method="log")
    assert isinstance(res, TestResult)
    assert all(isinstance(getattr(res, f), float) for f in FIELDS)
    with pytest.raises(AttributeError):
        res.estimate = 0.0
    d = res.to_dict()
    assert d["method"] == "ratio/log/relative/z" and d["estimate"] == res.estimate
    text = res.summary()
    assert "ratio/log/relative/z" in text and "95% CI" in text


# -------------------------------------------------------------- properties
@st.composite
def experiments(draw):
    seed = draw(st.integers(0, 2**32 - 1))
    n_t, n_c = draw(st.integers(5, 80)), draw(st.integers(5, 80))
    ctr_t, ctr_c = draw(st.floats(0.05, 0.9)), draw(st.floats(0.05, 0.9))
    rng = np.random.default_rng(seed)
    vt, mt = clicks_views(rng, n_t, ctr_t)
    vc, mc = clicks_views(rng, n_c, ctr_c)
    return vt, mt, vc, mc


def _usable(vt, mt, vc, mc):
    return vt.sum() > 0 and vc.sum() > 0 and ratio_variance(vt, mt) + ratio_variance(vc, mc) > 0


CI_METHODS = ("delta", "log", "fieller", "delta-bc")


@given(experiments(), st.floats(0.01, 1000.0), st.sampled_from(CI_METHODS))
def test_scale_invariance(exp, scale, ci_method):
    vt, mt, vc, mc = exp
    if not _usable(vt, mt, vc, mc):
        return
    a = ratio_test(vt, mt, vc, mc, relative=True, ci_method=ci_method)
    b = ratio_test(
        vt * scale, mt * scale, vc * scale, mc * scale, relative=True, ci_method=ci_method
    )
    for f in FIELDS:
        _close(getattr(b, f), getattr(a, f), rtol=1e-8)
    c, d = ratio_test(vt, mt, vc, mc), ratio_test(vt * scale, mt * scale, vc * scale, mc * scale)
    _close([d.estimate, d.std_error, d.pvalue], [c.estimate, c.std_error, c.pvalue], rtol=1e-8)


@given(experiments())
def test_arm_swap_flips_sign(exp):
    vt, mt, vc, mc = exp
    if not _usable(vt, mt, vc, mc):
        return
    a, b = ratio_test(vt, mt, vc, mc), ratio_test(vc, mc, vt, mt)
    _close(
        [b.estimate, b.statistic, b.ci_low, b.ci_high],
        [-a.estimate, -a.statistic, -a.ci_high, -a.ci_low],
        rtol=1e-9,
    )
    _close([b.std_error, b.pvalue], [a.std_error, a.pvalue], rtol=1e-9)
    # relative lifts: swapping maps 1 + l to 1 / (1 + l); the log CI maps exactly
    la = ratio_test(vt, mt, vc, mc, relative=True, ci_method="log")
    lb = ratio_test(vc, mc, vt, mt, relative=True, ci_method="log")
    _close(
        [1 + lb.estimate, 1 + lb.ci_low], [1 / (1 + la.estimate), 1 / (1 + la.ci_high)], rtol=1e-9
    )
    _close(lb.statistic, -la.statistic, rtol=1e-9)


@given(
    experiments(),
    st.sampled_from(CI_METHODS),
    st.sampled_from(("two-sided", "less", "greater")),
    st.sampled_from(("z", "t")),
)
def test_ci_contains_estimate(exp, ci_method, alternative, distribution):
    vt, mt, vc, mc = exp
    if not _usable(vt, mt, vc, mc):
        return
    for relative in (False, True):
        res = ratio_test(
            vt,
            mt,
            vc,
            mc,
            relative=relative,
            ci_method=ci_method if relative else "delta",
            alternative=alternative,
            distribution=distribution,
        )
        assert res.ci_contains(res.estimate)  # Fieller's set may be two rays
        assert 0.0 <= res.pvalue <= 1.0
        # the interval excludes "no effect" exactly when p < alpha (Wald, log and Fieller)
        if ci_method != "delta-bc" or not relative:
            excludes = not res.ci_contains(0.0)
            if abs(res.pvalue - 0.05) > 1e-9:
                assert excludes == (res.pvalue < 0.05)
