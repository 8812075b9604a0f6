"""Tests of validation.calibrate: protocol, battery verdicts, wrong estimators, bad output, CLI."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
from scipy import stats

import estimators
import sim
from validation.__main__ import main
from validation.calibrate import (
    SCENARIOS,
    CalibrationScenario,
    ProtocolError,
    calibrate,
    estimator_args,
    estimator_output,
    get_scenario,
    infer_kind,
    scenarios_for,
)
from validation.core import RunContext, get_check
from validation.runner import DEFAULT_SEED, strip_nondeterministic

# A heterogeneous-CTR scenario where the naive binomial s.e. is far too small (Deng 2018
# classes), small enough for the default tests: R = 600 replicates of 2 x 200 users.
DENG_SMALL = CalibrationScenario("deng-200", sim.Deng2018Classes(effect=0.05), (200, 200))
R_SMALL = 600


def _z(confidence: float = 0.95) -> float:
    return float(stats.norm.ppf(0.5 + confidence / 2))


def _result(est: float, se: float) -> dict[str, float]:
    z = _z()
    return {
        "estimate": est,
        "std_error": se,
        "ci_low": est - z * se,
        "ci_high": est + z * se,
        "pvalue": float(2 * stats.norm.sf(abs(est) / se)),
    }


# ----------------------------------------------------------------------------- wrong estimators
def naive_binomial(num_t, den_t, num_c, den_c):
    """Wrong: each view an independent Bernoulli trial, var(R) = R (1 - R) / sum M."""
    r_t, r_c = num_t.sum() / den_t.sum(), num_c.sum() / den_c.sum()
    se = math.sqrt(r_t * (1 - r_t) / den_t.sum() + r_c * (1 - r_c) / den_c.sum())
    return _result(r_t - r_c, se)


def summed_se(y_t, y_c):
    """Wrong: the arms' standard errors added instead of combined in quadrature."""
    se = y_t.std(ddof=1) / math.sqrt(y_t.size) + y_c.std(ddof=1) / math.sqrt(y_c.size)
    return _result(y_t.mean() - y_c.mean(), se)


_calls = {"n": 0}


def flaky(y_t, y_c):
    """Raises on every 7th call, returns NaN on every 11th, an array on every 13th."""
    _calls["n"] += 1
    k = _calls["n"]
    if k % 7 == 0:
        raise RuntimeError(f"boom on call {k}")
    res = estimators.mean_test(y_t, y_c)
    if k % 11 == 0:
        return {**res.to_dict(), "pvalue": float("nan")}
    if k % 13 == 0:
        return {**res.to_dict(), "estimate": np.array([res.estimate, res.estimate])}
    return res


# ----------------------------------------------------------------------------- protocol
def test_estimator_output_reads_results_and_mappings():
    res = estimators.mean_test([3.0, 5.0, 4.0], [1.0, 2.0, 3.0])
    out = estimator_output(res)
    assert out.estimate == pytest.approx(2.0)
    assert estimator_output(res.to_dict()) == out


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"pvalue": float("nan")}, "`pvalue` is NaN"),
        ({"estimate": np.zeros(3)}, r"`estimate` must be a scalar; got shape \(3,\)"),
        ({"std_error": -1.0}, "`std_error` must be >= 0"),
        ({"std_error": math.inf}, "`std_error` must be finite"),
        ({"pvalue": 1.5}, r"`pvalue` must be in \[0, 1\]"),
        ({"ci_low": 9.0}, "`ci_low` must be <= `ci_high`"),
        ({"estimate": "x"}, "`estimate` must be a real number"),
        ({"estimate": True}, "`estimate` must be a real number; got the bool"),
    ],
)
def test_estimator_output_rejects_protocol_violations(change, match):
    with pytest.raises(ProtocolError, match=match):
        estimator_output({**_result(1.0, 0.5), **change})


def test_estimator_output_names_a_missing_field():
    bad = _result(1.0, 0.5)
    del bad["std_error"]
    with pytest.raises(ProtocolError, match="without the key 'std_error'"):
        estimator_output(bad)
    with pytest.raises(ProtocolError, match="without the attribute `estimate`"):
        estimator_output(object())


def test_infer_kind_of_the_suites_estimators_and_plain_functions():
    assert infer_kind(estimators.ratio_test) == "ratio"
    assert infer_kind(estimators.mean_test) == "mean"
    assert infer_kind(estimators.cuped_test) == "covariate"
    assert infer_kind(estimators.ols_test) == "covariate"
    assert infer_kind(lambda a, b, c, d, *, relative=False: None) == "ratio"
    assert infer_kind(lambda a, b: None) == "mean"
    with pytest.raises(TypeError, match="cannot infer the kind"):
        infer_kind(lambda a: None)
    with pytest.raises(TypeError, match="`estimator` must be callable"):
        infer_kind(3)


def test_estimator_args_per_kind():
    data = sim.simulate_clicks(sim.Deng2018Classes(), (3, 4), rng=0)
    v_t, m_t, v_c, m_c = estimator_args("ratio", data)
    assert v_t.shape == (4,) and v_c.shape == (3,)
    assert np.array_equal(m_t, data.views[data.arm == 1])
    y, arm, x = estimator_args("covariate", data)
    assert x.shape == (7, 1) and arm.tolist() == data.arm.tolist()
    q = sim.simulate_queries(SCENARIOS["queries"].simulator, 6, rng=0)
    with pytest.raises(ValueError, match="`kind` 'ratio' needs a CTR scenario"):
        estimator_args("ratio", q)
    with pytest.raises(ValueError, match="`kind` must be one of"):
        estimator_args("median", data)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"n_replicates": 1}, ValueError, "`n_replicates` must be >= 2; got 1"),
        ({"n_replicates": 2.5}, TypeError, "`n_replicates` must be an int"),
        ({"alpha": 1.5}, ValueError, r"`alpha` must be in \(0, 1\); got 1.5"),
        ({"z": -1.0}, ValueError, "`z` must be a positive finite number"),
        ({"checks": ["aa", "fun"]}, ValueError, "`checks` must be a non-empty subset"),
        ({"scenario": "nope"}, ValueError, "`scenario` must be a CalibrationScenario or one of"),
        ({"scenario": []}, ValueError, "at least one scenario"),
        ({"scenario": 3}, TypeError, "`scenario` must be a name or a CalibrationScenario"),
        ({"kind": "median"}, ValueError, "`kind` must be one of"),
    ],
)
def test_calibrate_validates_its_arguments(kwargs, error, match):
    args = {"scenario": "small-n", "n_replicates": 10, **kwargs}
    with pytest.raises(error, match=match):
        calibrate(estimators.ratio_test, args.pop("scenario"), **args)


def test_scenario_validation_and_kinds():
    with pytest.raises(ValueError, match="cannot calibrate a 'ratio' estimator"):
        calibrate(estimators.ratio_test, "queries", n_replicates=10)
    with pytest.raises(ValueError, match="fixed `day_effects`"):
        CalibrationScenario("q", sim.QueryScenario(), (10, 10))
    with pytest.raises(ValueError, match="`n_users` must have >= 2 users per arm"):
        CalibrationScenario("q", sim.Deng2018Classes(), (1, 10))
    with pytest.raises(ValueError, match="`estimand` must be 'difference' or 'relative'"):
        CalibrationScenario("q", sim.Deng2018Classes(), (5, 5), estimand="ratio")
    with pytest.raises(TypeError, match="`simulator` must be"):
        CalibrationScenario("q", object(), (5, 5))
    assert "queries" not in [s.name for s in scenarios_for("ratio")]
    assert "relative-lift" not in [s.name for s in scenarios_for("mean")]


def test_truth_of_each_kind_and_estimand():
    heavy = SCENARIOS["relative-lift"]
    assert heavy.truth("ratio") == pytest.approx(heavy.simulator.truth().relative_lift)
    assert 0.28 < heavy.truth("ratio") < 0.3  # x 1.3, capped at CTR 1
    d = SCENARIOS["deng-classes"]
    t = d.simulator.truth()
    assert d.truth("ratio") == pytest.approx(t.difference)
    assert d.truth("mean") == pytest.approx(t.difference * t.mean_views)
    q = SCENARIOS["queries"]
    assert q.truth("mean") == pytest.approx(q.simulator.true_effect())


# ----------------------------------------------------------------------------- verdicts
@pytest.mark.slow
def test_own_estimators_pass_and_the_naive_binomial_fails_naming_the_check():
    good = calibrate(estimators.ratio_test, DENG_SMALL, n_replicates=R_SMALL, rng=3)
    assert good.ok, good.problems
    assert not good.failures
    bad = calibrate(naive_binomial, DENG_SMALL, n_replicates=R_SMALL, rng=3)
    assert not bad.ok
    failed = set(bad.failed_cells())
    assert {"deng-200/aa-calibration/false-positive-rate", "deng-200/coverage"} <= failed
    assert any("deng-200/aa-calibration/false-positive-rate" in p for p in bad.problems)
    fpr = bad.cells()["deng-200/aa-calibration/false-positive-rate"]
    assert fpr.figure > 0.05 + fpr.tolerance  # too many false positives, not too few


@pytest.mark.slow
def test_summed_standard_errors_fail_coverage_and_the_false_positive_rate():
    scen = CalibrationScenario("queries-100", SCENARIOS["queries"].simulator, (100, 100))
    good = calibrate(estimators.mean_test, scen, n_replicates=R_SMALL, rng=4)
    assert good.ok, good.problems
    bad = calibrate(summed_se, scen, n_replicates=R_SMALL, rng=4)
    cells = bad.cells()
    cov = cells["queries-100/coverage"]
    assert not cov.passed and cov.figure > 0.95 + cov.tolerance  # intervals too wide
    fpr = cells["queries-100/aa-calibration/false-positive-rate"]
    assert not fpr.passed and fpr.figure < 0.05 - fpr.tolerance
    assert any("'queries-100/coverage' failed" in p for p in bad.problems)


@pytest.mark.slow
def test_covariate_estimators_pass_on_the_query_scenario():
    scen = CalibrationScenario("queries-100", SCENARIOS["queries"].simulator, (100, 100))
    cal = calibrate(estimators.cuped_test, scen, n_replicates=400, rng=5, checks=["coverage"])
    assert cal.ok, cal.problems
    assert cal.kind == "covariate"


def test_bad_output_is_reported_per_replicate_and_the_run_goes_on():
    _calls["n"] = 0
    scen = CalibrationScenario("queries-50", SCENARIOS["queries"].simulator, (50, 50))
    cal = calibrate(flaky, [scen, "small-n"], n_replicates=60, rng=6, checks=["aa", "bias"])
    # 2 scenarios x 2 streams x 60 calls; every failing call is listed with its replicate
    reasons = [f.reason for f in cal.failures]
    assert any(r == "RuntimeError: boom on call 7" for r in reasons)
    assert any("`pvalue` is NaN" in r for r in reasons)
    assert any("`estimate` must be a scalar; got shape (2,)" in r for r in reasons)
    first = cal.failures[0]
    assert (first.scenario, first.stream, first.replicate) == ("queries-50", "A/A", 6)
    assert "A/A replicate 6: RuntimeError: boom on call 7" in str(first)
    expected = [k for k in range(1, 241) if k % 7 == 0 or k % 11 == 0 or k % 13 == 0]
    assert len(cal.failures) == len(expected)
    cells = cal.cells()
    errors = cells["queries-50/estimator-errors"]
    assert not errors.passed and errors.figure > 0
    assert "A/A replicate 6: RuntimeError" in errors.claim
    # the other cells were still computed from the valid replicates, and the run went
    # on to the second scenario
    fpr = cells["queries-50/aa-calibration/false-positive-rate"]
    assert 0 < fpr.n_replicates < 60 and math.isfinite(fpr.figure)
    assert "small-n/bias" in cells
    assert any("estimator-errors' failed" in p for p in cal.problems)


def test_an_estimator_that_always_raises_gives_a_failed_run_not_a_crash():
    def broken(y_t, y_c):
        raise ValueError("always")

    cal = calibrate(broken, "queries", n_replicates=5, rng=0, checks=["aa"])
    assert len(cal.failures) == 5 and not cal.ok
    assert math.isnan(cal.cells()["queries/aa-calibration/false-positive-rate"].figure)


@pytest.mark.slow
def test_same_seed_same_results_and_the_report_is_written(tmp_path):
    kw = dict(n_replicates=50, rng=11, checks=["aa", "power"])
    a = calibrate(estimators.mean_test, "small-n", **kw)
    b = calibrate(estimators.mean_test, "small-n", **kw)
    da, db = (strip_nondeterministic(x.run.to_dict()) for x in (a, b))
    assert json.dumps(da) == json.dumps(db)
    paths = a.write_report(tmp_path)
    doc = json.loads(paths.results_json.read_text())
    assert {"seed", "profile", "versions", "checks", "calibration"} <= set(doc)
    cell = doc["checks"][0]
    for key in ("name", "claim", "scenario", "figure", "expected", "tolerance", "passed"):
        assert key in cell
    assert cell["negative_control"]["failed_as_expected"] in (True, False)
    assert doc["calibration"]["estimator"] == "estimators.ratio:mean_test"
    assert paths.html.is_file() and paths.markdown.is_file()
    assert (tmp_path / "plots" / "small-n_aa-calibration.png").is_file()


def test_replicate_r_is_the_simulate_moments_replicate_r():
    # the seed rule that lets a scenario named like a built-in check see its data
    cal_ss = np.random.SeedSequence(DEFAULT_SEED, spawn_key=(__import__("zlib").crc32(b"x"),))
    assert RunContext("quick", DEFAULT_SEED).seed_sequence("x").spawn_key == cal_ss.spawn_key
    scen = SCENARIOS["small-n"]
    mom = sim.simulate_moments(scen.simulator, scen.n_users, 3, rng=cal_ss)
    from sim._seed import child_sequences

    data = scen.simulate(child_sequences(cal_ss, 3)[2])
    assert np.array_equal(data.moments()["sum_v"], mom.sum_v[2])


# ----------------------------------------------------------------------------- CLI
@pytest.mark.slow
def test_cli_calibrate_passes_our_estimator_and_fails_a_wrong_one(tmp_path, capsys):
    out = tmp_path / "good"
    argv = ["calibrate", "estimators:mean_test", "--scenario", "small-n", "--replicates", "300"]
    assert main([*argv, "--out", str(out), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "HOLDS  small-n/coverage" in text and "PASSED" in text
    assert (out / "results.json").is_file() and (out / "report.html").is_file()
    bad = ["calibrate", "test_calibrate:summed_se", "--scenario", "queries", "--replicates", "600"]
    assert main([*bad, "--out", str(tmp_path / "bad"), "--no-progress", "--check", "aa"]) == 1
    text = capsys.readouterr().out
    assert "FAIL   queries/aa-calibration/false-positive-rate" in text
    assert "fails as expected" in text and "FAILED" in text


def test_cli_calibrate_usage_errors(tmp_path, capsys):
    out = ["--out", str(tmp_path)]
    assert main(["calibrate", "estimators.mean_test", *out]) == 2
    assert "MODULE:FUNCTION" in capsys.readouterr().err
    assert main(["calibrate", "estimators:nope", *out]) == 2
    assert "AttributeError" in capsys.readouterr().err
    assert main(["calibrate", "estimators:ratio_test", "--scenario", "queries", *out]) == 2
    assert "cannot calibrate a 'ratio' estimator" in capsys.readouterr().err
    assert main(["calibrate", "estimators:mean_test", "--kwarg", "relative", *out]) == 2
    assert "KEY=LITERAL" in capsys.readouterr().err


# ----------------------------------------------------------------------------- built-in
@pytest.mark.slow
def test_same_verdicts_and_figures_as_the_builtin_aa_check():
    ctx = RunContext("quick", DEFAULT_SEED)
    builtin = {r.name.split("/")[-1]: r for r in get_check("aa-calibration").run(ctx)}
    r = builtin["false-positive-rate"].n_replicates
    scen = CalibrationScenario("aa-calibration", sim.Deng2018Classes(effect=0.03), (1000, 1000))
    cal = calibrate(estimators.ratio_test, scen, n_replicates=r, rng=DEFAULT_SEED, checks=["aa"])
    ours = {n.split("/")[-1]: c for n, c in cal.cells().items()}
    for key in ("false-positive-rate", "ks-uniformity"):
        assert ours[key].passed == builtin[key].passed
        assert ours[key].negative_control.failed_as_expected
        assert builtin[key].negative_control.failed_as_expected
        # same replicates: the figures agree up to p-values within rounding of alpha
        assert ours[key].figure == pytest.approx(builtin[key].figure, abs=2 / r)
    assert cal.ok


@pytest.mark.slow
def test_same_verdict_as_the_builtin_heavy_tailed_coverage_cell():
    from validation.ab_checks import HEAVY_SCENARIO

    ctx = RunContext("quick", DEFAULT_SEED)
    builtin = {r.name: r for r in get_check("delta-coverage").run(ctx)}
    cell = builtin["delta-coverage/heavy/n=2000/absolute"]
    scen = CalibrationScenario(
        "delta-coverage/heavy/2000", sim.BetaBinomialCtr(**HEAVY_SCENARIO), (2000, 2000)
    )
    cal = calibrate(
        estimators.ratio_test,
        scen,
        n_replicates=cell.n_replicates,
        rng=DEFAULT_SEED,
        checks=["coverage"],
    )
    ours = cal.cells()["delta-coverage/heavy/2000/coverage"]
    assert ours.passed == cell.passed is True
    assert ours.figure == pytest.approx(cell.figure, abs=1 / cell.n_replicates)


@pytest.mark.slow
def test_same_verdict_as_the_builtin_power_check():
    ctx = RunContext("quick", DEFAULT_SEED)
    builtin = {r.name: r for r in get_check("power-calibration").run(ctx)}
    cell = builtin["power-calibration/reference/normal"]
    n = (cell.extra["n_control"], cell.extra["n_treatment"])
    scen = CalibrationScenario("reference-normal", sim.ReferenceCtr(), n)
    cal = calibrate(
        estimators.ratio_test, scen, n_replicates=cell.n_replicates, rng=1, checks=["power"]
    )
    ours = cal.cells()["reference-normal/power"]
    assert ours.passed == cell.passed is True
    assert ours.expected == pytest.approx(cell.expected, abs=0.01)  # pilot sigma noise
    assert ours.negative_control.failed_as_expected


# ----------------------------------------------------------------------------- adapters
def test_adapters_import_their_library_lazily_with_a_clear_error():
    from validation.adapters import require

    with pytest.raises(ImportError, match=r"needs the 'nopkg' package.*pip install nopkg"):
        require("no_such_module_for_calibrate", "nopkg")


def test_statsmodels_cluster_ols_adapter_equals_the_delta_method():
    from validation.adapters import statsmodels_ols

    data = sim.simulate_clicks(sim.ReferenceCtr(), (60, 50), rng=2)  # every user has views
    args = estimator_args("ratio", data)
    ours = estimators.ratio_test(*args, ddof=0)
    theirs = statsmodels_ols.cluster_ols(*args, use_correction=False)
    assert theirs["estimate"] == pytest.approx(ours.estimate, rel=1e-10)
    assert theirs["std_error"] == pytest.approx(ours.std_error, rel=1e-8)
    y, arm, x = estimator_args("covariate", data)
    fit = statsmodels_ols.ols(y, arm, x)
    assert estimator_output(fit).estimate == pytest.approx(
        estimators.ols_test(y, arm, x).estimate, rel=1e-10
    )


def test_moments_at_size_keep_the_per_unit_variance():
    """_at_size rescales every sum, so the shipped delta variance is that of n units."""
    from estimators import RatioMoments, ratio_sigma
    from validation.calibrate_battery import _at_size

    g = np.random.default_rng(5)
    m = g.poisson(5.0, 4_000).astype(float) + 1.0
    v = g.binomial(m.astype(int), 0.1).astype(float)
    big = _at_size(RatioMoments.from_arrays(v, m), 250.0)
    assert float(big.n) == 250.0
    sigma0 = ratio_sigma(v, m, ddof=0)  # per-user s.d. of the linearised ratio
    assert float(big.ratio_variance(ddof=0)) == pytest.approx(sigma0**2 / 250.0, rel=1e-10)
    assert float(big.ratio()) == pytest.approx(v.sum() / m.sum(), rel=1e-12)


def test_power_cell_se_of_a_relative_lift_is_the_delta_method_of_the_lift():
    """Reference twin: var(R_T/R_C - 1) = var_T/R_C^2 + R_T^2 var_C/R_C^4 (theory §1)."""
    from estimators import ratio_sigma
    from validation.calibrate_battery import _PILOT_KEY, PILOT_USERS, _pilot_std_error

    scen = get_scenario("relative-lift")
    ss = np.random.SeedSequence(9)
    se, se_mc = _pilot_std_error("ratio", scen, ss)
    pilot = dataclasses.replace(scen, n_users=(PILOT_USERS, PILOT_USERS))
    data = pilot.simulate(np.random.SeedSequence(9, spawn_key=(_PILOT_KEY,)))
    v_t, m_t, v_c, m_c = estimator_args("ratio", data)
    (n_c, n_t), (c, t) = scen.n_users, (v_c.sum() / m_c.sum(), v_t.sum() / m_t.sum())
    var_c = ratio_sigma(v_c, m_c, ddof=0) ** 2 / n_c
    var_t = ratio_sigma(v_t, m_t, ddof=0) ** 2 / n_t
    twin = math.sqrt(var_t / c**2 + t**2 * var_c / c**4)
    assert se == pytest.approx(twin, rel=0.01) and 0 < se_mc < 0.05 * se
