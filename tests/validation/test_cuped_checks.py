"""Tests of the CUPED Monte Carlo checks (validation.cuped_checks)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from matplotlib.figure import Figure

import sim
from estimators import RatioMoments, cuped_test, ols_test
from sim._seed import child_sequences
from validation import cuped_checks as cc
from validation import cuped_data, cuped_query
from validation.core import _REGISTRY, BUILTIN_CHECK_MODULES, RunContext

CTX = RunContext("quick", seed=20130204)


# ----------------------------------------------------------------------------- data
def test_query_moments_replicate_equals_simulator_and_arrays():
    scen = sim.QueryScenario(day_effects=cc.CALIBRATION_DAY_EFFECTS)
    ss = np.random.SeedSequence(7)
    qm = cc.query_moments(scen, (40, 60), 3, ss, visitors=True, n_ols=2)
    ss_sim, ss_noise = child_sequences(ss, 2)
    r = 2
    data = sim.simulate_queries(scen, (40, 60), rng=child_sequences(ss_sim, 3)[r])
    x = cc._query_columns(data, np.random.default_rng(child_sequences(ss_noise, 3)[r]))
    y = data.queries.astype(float)
    for a in (0, 1):
        sel = data.arm == a
        assert qm.n[r, a] == sel.sum()
        assert qm.sum_y[r, a] == y[sel].sum()
        np.testing.assert_allclose(qm.sum_xx[r, a], x[sel].T @ x[sel], rtol=1e-12)
        np.testing.assert_allclose(qm.sum_yx[r, a], y[sel] @ x[sel], rtol=1e-12)
        vis = sel & (data.visit_days > 0)
        assert qm.visitors.n[r, a] == vis.sum()
    assert qm.truth[r] == data.true_effect_given_days
    assert qm.ols.shape == (2, 2)
    # the dummies of the 8 levels sum to one for every user
    assert np.all(x[:, cuped_data._COL_DUMMY0 :].sum(1) == 1.0)


def test_moments_path_equals_per_user_cuped_and_ols():
    scen = sim.QueryScenario()
    ss = np.random.SeedSequence(8)
    qm = cc.query_moments(scen, (300, 300), 2, ss, n_ols=2)
    cols = cc._DESIGNS["drop-one"]
    vec = cuped_test_from_moments_safe(qm.arm(1, cols), qm.arm(0, cols), theta="within")
    np.testing.assert_allclose(np.asarray(vec.estimate), qm.ols[:, 0], rtol=1e-10)
    # one replicate per user: CUPED on the arrays equals the moments path
    ss_sim, ss_noise = child_sequences(ss, 2)
    data = sim.simulate_queries(scen, (300, 300), rng=child_sequences(ss_sim, 2)[0])
    x = cc._query_columns(data, np.random.default_rng(child_sequences(ss_noise, 2)[0]))
    res = cuped_test(data.queries, data.arm, x[:, cols])
    pooled = cuped_test_from_moments_safe(qm.arm(1, cols), qm.arm(0, cols))
    assert np.asarray(pooled.estimate)[0] == pytest.approx(res.estimate, rel=1e-10)
    assert np.asarray(pooled.std_error)[0] == pytest.approx(res.std_error, rel=1e-10)
    ols = ols_test(data.queries.astype(float), data.arm, x[:, cols])
    assert ols.estimate == pytest.approx(qm.ols[0, 0], rel=1e-12)


def cuped_test_from_moments_safe(mt, mc, **kw):
    res, n_rank = cc._cuped(mt, mc, **kw)
    assert n_rank == 0
    return res


@pytest.mark.parametrize("design", ["pre", "many", "singular"])
def test_pooled_estimate_is_ols_shrunk_by_one_plus_q(design):
    qm = cc.query_moments(sim.QueryScenario(), (200, 300), 5, np.random.SeedSequence(9))
    cols = cc._DESIGNS[design]
    mt, mc = qm.arm(1, cols), qm.arm(0, cols)
    pooled, n_rank = cc._cuped(mt, mc)
    within, _ = cc._cuped(mt, mc, theta="within")
    assert n_rank == (1 if design == "singular" else 0)
    q = cc.shrinkage_q(mt, mc)
    assert np.all(q > 0)
    np.testing.assert_allclose(
        np.asarray(pooled.estimate) * (1 + q), np.asarray(within.estimate), rtol=1e-10
    )


def test_shrinkage_identity_holds_for_ratio_metric_and_ratio_covariate():
    mom = sim.simulate_moments(sim.Deng2018Classes(effect=0.05), (150, 250), 6, rng=3)
    mt, mc = RatioMoments.from_simulator(mom, 1), RatioMoments.from_simulator(mom, 0)
    pooled, _ = cc._cuped(mt, mc, covariate_ratios=[(0, 1)])
    within, _ = cc._cuped(mt, mc, covariate_ratios=[(0, 1)], theta="within")
    q = cc.shrinkage_q(mt, mc, ((0, 1),))
    np.testing.assert_allclose(
        np.asarray(pooled.estimate) * (1 + q), np.asarray(within.estimate), rtol=1e-10
    )


def test_adjusted_arm_vars_match_estimators_std_error():
    qm = cc.query_moments(sim.QueryScenario(), (100, 150), 4, np.random.SeedSequence(10))
    cols = cc._DESIGNS["many"]
    mt, mc = qm.arm(1, cols), qm.arm(0, cols)
    res, _ = cc._cuped(mt, mc)
    v_t, v_c = cc._adjusted_arm_vars(mt, mc, np.asarray(res.theta))
    np.testing.assert_allclose(np.sqrt(v_t + v_c), np.asarray(res.std_error), rtol=1e-10)


def test_pilot_variance_ratio_recovers_known_r2():
    g = np.random.default_rng(11)
    n = 200_000
    ys, xs = [], []
    for shift in (0.0, 1.0):  # a constant treatment shift leaves the covariances alone
        x = g.normal(size=(n, 2))
        ys.append(shift + x @ np.array([0.6, 0.0]) + 0.8 * g.normal(size=n))  # R^2 = 0.36
        xs.append(x)
    ratio, se, r2 = cc.pilot_variance_ratio(tuple(ys), tuple(xs), (1000, 1000))
    assert abs(ratio - 0.64) <= 4 * se
    assert r2 == pytest.approx(0.36, abs=0.01)
    assert 0 < se < 0.005


def test_se_ratio_consistency_band():
    g = np.random.default_rng(12)
    a, b = 0.7 * g.normal(size=20_000), g.normal(size=20_000)
    fig, expected, tol = cuped_query._se_ratio_consistency(np.full(20_000, 0.7), a, b, 4.0)
    assert abs(fig - expected) <= tol
    fig_bad, expected_bad, _ = cuped_query._se_ratio_consistency(np.full(20_000, 0.8), a, b, 4.0)
    assert abs(fig_bad - expected_bad) > tol


# ----------------------------------------------------------------------------- checks
@pytest.fixture(scope="module")
def calibration():
    return cc.check_cuped_calibration(CTX)


@pytest.fixture(scope="module")
def query():
    return cc.check_cuped_query(CTX)


@pytest.mark.slow
def test_calibration_quick_profile_holds_and_controls_fail(calibration):
    names = [r.name for r in calibration]
    assert len(names) == 3 * len(cc.CALIBRATION_CELLS)
    for r in calibration:
        assert r.passed, (r.name, r.figure, r.expected, r.tolerance)
        assert r.negative_control is not None
        assert r.negative_control.failed_as_expected, (r.name, r.negative_control)
        assert math.isfinite(r.figure) and r.tolerance > 0
        r.to_dict()  # JSON-serialisable
    cov = [r for r in calibration if r.extra["kind"] == "coverage"]
    for r in cov:
        assert r.tolerance == pytest.approx(CTX.z * math.sqrt(0.95 * 0.05 / r.n_replicates))
    for r in calibration:
        if r.extra["kind"] == "bias":
            assert r.extra["ols_unbiased"], r.name
    assert isinstance(cc.plot_calibration(calibration), Figure)


@pytest.mark.slow
def test_singular_dummies_warn_and_equal_the_drop_one_design(calibration):
    sing = [r for r in calibration if r.extra["cell"] == "singular-dummies"]
    for r in sing:
        assert r.extra["rank_deficient_warnings"] == 1
        assert r.extra["max_abs_diff_vs_drop_one_level"] < 1e-9
        assert r.extra["max_abs_diff_se_vs_drop_one_level"] < 1e-9


@pytest.mark.slow
def test_query_quick_profile_holds_and_controls_fail(query):
    assert [r.name for r in query] == [
        "cuped-query/se-ratio",
        "cuped-query/coverage",
        "cuped-query/bias",
        "cuped-query/cuped-vs-ols",
    ]
    for r in query:
        assert r.passed, (r.name, r.figure, r.expected, r.tolerance)
        assert r.negative_control.failed_as_expected, (r.name, r.negative_control)
        r.to_dict()
    dist = query[0].extra["distribution"]
    assert set(dist) == {
        "never-visited as its own level",
        "never-visited lumped into day 0 (argmax coding)",
        "visitors only",
    }
    assert query[3].extra["statsmodels_max_dev_over_se"] < 1e-9
    assert isinstance(cc.plot_query(query), Figure)


@pytest.mark.slow
def test_too_narrow_cuped_interval_is_caught(monkeypatch):
    real = cc._cuped

    class Scaled:
        def __init__(self, res):
            self._res = res

        def __getattr__(self, name):
            value = getattr(self._res, name)
            return np.asarray(value) * 0.8 if name == "std_error" else value

    def narrow(mt, mc, **kw):
        res, n = real(mt, mc, **kw)
        return Scaled(res), n

    monkeypatch.setattr(cc, "_cuped", narrow)
    res = cc.calibration_results(CTX, n_replicates=1_000)
    cov = [r for r in res if r.extra["kind"] == "coverage"]
    assert cov and not any(r.passed for r in cov)


def test_checks_are_registered():
    assert "validation.cuped_checks" in BUILTIN_CHECK_MODULES
    # importing the module registered them (get_check would import every module, torch too)
    for name in ("cuped-calibration", "cuped-query"):
        chk = _REGISTRY[name]
        assert chk.group == "cuped" and chk.plot is not None and not chk.exact
