"""Tests of the A/B Monte Carlo checks (validation.ab_checks) and their MC helpers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from matplotlib.figure import Figure
from scipy import stats

from validation import ab_checks, ab_coverage, ab_mc, ab_samples
from validation.core import RunContext, get_check
from validation.mc import two_sided_tail

CTX = RunContext("quick", seed=20180819)


# ----------------------------------------------------------------------------- helpers
def test_coverage_band_uses_claimed_proportion():
    b = ab_mc.coverage(np.r_[np.ones(900, bool), np.zeros(100, bool)], expected=0.95, z=4.0)
    assert b.figure == pytest.approx(0.9)
    assert b.tolerance == pytest.approx(4.0 * math.sqrt(0.95 * 0.05 / 1000))


def test_rejection_rate_and_errors():
    p = np.r_[np.full(5, 0.01), np.full(95, 0.5)]
    b = ab_mc.rejection_rate(p, alpha=0.05)
    assert b.figure == pytest.approx(0.05)
    with pytest.raises(ValueError, match="`pvalues` must not contain NaN"):
        ab_mc.rejection_rate(np.array([0.1, np.nan]))
    with pytest.raises(ValueError, match="`covered` must be a non-empty 1-d array"):
        ab_mc.coverage(np.zeros((2, 2), bool))


def test_ks_critical_value_has_stated_false_failure_rate():
    b = ab_mc.ks_uniformity(np.random.default_rng(0).random(500), z=4.0)
    assert stats.kstwo.sf(b.tolerance, 500) == pytest.approx(two_sided_tail(4.0), rel=1e-3)
    assert b.figure <= b.tolerance
    skewed = np.random.default_rng(1).random(500) ** 2  # p-values piling up near 0
    bad = ab_mc.ks_uniformity(skewed, z=4.0)
    assert bad.figure > bad.tolerance
    with pytest.raises(ValueError, match=r"`pvalues` must lie in \[0, 1\]"):
        ab_mc.ks_uniformity(np.array([0.5, 1.5]))


def test_variance_and_sd_ratio_bands_cover_known_values():
    g = np.random.default_rng(2)
    x = g.normal(size=20_000)
    y = 0.6 * x + 0.8 * g.normal(size=20_000)  # var(y) = 1
    vr = ab_mc.variance_ratio(0.5 * y, y)
    assert vr.figure == pytest.approx(0.25, rel=1e-12)  # exact for a rescaled copy
    sr = ab_mc.sd_ratio(x, np.full(x.size, 1.0))
    assert abs(sr.figure - 1.0) <= sr.tolerance
    sr_bad = ab_mc.sd_ratio(x, np.full(x.size, 0.9))
    assert abs(sr_bad.figure - 1.0) > sr_bad.tolerance
    with pytest.raises(ValueError, match="same length"):
        ab_mc.variance_ratio(x[:3], x[:4])


def test_exact_t_coverage_matches_scipy():
    assert ab_coverage._exact_t_coverage(20) == pytest.approx(
        stats.t.cdf(1.959963984540054, 38) - stats.t.cdf(-1.959963984540054, 38)
    )


def test_coverage_moments_rejects_unknown_distribution():
    with pytest.raises(ValueError, match="`dist` must be one of"):
        ab_checks.coverage_moments("cauchy", 20, 10, np.random.SeedSequence(0))


def test_mean_metric_sums_are_exact_in_distribution():
    ss = np.random.SeedSequence(3)
    sy, syy = ab_samples._mean_metric_sums("normal", 10.0, 20, 4000, ss)
    s2 = (syy - sy**2 / 20) / 19
    # sample variance of N(10, 5^2) data: mean 25, chi2 with 19 df scaled
    assert abs(s2.mean() - 25.0) <= 4 * 25.0 * math.sqrt(2 / 19) / math.sqrt(4000)
    assert abs(sy.mean() / 20 - 10.0) <= 4 * 5 / math.sqrt(20 * 4000)


# ----------------------------------------------------------------------------- checks
@pytest.fixture(scope="module")
def coverage_results():
    return ab_checks.check_delta_coverage(CTX)


@pytest.mark.slow
def test_light_tailed_fieller_cells_claim_the_exact_z_coverage(coverage_results):
    """Fieller uses z: at n = 20 and 50 its reference is P(|t_2n-2| < 1.96), not 0.95."""
    cells = [
        r for r in coverage_results if r.extra["kind"] == "fieller" and r.extra["dist"] != "heavy"
    ]
    assert len(cells) == 6
    for r in cells:
        assert r.expected == pytest.approx(ab_coverage._exact_t_coverage(r.extra["n_per_arm"]))
        assert r.expected < 0.95


@pytest.mark.slow
def test_delta_coverage_quick_profile_holds(coverage_results):
    kinds = {r.extra["kind"] for r in coverage_results}
    assert kinds == {"calibrated", "exact", "under", "fieller", "bias", "separation"}
    bad = [(r.name, r.figure, r.expected, r.tolerance) for r in coverage_results if not r.passed]
    assert not bad
    for r in coverage_results:
        assert r.negative_control is not None
        assert r.negative_control.failed_as_expected, r.name
        if r.extra["kind"] in ("bias", "separation"):
            continue
        assert r.tolerance == pytest.approx(
            CTX.z * math.sqrt(r.expected * (1 - r.expected) / r.n_replicates)
        )
    heavy20 = {
        r.extra["method"]: r
        for r in coverage_results
        if "heavy/n=20/" in r.name and "method" in r.extra
    }
    assert heavy20["delta"].state == "breaks as stated" and heavy20["delta"].n_undefined > 0
    assert 0.0 < heavy20["fieller"].extra["unbounded_share"] < 1.0
    # heavy n = 50: Fieller misses 0.95 but beats delta on the same replicates (paired)
    (f50,) = [r for r in coverage_results if r.name == "delta-coverage/heavy/n=50/fieller"]
    assert f50.rule == "above" and f50.figure > f50.tolerance > 0
    assert f50.extra["coverage"] < 0.95 and f50.negative_control.figure < 0
    assert len(coverage_results[0].extra["table"]) == 4 * 4 * 5
    assert isinstance(ab_checks.plot_coverage(coverage_results), Figure)


@pytest.mark.slow
def test_delta_coverage_fails_for_a_too_narrow_interval(monkeypatch):
    real = ab_coverage._interval

    def narrow(sample, method):
        lo, hi = real(sample, method)
        if method == "fieller":  # may be unbounded; the test looks at the absolute CI
            return lo, hi
        mid, half = (lo + hi) / 2, (hi - lo) / 2
        return mid - 0.8 * half, mid + 0.8 * half  # z 1.57 instead of 1.96

    monkeypatch.setattr(ab_coverage, "_interval", narrow)
    cells, _ = ab_checks.coverage_table(CTX, n_replicates=1000)
    c = next(
        c for c in cells if c.dist == "poisson" and c.n_per_arm == 2000 and c.method == "absolute"
    )
    assert 0.95 - c.coverage > 4 * math.sqrt(0.95 * 0.05 / 1000)


def test_deng2018_table2_quick_profile():
    r = ab_checks.check_deng2018_table2(CTX)
    assert r.passed and r.negative_control.failed_as_expected
    # population delta s.e. of one 1,000-user CTR (exact moments): 0.00907
    assert r.extra["mean_delta_se"] == pytest.approx(0.00907, rel=0.02)
    assert r.extra["mean_naive_se"] == pytest.approx(0.00522, rel=0.02)
    assert isinstance(ab_checks.plot_table2([r]), Figure)


@pytest.mark.slow
def test_aa_quick_profile():
    res = ab_checks.check_aa(CTX)
    assert [r.name for r in res] == [
        "aa-calibration/false-positive-rate",
        "aa-calibration/ks-uniformity",
    ]
    for r in res:
        assert r.passed and r.negative_control.failed_as_expected, r.name
    assert isinstance(ab_checks.plot_aa(res), Figure)


def test_checks_are_registered():
    for name in ("delta-coverage", "deng2018-table2", "aa-calibration"):
        chk = get_check(name)
        assert chk.group == "ab" and chk.plot is not None and not chk.exact


@pytest.mark.slow
def test_power_quick_profile():
    from validation import power_checks

    res = power_checks.check_power(CTX)
    assert len(res) == len(power_checks.POWER_CELLS)
    for r in res:
        assert r.passed and r.negative_control.failed_as_expected, r.name
    assert isinstance(power_checks.plot_power(res), Figure)
    assert get_check("power-calibration").group == "power"


def test_power_pilot_sigma_from_moments_equals_ratio_sigma():
    """The identity scenario_sigma relies on: for equal arms of n users the delta s.e. of
    the difference is sqrt(2 sigma^2 / n), sigma^2 the mean of the arms' ratio_sigma^2."""
    import numpy as np

    import sim
    from estimators import ratio_sigma, ratio_test

    n = 400
    data = sim.simulate_clicks(sim.BetaBinomialCtr(views="lognormal"), (n, n), rng=4)
    arms = []
    for arm in (1, 0):
        sel = data.arm == arm
        arms.append((data.clicks[sel].astype(float), data.views[sel].astype(float)))
    se = ratio_test(*arms[0], *arms[1], ddof=1).std_error
    pooled = np.sqrt(np.mean([ratio_sigma(v, m) ** 2 for v, m in arms]))
    assert np.isclose(se * np.sqrt(n / 2.0), pooled, rtol=1e-10)


def test_separation_cell_control_is_a_wrong_log_interval_that_fails_the_claim():
    """The log-minus-delta control is a realistic slip (var(R)/R for var(log R)), not 0."""
    sample = ab_samples.coverage_moments("heavy", 20, 2_000, np.random.SeedSequence(11))
    res = ab_coverage._separation_cell(CTX, sample, 20)
    assert res.passed and res.rule == "above"
    ctrl = res.negative_control
    assert ctrl.failed_as_expected and ctrl.figure < -res.tolerance
    lo, hi = ab_coverage._log_interval_unsquared(sample)
    lo_ok, hi_ok = ab_coverage._interval(sample, "log")
    assert np.nanmean(hi - lo) < 0.6 * np.nanmean(hi_ok - lo_ok)  # far too narrow
