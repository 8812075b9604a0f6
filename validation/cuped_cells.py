"""Cells shared by the CUPED checks: the vectorised call, replicate series, verdicts.

A :class:`_Cell` holds the replicate series of one CUPED scenario (estimate, s.e.,
truth, plain estimate, shrinkage q, pilot prediction, negative controls); the
``_*_result`` functions turn it into the bias, coverage and variance-reduction cells
(docs/theory.md §3).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from estimators import RankDeficientWarning, RatioMoments
from validation.ab_mc import coverage, mean_band, variance_ratio
from validation.core import CheckResult, NegativeControl, RunContext
from validation.shipped import Shipped

cuped_test_from_moments = Shipped("estimators.cuped", "cuped_test_from_moments")

_Z95 = float(stats.norm.ppf(0.975))


def _cuped(mt: RatioMoments, mc: RatioMoments, **kw: Any):
    """Vectorised CUPED; returns (result, number of RankDeficientWarning raised)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RankDeficientWarning)
        res = cuped_test_from_moments(mt, mc, ddof=1, **kw)
    n_rank = sum(issubclass(w.category, RankDeficientWarning) for w in caught)
    for w in caught:  # anything else is re-emitted (pytest turns it into an error)
        if not issubclass(w.category, RankDeficientWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return res, n_rank


def _arr(x: Any) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


def _cover(est: np.ndarray, se: np.ndarray, truth: np.ndarray | float) -> np.ndarray:
    return np.abs(est - truth) <= _Z95 * se


def _adjusted_arm_vars(
    mt: RatioMoments, mc: RatioMoments, theta: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per-arm s.e.^2 of the adjusted mean of a mean metric, ``s_a^2 / n_a`` (ddof 1).

    ``s_a^2`` is the within-arm variance of ``Y - theta' X``; used by the negative
    controls (summed s.e.), checked against the estimators' s.e. in the tests.
    """
    out = []
    for m in (mt, mc):
        n = m.n
        mx = m.sum_x / n[:, None]
        ss_yy = m.sum_vv - m.sum_v**2 / n
        ss_yx = m.sum_vx - m.sum_v[:, None] * mx
        ss_xx = m.sum_xx - n[:, None, None] * mx[:, :, None] * mx[:, None, :]
        quad = (
            ss_yy
            - 2 * np.einsum("ri,ri->r", theta, ss_yx)
            + np.einsum("ri,rij,rj->r", theta, ss_xx, theta)
        )
        out.append(quad / (n - 1) / n)
    return out[0], out[1]


@dataclass(frozen=True, slots=True)
class _Cell:
    """Replicate series of one calibration cell (internal)."""

    name: str
    scenario: dict[str, Any]
    seed: int
    truth: np.ndarray
    plain: np.ndarray
    estimate: np.ndarray
    std_error: np.ndarray
    q: np.ndarray
    within: np.ndarray
    k: int
    n_total: int
    pilot: tuple[float, float, float]
    n_rank_warnings: int
    control_bias: tuple[np.ndarray, np.ndarray]  # (estimate, q) with a post-treatment covariate
    control_coverage: tuple[str, np.ndarray]  # (name, s.e.) used with ``estimate``
    control_reduction: tuple[str, np.ndarray]  # (name, estimate)
    extra: dict[str, Any]


def _bias_result(ctx: RunContext, cell: _Cell, name: str, what: str) -> CheckResult:
    """E[estimate - tau] = -E[tau q / (1 + q)] (pooled shrinkage; OLS unbiased)."""
    err = cell.estimate - cell.truth
    shrink = cell.truth * cell.q / (1.0 + cell.q)
    band = mean_band(err + shrink, z=ctx.z)
    expected = -float(shrink.mean())
    figure = float(err.mean())
    c_est, _ = cell.control_bias
    within = mean_band(cell.within - cell.truth, z=ctx.z)
    return CheckResult(
        name=f"{name}/bias",
        claim=(
            f"{what}: mean(estimate - true effect) = -mean(tau q/(1+q)) ± z s.e. (pooled "
            "theta is the OLS estimate shrunk by 1/(1+q), E[q] ≈ k/(n-2); OLS is unbiased)"
        ),
        scenario=cell.scenario,
        figure=figure,
        expected=expected,
        tolerance=band.tolerance,
        n_replicates=int(err.size),
        seed=cell.seed,
        negative_control=NegativeControl(
            "theta estimated with a post-treatment covariate",
            float(np.mean(c_est - cell.truth)),
        ),
        extra={
            "cell": cell.name,
            "kind": "bias",
            "mcse": band.mcse,
            "mean_q": float(cell.q.mean()),
            "k_over_n_minus_2": cell.k / (cell.n_total - 2),
            "ols_bias": within.figure,
            "ols_bias_tolerance": within.tolerance,
            "ols_unbiased": abs(within.figure) <= within.tolerance,
            "mean_true_effect": float(np.mean(cell.truth)),
            **cell.extra,
        },
    )


def _coverage_result(ctx: RunContext, cell: _Cell, name: str, what: str) -> CheckResult:
    band = coverage(_cover(cell.estimate, cell.std_error, cell.truth), z=ctx.z)
    c_name, c_se = cell.control_coverage
    c_cov = float(_cover(cell.estimate, c_se, cell.truth).mean())
    return CheckResult(
        name=f"{name}/coverage",
        claim=f"{what}: coverage of the 95% CUPED CI = 0.95 ± z s.e.",
        scenario=cell.scenario,
        figure=band.figure,
        expected=0.95,
        tolerance=band.tolerance,
        n_replicates=band.n_replicates,
        seed=cell.seed,
        negative_control=NegativeControl(c_name, c_cov),
        extra={"cell": cell.name, "kind": "coverage", "mcse": band.mcse, **cell.extra},
    )


def _reduction_result(ctx: RunContext, cell: _Cell, name: str, what: str) -> CheckResult:
    """Var(CUPED)/Var(plain) = (1 - R^2)(1 - k/(n-1)), R^2 from the pilot."""
    ratio_pilot, se_pilot, r2 = cell.pilot
    factor = 1.0 - cell.k / (cell.n_total - 1)
    expected = ratio_pilot * factor
    band = variance_ratio(cell.estimate, cell.plain, z=ctx.z)
    tol = ctx.z * math.hypot(band.mcse, se_pilot * factor)
    c_name, c_est = cell.control_reduction
    c_fig = variance_ratio(c_est, cell.plain, z=ctx.z).figure
    within = variance_ratio(cell.within, cell.plain, z=ctx.z)
    return CheckResult(
        name=f"{name}/variance-reduction",
        claim=(
            f"{what}: Var(CUPED estimate)/Var(plain estimate) over replicates = "
            "(1 - R^2)(1 - k/(n-1)) ± z s.e. (Monte Carlo and pilot errors combined)"
        ),
        scenario=cell.scenario,
        figure=band.figure,
        expected=float(expected),
        tolerance=float(tol),
        n_replicates=band.n_replicates,
        seed=cell.seed,
        negative_control=NegativeControl(c_name, c_fig),
        extra={
            "cell": cell.name,
            "kind": "variance-reduction",
            "mcse": band.mcse,
            "pilot_ratio": ratio_pilot,
            "pilot_se": se_pilot,
            "r2_control_arm": r2,
            "one_minus_r2": ratio_pilot,
            "finite_n_factor": factor,
            "k": cell.k,
            "n_total": cell.n_total,
            "ols_variance_ratio": within.figure,
            "ols_expected": ratio_pilot * (cell.n_total - 3) / (cell.n_total - cell.k - 3),
            **cell.extra,
        },
    )
