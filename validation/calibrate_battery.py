"""The calibration battery of :func:`validation.calibrate`: streams, cells, controls.

One *stream* is ``n_replicates`` simulated experiments (A/A or under the effect) on
which the estimator is called, replicate ``r`` seeded by child ``r`` of the scenario's
seed and run through :func:`validation.mc.run_blocks`; the cells (A/A rate and KS,
coverage, bias, power, estimator errors) and their negative controls are built from
the streams (docs/calibrate.md, docs/theory.md §5).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import stats

from estimators.moments import RatioMoments
from validation.ab_mc import (
    coverage,
    ks_uniformity,
    mean_band,
    pvalue_qq_figure,
    pvalue_quantiles,
    rejection_rate,
)
from validation.calibrate_protocol import _FIELDS, ProtocolError, estimator_args, estimator_output
from validation.calibrate_scenarios import CalibrationScenario
from validation.core import Check, CheckResult, NegativeControl
from validation.mc import PILOT_BATCHES, pilot_sigma, run_blocks
from validation.shipped import Shipped

cuped_theta = Shipped("estimators.cuped", "cuped_theta")
ratio_test_from_moments = Shipped("estimators.ratio", "ratio_test_from_moments")
formula_power = Shipped("estimators.power", "power")

#: Negative control: the estimator's standard errors multiplied by this factor.
CONTROL_SE_FACTOR: float = 0.7
#: Negative control of the bias cell: the estimate shifted by this many replicate s.d.
CONTROL_BIAS_SDS: float = 0.5
#: Users per arm of the pilot that gives the power formula its sigma.
PILOT_USERS: int = 100_000
_PILOT_KEY = 2**32 - 1  # spawn-key entry of the pilot (replicates use 0 .. R-1)
_MAX_LISTED_FAILURES = 5


@dataclass(frozen=True, slots=True)
class ReplicateFailure:
    """One replicate on which the estimator raised or broke the protocol.

    Attributes
    ----------
    scenario : str
        Calibration scenario.
    stream : {"A/A", "effect"}
        Which simulated experiments.
    replicate : int
        Replicate index (its data: child ``replicate`` of the scenario's seed).
    reason : str
        ``"ExceptionType: message"`` or the protocol violation.
    """

    scenario: str
    stream: str
    replicate: int
    reason: str

    def __str__(self) -> str:
        return f"{self.scenario}: {self.stream} replicate {self.replicate}: {self.reason}"


@dataclass(frozen=True, slots=True)
class _Stream:
    """Outputs of one stream: (R, 5) array (NaN rows where the call failed)."""

    values: npt.NDArray[np.float64]
    ok: npt.NDArray[np.bool_]
    failures: tuple[ReplicateFailure, ...]
    warnings: tuple[str, ...]
    elapsed_s: float

    def column(self, name: str) -> npt.NDArray[np.float64]:
        return self.values[self.ok, _FIELDS.index(name)]


def _stream_replicate(
    start: int,
    stop: int,
    child: np.random.SeedSequence,
    call: Callable[..., Any],
    kind: str,
    scenario: CalibrationScenario,
    aa: bool,
) -> tuple[list[float] | None, str | None, tuple[str, ...]]:
    """Replicate ``start`` of one stream (a block of one): (output fields, failure, warnings).

    The block function of :func:`_run_stream` for :func:`validation.mc.run_blocks` with
    blocks of one replicate, so replicate r is simulated from child r of the scenario's
    seed (the data of replicate r of :func:`sim.simulate_moments` with that seed).
    Module level, so that process and cluster backends can ship it.
    """
    args = estimator_args(kind, scenario.simulate(child, aa=aa))
    reason: str | None = None
    row: list[float] | None = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            res = estimator_output(call(*args))
            row = [getattr(res, f) for f in _FIELDS]
        except Exception as exc:  # noqa: BLE001 - recorded per replicate, the run goes on
            text = str(exc).strip().splitlines()
            first = text[0] if text else ""
            reason = first if isinstance(exc, ProtocolError) else f"{type(exc).__name__}: {first}"
    return row, reason, tuple(f"{w.category.__name__}: {w.message}" for w in caught)


def _run_stream(
    call: Callable[..., Any],
    kind: str,
    scenario: CalibrationScenario,
    ss: np.random.SeedSequence,
    n_replicates: int,
    *,
    aa: bool,
    tick: Callable[[], None],
) -> _Stream:
    stream = "A/A" if aa else "effect"
    values = np.full((n_replicates, len(_FIELDS)), np.nan)
    ok = np.zeros(n_replicates, dtype=bool)
    failures: list[ReplicateFailure] = []
    seen: dict[str, None] = {}
    t0 = time.perf_counter()
    # Blocks run on the backend of an enclosing sim.use_backend (processes or a cluster);
    # otherwise in this thread, one by one: catch_warnings is not thread-safe, and an
    # estimator need not be.
    one = functools.partial(_stream_replicate, call=call, kind=kind, scenario=scenario, aa=aa)
    results = run_blocks(one, n_replicates, ss, 1, progress=lambda k: [tick() for _ in range(k)])
    for r, (row, reason, caught) in enumerate(results):
        if reason is not None:
            failures.append(ReplicateFailure(scenario.name, stream, r, reason))
        for w in caught:
            seen.setdefault(w, None)
        if row is not None:
            values[r] = row
            ok[r] = True
    return _Stream(values, ok, tuple(failures), tuple(seen), time.perf_counter() - t0)


#: Name of the negative control of the A/A, coverage and power cells.
CONTROL_NAME = f"estimate with s.e. = {CONTROL_SE_FACTOR:g} x its replicate s.d."


def _control_se(est: np.ndarray) -> float:
    """Return the control's s.e.: CONTROL_SE_FACTOR times the estimates' replicate s.d.

    It is anchored to the true sampling s.d. of the estimator (not to its own s.e.), so
    the control is too narrow by the same factor whatever the estimator returns.
    """
    return CONTROL_SE_FACTOR * float(np.std(est, ddof=1))


def _control_pvalues(est: np.ndarray) -> np.ndarray:
    """Two-sided normal p-values of "no effect" with the control's standard error."""
    se = _control_se(est)
    if not se > 0:
        return np.ones_like(est)
    return 2.0 * stats.norm.sf(np.abs(est) / se)


def _missing(name: str, claim: str, scenario: dict[str, Any], seed: int) -> CheckResult:
    """Return a cell with too few valid replicates to compute its figure (fails the suite)."""
    return CheckResult(
        name=name,
        claim=claim + " (not computed: fewer than 2 valid replicates)",
        scenario=scenario,
        figure=math.nan,
        expected=math.nan,
        tolerance=math.nan,
        n_replicates=0,
        seed=seed,
        negative_control=NegativeControl("(not computed: too few valid replicates)", math.nan),
    )


def _aa_cells(prefix, st: _Stream, alpha, z, scenario, seed) -> list[CheckResult]:
    fpr_claim = f"share of A/A p-values < {alpha:g} = {alpha:g} ± z s.e."
    ks_claim = (
        "KS distance of the A/A p-values from Uniform(0, 1) <= exact critical value at "
        "the false-failure rate of z normal s.e."
    )
    if st.ok.sum() < 2:
        return [
            _missing(f"{prefix}/false-positive-rate", fpr_claim, scenario, seed),
            _missing(f"{prefix}/ks-uniformity", ks_claim, scenario, seed),
        ]
    p = st.column("pvalue")
    pc = _control_pvalues(st.column("estimate"))
    ctrl_name = CONTROL_NAME
    fpr, fpr_c = rejection_rate(p, alpha=alpha, z=z), rejection_rate(pc, alpha=alpha, z=z)
    ks, ks_c = ks_uniformity(p, z=z), ks_uniformity(pc, z=z)
    extra = pvalue_quantiles({"estimator": p, "control": pc})
    return [
        CheckResult(
            name=f"{prefix}/false-positive-rate",
            claim=fpr_claim,
            scenario=scenario,
            figure=fpr.figure,
            expected=alpha,
            tolerance=fpr.tolerance,
            n_replicates=fpr.n_replicates,
            seed=seed,
            negative_control=NegativeControl(ctrl_name, fpr_c.figure),
            extra=extra,
        ),
        CheckResult(
            name=f"{prefix}/ks-uniformity",
            claim=ks_claim,
            scenario=scenario,
            figure=ks.figure,
            expected=0.0,
            tolerance=ks.tolerance,
            rule="at_most",
            n_replicates=ks.n_replicates,
            seed=seed,
            negative_control=NegativeControl(ctrl_name, ks_c.figure),
        ),
    ]


def _coverage_cell(name, st: _Stream, truth, alpha, z, scenario, seed) -> CheckResult:
    level = 1.0 - alpha
    claim = f"share of {level:g} intervals covering the truth {truth:.6g} = {level:g} ± z s.e."
    if st.ok.sum() < 2:
        return _missing(name, claim, scenario, seed)
    est, lo, hi = st.column("estimate"), st.column("ci_low"), st.column("ci_high")
    band = coverage((lo <= truth) & (truth <= hi), expected=level, z=z)
    half = float(stats.norm.ppf(1.0 - alpha / 2)) * _control_se(est)
    ctrl = coverage((est - half <= truth) & (truth <= est + half), expected=level, z=z)
    return CheckResult(
        name=name,
        claim=claim,
        scenario=scenario,
        figure=band.figure,
        expected=level,
        tolerance=band.tolerance,
        n_replicates=band.n_replicates,
        seed=seed,
        negative_control=NegativeControl(
            CONTROL_NAME,
            ctrl.figure,
        ),
        extra={"truth": truth, "mean_width": float(np.mean(hi - lo))},
    )


def _bias_cell(name, st: _Stream, truth, z, scenario, seed) -> CheckResult:
    claim = f"mean(estimate - truth {truth:.6g}) = 0 ± z Monte Carlo s.e."
    if st.ok.sum() < 2:
        return _missing(name, claim, scenario, seed)
    err = st.column("estimate") - truth
    band = mean_band(err, z=z)
    sd = float(np.std(err, ddof=1))
    shifted = band.figure + CONTROL_BIAS_SDS * sd
    return CheckResult(
        name=name,
        claim=claim,
        scenario=scenario,
        figure=band.figure,
        expected=0.0,
        tolerance=band.tolerance,
        n_replicates=band.n_replicates,
        seed=seed,
        negative_control=NegativeControl(
            f"same estimate + {CONTROL_BIAS_SDS:g} replicate s.d.",
            shifted,
        ),
        extra={
            "truth": truth,
            "sd_estimate": sd,
            "mean_std_error": float(np.mean(st.column("std_error"))),
            "bias_over_sd": band.figure / sd if sd > 0 else math.nan,
        },
    )


def _pilot_moments(kind: str, data: Any, batch: int) -> tuple[Any, Any]:
    """(control, treatment) moments of the compared metric on pilot batch ``batch``.

    The ratio V/M for ``"ratio"``; Y for ``"mean"``; the CUPED-adjusted
    ``Y - theta (X - Xbar)`` (theta of :func:`estimators.cuped_theta` on the whole
    pilot) for ``"covariate"``. Batch b keeps every :data:`PILOT_BATCHES`-th unit.
    """
    sl = slice(batch, None, PILOT_BATCHES)
    if kind == "ratio":
        v_t, m_t, v_c, m_c = estimator_args("ratio", data)
        return (
            RatioMoments.from_arrays(v_c[sl], m_c[sl]),
            RatioMoments.from_arrays(v_t[sl], m_t[sl]),
        )
    y, arm, x = estimator_args("covariate", data)
    if kind == "covariate":
        y = y - cuped_theta(y, x[:, 0]) * (x[:, 0] - x[:, 0].mean())
    return RatioMoments.from_arrays(y[arm == 0][sl]), RatioMoments.from_arrays(y[arm == 1][sl])


def _at_size(m: Any, n: float) -> Any:
    """Return the same per-unit moments (means, ddof-0 covariances, third moments) at ``n`` units.

    Every sum is multiplied by ``n / m.n`` (the shifts stay), so the means and the
    centred moments per unit are unchanged and the shipped delta-method variance
    (:meth:`estimators.RatioMoments.ratio_variance`, ddof 0) is that of an ``n``-unit arm.
    """
    f = float(n) / float(np.asarray(m.n))
    fields = [f.name for f in dataclasses.fields(m) if f.name == "n" or f.name.startswith("sum_")]
    return dataclasses.replace(
        m, **{k: getattr(m, k) * f for k in fields if getattr(m, k) is not None}
    )


def _pilot_std_error(
    kind: str, scenario: CalibrationScenario, ss: np.random.SeedSequence
) -> tuple[float, float]:
    """s.e. of the scenario's test statistic at its n, and its Monte Carlo s.e., from a pilot.

    Each of :data:`PILOT_BATCHES` batches of a :data:`PILOT_USERS`-per-arm pilot gives its
    arms' moments, set to the scenario's arm sizes (:func:`_at_size`); the shipped
    :func:`estimators.ratio_test_from_moments` (delta method, ``relative`` for a lift)
    returns the s.e. of the difference or of the lift at that size. The batches are
    pooled by :func:`validation.mc.pilot_sigma` (root mean square, batch-means s.e.).
    """
    pilot = dataclasses.replace(scenario, n_users=(PILOT_USERS, PILOT_USERS))
    data = pilot.simulate(np.random.SeedSequence(ss.entropy, spawn_key=(*ss.spawn_key, _PILOT_KEY)))
    n_c, n_t = scenario.n_users
    ses = []
    for b in range(PILOT_BATCHES):
        m_c, m_t = _pilot_moments(kind, data, b)
        res = ratio_test_from_moments(
            _at_size(m_t, n_t), _at_size(m_c, n_c), relative=scenario.estimand == "relative", ddof=0
        )
        ses.append(float(res.std_error))
    return pilot_sigma(ses)


def _normal_power(scenario: CalibrationScenario, kind: str, se: float, alpha: float) -> float:
    """:func:`estimators.power` of the scenario's effect when its test has s.e. ``se``."""
    n_c, n_t = scenario.n_users
    sigma = se / math.sqrt(1.0 / n_c + 1.0 / n_t)
    return float(formula_power(sigma, scenario.truth(kind), n_c, alpha=alpha, ratio=n_t / n_c))


def _formula_power(kind, scenario: CalibrationScenario, ss, alpha) -> tuple[float, dict[str, Any]]:
    """Return the normal power at the scenario's n with the pilot's s.e. (theory.md §2).

    ``info["pilot_power_se"]`` is the power error that the pilot's own Monte Carlo error
    induces (half the change between s.e. ± its s.e.); the power cell folds it into its band.
    """
    se, se_mc = _pilot_std_error(kind, scenario, ss)
    lo = _normal_power(scenario, kind, se + se_mc, alpha)
    hi = _normal_power(scenario, kind, max(se - se_mc, 1e-300), alpha)
    return _normal_power(scenario, kind, se, alpha), {
        "formula_se": se,
        "formula_se_mcse": se_mc,
        "pilot_power_se": abs(hi - lo) / 2.0,
    }


def _power_cell(name, st: _Stream, expected, info, alpha, z, scenario, seed) -> CheckResult:
    claim = (
        f"share of p-values < {alpha:g} under the effect = formula power {expected:.4f} ± z s.e."
    )
    if st.ok.sum() < 2:
        return _missing(name, claim, scenario, seed)
    band = rejection_rate(st.column("pvalue"), alpha=alpha, expected=expected, z=z)
    # the formula's sigma comes from a pilot: fold its error into the band in quadrature
    tolerance = math.hypot(band.tolerance, z * info.get("pilot_power_se", 0.0))
    pc = _control_pvalues(st.column("estimate"))
    ctrl = rejection_rate(pc, alpha=alpha, expected=expected, z=z)
    return CheckResult(
        name=name,
        claim=claim,
        scenario=scenario,
        figure=band.figure,
        expected=expected,
        tolerance=tolerance,
        n_replicates=band.n_replicates,
        seed=seed,
        negative_control=NegativeControl(
            CONTROL_NAME,
            ctrl.figure,
        ),
        extra={**info, "mean_std_error": float(np.mean(st.column("std_error")))},
    )


def _errors_cell(name, failures, n_calls, scenario, seed) -> CheckResult:
    k = _MAX_LISTED_FAILURES
    listed = "; ".join(f"{f.stream} replicate {f.replicate}: {f.reason}" for f in failures[:k])
    more = f" (+{len(failures) - k} more)" if len(failures) > k else ""
    claim = f"the estimator returned a valid result on all {n_calls} replicates" + (
        f"; {len(failures)} failed: {listed}{more}" if failures else ""
    )
    return CheckResult(
        name=name,
        claim=claim,
        scenario=scenario,
        figure=float(len(failures)),
        expected=0.0,
        tolerance=0.0,
        rule="at_most",
        n_replicates=n_calls,
        seed=seed,
        extra={"failures": [str(f) for f in failures]},
    )


def plot_aa_pvalues(results: list[CheckResult]):
    """QQ plot of the A/A p-values of the estimator and of its control against Uniform(0, 1)."""
    return pvalue_qq_figure(
        results, [("estimator", "estimator", "-"), ("control", f"control: {CONTROL_NAME}", "--")]
    )


def _scenario_outcomes(
    call: Callable[..., Any],
    estimator_name: str,
    kind: str,
    scenario: CalibrationScenario,
    ss: np.random.SeedSequence,
    n_replicates: int,
    *,
    alpha: float,
    z: float,
    checks: tuple[str, ...],
    tick: Callable[[], None],
) -> tuple[list[Any], tuple[ReplicateFailure, ...]]:
    """Run the battery on one scenario; return its CheckOutcomes and failures."""
    from validation.runner import CheckOutcome

    name = scenario.name
    seed = int(ss.entropy)
    desc = {**scenario.to_dict(), "kind": kind, "estimator": estimator_name}
    truth = scenario.truth(kind)
    outcomes: list[Any] = []
    streams: list[_Stream] = []

    def outcome(suffix, claim, cells, elapsed, ws=(), exact=False, plot=None):
        check = Check(
            name=f"{name}/{suffix}",
            claim=claim,
            function=lambda ctx: cells,
            reference="docs/theory.md §5; Deng, Knoblich, Lu (KDD 2018).",
            group=name,
            exact=exact,
            plot=plot,
        )
        outcomes.append(CheckOutcome(check, tuple(cells), elapsed, None, tuple(ws)))

    if "aa" in checks:
        st = _run_stream(call, kind, scenario, ss, n_replicates, aa=True, tick=tick)
        streams.append(st)
        outcome(
            "aa-calibration",
            f"A/A ({scenario.description or name}): the estimator rejects in {alpha:g} of "
            "experiments and its p-values are uniform; a test with an s.e. of "
            f"{CONTROL_SE_FACTOR:g} x the estimates' replicate s.d. (control) fails both.",
            _aa_cells(f"{name}/aa-calibration", st, alpha, z, desc, seed),
            st.elapsed_s,
            st.warnings,
            plot=plot_aa_pvalues,
        )
    if {"coverage", "bias", "power"} & set(checks):
        st = _run_stream(call, kind, scenario, ss, n_replicates, aa=False, tick=tick)
        streams.append(st)
        if "coverage" in checks:
            outcome(
                "coverage",
                f"Under the effect the {1 - alpha:g} interval covers the true "
                f"{scenario.estimand} at its nominal rate.",
                [_coverage_cell(f"{name}/coverage", st, truth, alpha, z, desc, seed)],
                st.elapsed_s,
                st.warnings,
            )
        if "bias" in checks:
            outcome(
                "bias",
                f"The estimate of the {scenario.estimand} is unbiased within z Monte Carlo s.e.",
                [_bias_cell(f"{name}/bias", st, truth, z, desc, seed)],
                0.0,
                st.warnings,
            )
        if "power" in checks:
            t0 = time.perf_counter()
            expected, info = _formula_power(kind, scenario, ss, alpha)
            outcome(
                "power",
                "Under the effect the rejection rate equals the normal power formula at the "
                "scenario's n (the test's s.e. from a 100,000-users-per-arm pilot).",
                [_power_cell(f"{name}/power", st, expected, info, alpha, z, desc, seed)],
                time.perf_counter() - t0,
                st.warnings,
            )
    failures = tuple(f for st in streams for f in st.failures)
    n_calls = n_replicates * len(streams)
    outcome(
        "estimator-errors",
        "The estimator returns finite estimate and s.e., ci_low <= ci_high and a p-value in "
        "[0, 1] on every replicate (a count, not a Monte Carlo figure: no negative control).",
        [_errors_cell(f"{name}/estimator-errors", failures, n_calls, desc, seed)],
        0.0,
        exact=True,
    )
    return outcomes, failures
