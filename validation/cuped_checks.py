"""Monte Carlo checks of CUPED (docs/theory.md §3): bias, coverage, variance reduction, queries.

Two registered checks:

``cuped-calibration``
    Four cells, each with a bias, a coverage and a variance-reduction verdict for
    the industry-default CUPED (``theta="pooled"``):

    * ``one-covariate``: the docs/theory.md §3 query metric (fixed day-of-week effects, 1,000
      users per arm) adjusted by the pre-period queries;
    * ``many-covariates``: pre-period queries, an independent N(0, 1) noise
      covariate and 7 first-visit-day dummies (8 levels: days 0-6 and "never
      visited", one dropped), k = 9;
    * ``singular-dummies``: pre-period queries and all 8 first-visit-day dummies,
      which sum to the intercept, so the covariance matrix is singular
      (:class:`estimators.RankDeficientWarning`); the estimates equal those with one
      level dropped to rounding, so the adjustment is well defined;
    * ``ratio-metric``: a CTR (Deng et al. 2018 latent classes, +0.02 click
      probability, 1,000 users per arm) adjusted by the pre-period CTR as a ratio
      covariate, both linearised (Deng et al. 2013, appendix B), on the vectorised
      moments path.

``cuped-query``
    The docs/theory.md §3 query scenario as published (1,000 users, random day effects,
    covariates: pre-period queries and first-visit-day dummies): the standard-error
    ratio CUPED / plain as a distribution over replicates (published single draw
    0.84), the coverage of the CUPED interval for the exact true effect, and the
    relation of the t-test, CUPED and OLS estimates (published 5.01 (1.05), 4.46
    (0.88), 4.49 (0.88)).

What "pooled theta" does at finite n (exact, and the reason the bias cells expect
what they expect): with ``c = n_T n_C / n``, ``d`` the difference of the arms'
covariate means and ``S_w`` their within-arm sum of squares, the pooled estimate is
exactly the OLS (``theta="within"``) estimate shrunk towards 0,

    estimate_pooled = estimate_OLS / (1 + q),   q = c d' S_w^+ d,

(Sherman-Morrison on the pooled normal equations). ``q`` depends on the covariates
and the assignment only; E[q] is about k / (n - 2). So pooled CUPED is biased by
about ``-tau k / n``: invisible for one covariate, about 1 to 4 Monte Carlo s.e. in
the query scenario (k = 8, n = 1,000) at 10,000 replicates. The bias cells claim
``E[estimate - tau] = -E[tau q / (1 + q)]`` (i.e. the OLS estimate is unbiased) with
``q`` computed per replicate from the covariates.

Every tolerance is ``z`` Monte Carlo standard errors (``ctx.z``, 4 by default, 6.3e-5
per cell; :func:`validation.mc.family_wise_rate`). The variance-reduction cells fold
in the standard error of ``1 - R^2``, which is estimated from an independent pilot
of 1,000,000 users per arm (batch means over 16 batches, `validation.mc.PILOT_BATCHES`).

References
----------
.. [1] A. Deng, Y. Xu, R. Kohavi, T. Walker, "Improving the Sensitivity of Online
   Controlled Experiments by Utilizing Pre-Experiment Data", WSDM 2013.
.. [2] A. Deng, U. Knoblich, J. Lu, "Applying the Delta Method in Metric Analytics:
   A Practical Guide with Novel Ideas", KDD 2018.
.. [3] W. Lin, "Agnostic notes on regression adjustments to experimental data:
   reexamining Freedman's critique", Ann. Appl. Stat. 7 (2013) 295-318.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import stats

import sim
from estimators import RankDeficientWarning, RatioMoments
from sim._seed import child_sequences
from validation.ab_mc import coverage, mean_band, variance_ratio
from validation.core import CheckResult, NegativeControl, RunContext, register
from validation.mc import PILOT_BATCHES
from validation.shipped import Shipped

cuped_test_from_moments = Shipped("estimators.cuped", "cuped_test_from_moments")
ols_test = Shipped("estimators.ols", "ols_test")
ratio_test_from_moments = Shipped("estimators.ratio", "ratio_test_from_moments")

__all__ = [
    "CALIBRATION_CELLS",
    "CALIBRATION_DAY_EFFECTS",
    "PUBLISHED_QUERY",
    "QueryMoments",
    "pilot_variance_ratio",
    "plot_calibration",
    "plot_query",
    "query_moments",
    "shrinkage_q",
]

#: Cells of ``cuped-calibration``.
CALIBRATION_CELLS: tuple[str, ...] = (
    "one-covariate",
    "many-covariates",
    "singular-dummies",
    "ratio-metric",
)
#: Fixed day-of-week effects of the calibration cells (spread over the source scenario's U(-3, 6)).
CALIBRATION_DAY_EFFECTS: tuple[float, ...] = (-3.0, 4.5, 0.0, 6.0, -1.5, 3.0, 1.5)
#: Published single draw of the docs/theory.md §3 query scenario (1,000 users).
PUBLISHED_QUERY = {
    "se_ratio": 0.84,
    "ttest": (5.01, 1.05),
    "cuped": (4.46, 0.88),
    "ols": (4.49, 0.88),
}
_CONFIDENCE = 0.95
_Z95 = float(stats.norm.ppf(0.975))
_CAL_USERS = (1_000, 1_000)
_QUERY_USERS = (500, 500)
_RATIO_SCENARIO = {"effect": 0.02}
_PILOT_USERS = 1_000_000

_POST_NOISE_SD = 5.0  # s.d. of the noise of the post-treatment control covariate
_N_OLS = 100  # replicates of the query scenario also fitted with statsmodels

# Columns of the query-data covariate matrix built per replicate (see _query_columns).
_COL_PRE, _COL_NOISE, _COL_POST = 0, 1, 2
_COL_DUMMY0 = 3  # dummies of first_visit_dow = -1, 0, 1, ..., 6 (8 columns)
_DOW_LEVELS = np.arange(-1, 7)
_DESIGNS: dict[str, list[int]] = {
    "pre": [_COL_PRE],
    "many": [_COL_PRE, _COL_NOISE, *range(_COL_DUMMY0 + 1, _COL_DUMMY0 + 8)],
    "singular": [_COL_PRE, *range(_COL_DUMMY0, _COL_DUMMY0 + 8)],
    "drop-one": [_COL_PRE, *range(_COL_DUMMY0 + 1, _COL_DUMMY0 + 8)],
    "post": [_COL_POST],
}


# ----------------------------------------------------------------------------- data
@dataclass(frozen=True, slots=True)
class QueryMoments:
    """Per-replicate, per-arm moments of the query metric and every covariate column.

    Attributes
    ----------
    n, sum_y, sum_yy : ndarray, shape (R, 2)
        Users, sum of Y and of Y^2 per replicate and arm (column 0 control).
    sum_x : ndarray, shape (R, 2, 11)
        Covariate sums; columns: pre-period queries, N(0, 1) noise, the
        post-treatment control ``Y + N(0, 5^2)``, then the dummies of
        ``first_visit_dow`` = -1 (never visited), 0, ..., 6.
    sum_xx : ndarray, shape (R, 2, 11, 11)
        Cross-products of the covariates.
    sum_yx : ndarray, shape (R, 2, 11)
        Sums of Y times each covariate.
    truth : ndarray, shape (R,)
        Exact average treatment effect of each replicate (given its day effects).
    visitors : QueryMoments or None
        The same over users who visited at least once (for the query scenario).
    ols : ndarray, shape (m, 2)
        statsmodels OLS ``Y ~ 1 + arm + X`` (estimate, HC2 s.e.) on the first ``m``
        replicates, ``X`` = the ``"drop-one"`` design; empty when not requested.
    scenario : dict
        JSON-serialisable description.
    """

    n: npt.NDArray[np.float64]
    sum_y: npt.NDArray[np.float64]
    sum_yy: npt.NDArray[np.float64]
    sum_x: npt.NDArray[np.float64]
    sum_xx: npt.NDArray[np.float64]
    sum_yx: npt.NDArray[np.float64]
    truth: npt.NDArray[np.float64]
    visitors: QueryMoments | None
    ols: npt.NDArray[np.float64]
    scenario: dict[str, Any]

    def arm(self, arm: int, columns: list[int] | None) -> RatioMoments:
        """Moments of arm ``arm`` (0 control) with the covariate ``columns`` (None: none)."""
        n = self.n[:, arm]
        if columns is None:
            return RatioMoments.from_mean_sums(n, self.sum_y[:, arm], self.sum_yy[:, arm])
        idx = np.asarray(columns)
        return RatioMoments.from_mean_sums(
            n,
            self.sum_y[:, arm],
            self.sum_yy[:, arm],
            sum_x=self.sum_x[:, arm][:, idx],
            sum_xx=self.sum_xx[:, arm][:, idx][:, :, idx],
            sum_yx=self.sum_yx[:, arm][:, idx],
        )


def _query_columns(data: Any, gen: np.random.Generator) -> npt.NDArray[np.float64]:
    """Covariate matrix of one replicate (columns as in :class:`QueryMoments`)."""
    y = data.queries.astype(np.float64)
    n = y.size
    x = np.empty((n, _COL_DUMMY0 + 8))
    x[:, _COL_PRE] = data.pre_queries
    x[:, _COL_NOISE] = gen.standard_normal(n)
    x[:, _COL_POST] = y + _POST_NOISE_SD * gen.standard_normal(n)
    x[:, _COL_DUMMY0:] = data.first_visit_dow[:, None] == _DOW_LEVELS
    return x


def _accumulate(out: dict[str, np.ndarray], r: int, y, x, arm, mask=None) -> None:
    for a in (0, 1):
        sel = arm == a if mask is None else (arm == a) & mask
        ya, xa = y[sel], x[sel]
        out["n"][r, a] = ya.size
        out["sum_y"][r, a] = ya.sum()
        out["sum_yy"][r, a] = ya @ ya
        out["sum_x"][r, a] = xa.sum(0)
        out["sum_xx"][r, a] = xa.T @ xa
        out["sum_yx"][r, a] = ya @ xa


def _empty_sums(r: int, k: int) -> dict[str, np.ndarray]:
    return {
        "n": np.empty((r, 2)),
        "sum_y": np.empty((r, 2)),
        "sum_yy": np.empty((r, 2)),
        "sum_x": np.empty((r, 2, k)),
        "sum_xx": np.empty((r, 2, k, k)),
        "sum_yx": np.empty((r, 2, k)),
    }


def query_moments(
    scenario: sim.QueryScenario,
    n_users: tuple[int, int],
    n_replicates: int,
    ss: np.random.SeedSequence,
    *,
    visitors: bool = False,
    n_ols: int = 0,
    progress: Any = None,
) -> QueryMoments:
    """Simulate ``n_replicates`` query experiments and keep per-arm moments.

    Parameters
    ----------
    scenario : sim.QueryScenario
        The docs/theory.md §3 scenario.
    n_users : tuple of int
        ``(n_control, n_treatment)``.
    n_replicates : int
        Experiments.
    ss : numpy.random.SeedSequence
        Root seed: replicate r is ``sim.simulate_queries(scenario, n_users,
        rng=child_r)`` of its first child; the noise columns use the second child.
    visitors : bool
        Also keep the moments over users who visited at least once.
    n_ols : int
        Fit statsmodels OLS on the first ``n_ols`` replicates (a cross-check).
    progress : callable or None
        ``progress(done, total)``.

    Returns
    -------
    QueryMoments
    """
    ss_sim, ss_noise = child_sequences(ss, 2)
    kids = child_sequences(ss_sim, n_replicates)
    noise_kids = child_sequences(ss_noise, n_replicates)
    k = _COL_DUMMY0 + 8
    sums = _empty_sums(n_replicates, k)
    vis = _empty_sums(n_replicates, k) if visitors else None
    truth = np.empty(n_replicates)
    n_ols = min(n_ols, n_replicates)
    ols = np.empty((n_ols, 2))
    for r in range(n_replicates):
        data = sim.simulate_queries(scenario, n_users, rng=kids[r])
        y = data.queries.astype(np.float64)
        x = _query_columns(data, np.random.default_rng(noise_kids[r]))
        _accumulate(sums, r, y, x, data.arm)
        if vis is not None:
            _accumulate(vis, r, y, x, data.arm, data.visit_days > 0)
        truth[r] = data.true_effect_given_days
        if r < n_ols:
            res = ols_test(y, data.arm, x[:, _DESIGNS["drop-one"]])
            ols[r] = res.estimate, res.std_error
        if progress is not None and (r + 1) % 500 == 0:
            progress(r + 1, n_replicates)
    desc = {**scenario.to_dict(), "n_control": n_users[0], "n_treatment": n_users[1]}
    vis_m = None
    if vis is not None:
        vis_m = QueryMoments(**vis, truth=truth, visitors=None, ols=ols[:0], scenario=desc)
    return QueryMoments(**sums, truth=truth, visitors=vis_m, ols=ols, scenario=desc)


def shrinkage_q(
    moments_t: RatioMoments, moments_c: RatioMoments, pairs: tuple[tuple[int, int], ...] = ()
) -> npt.NDArray[np.float64]:
    """``q = c d' S_w^+ d`` per replicate: pooled CUPED = OLS estimate / (1 + q) exactly.

    ``c = n_T n_C / n``, ``d`` the treatment-minus-control difference of the
    (transformed) covariate means and ``S_w`` the sum of the arms' within-arm sums of
    squares. With ``pairs`` the covariates are the linearised ratios of
    :func:`estimators.cuped_test` (pooled means) followed by the unpaired columns.
    Depends on the covariates and the assignment only, not on the metric.
    """
    nt, nc = moments_t.n, moments_c.n
    n = nt + nc
    mx_t = moments_t.sum_x / nt[:, None]
    mx_c = moments_c.sum_x / nc[:, None]
    ss_t = moments_t.sum_xx - nt[:, None, None] * mx_t[:, :, None] * mx_t[:, None, :]
    ss_c = moments_c.sum_xx - nc[:, None, None] * mx_c[:, :, None] * mx_c[:, None, :]
    k = mx_t.shape[-1]
    pooled = (moments_t.sum_x + moments_c.sum_x) / n[:, None]
    paired = {c for pair in pairs for c in pair}
    single = [j for j in range(k) if j not in paired]
    B = np.zeros((nt.size, len(pairs) + len(single), k))
    for r, (i, j) in enumerate(pairs):
        B[:, r, i] = 1.0 / pooled[:, j]
        B[:, r, j] = -pooled[:, i] / pooled[:, j] ** 2
    for r, j in enumerate(single, start=len(pairs)):
        B[:, r, j] = 1.0
    d = (B @ (mx_t - mx_c)[:, :, None])[:, :, 0]
    sw = B @ (ss_t + ss_c) @ np.swapaxes(B, 1, 2)
    sw_pinv = np.linalg.pinv(sw, rtol=1e-10, hermitian=True)
    return nt * nc / n * np.einsum("ri,rij,rj->r", d, sw_pinv, d)


def pilot_variance_ratio(
    y_by_arm: tuple[np.ndarray, np.ndarray],
    x_by_arm: tuple[np.ndarray, np.ndarray],
    n_per_arm: tuple[int, int],
    *,
    n_batches: int = PILOT_BATCHES,
) -> tuple[float, float, float]:
    """Asymptotic Var(CUPED) / Var(plain) of a scenario from a large pilot, with its s.e.

    Parameters
    ----------
    y_by_arm, x_by_arm : tuple of ndarray
        Control then treatment: the metric (already linearised for a ratio metric)
        and the covariates (``(N, k)``) of a large independent sample.
    n_per_arm : tuple of int
        ``(n_control, n_treatment)`` of the experiment being predicted (weights).
    n_batches : int
        Batches for the batch-means standard error.

    Returns
    -------
    (ratio, std_error, r2)
        ``ratio = sum_a var_a(Y - theta' X) / n_a / sum_a var_a(Y) / n_a`` with
        ``theta`` the population pooled slope ``(sum_a pi_a S_a,XX)^+ sum_a pi_a
        S_a,XY`` (the limit of the pooled CUPED theta; the arms' covariate means are
        equal), i.e. ``1 - R^2`` when the arms share their covariances; its
        batch-means standard error; and the control arm's R^2.
    """

    def ratio_of(ys, xs):
        covs = [np.cov(np.column_stack([y, x]), rowvar=False) for y, x in zip(ys, xs, strict=True)]
        pi = np.asarray(n_per_arm, dtype=np.float64) / sum(n_per_arm)
        sxx = sum(p * c[1:, 1:] for p, c in zip(pi, covs, strict=True))
        sxy = sum(p * c[1:, 0] for p, c in zip(pi, covs, strict=True))
        theta = np.linalg.pinv(sxx, rtol=1e-10, hermitian=True) @ sxy
        num = den = 0.0
        for c, n_a in zip(covs, n_per_arm, strict=True):
            resid = c[0, 0] - 2 * theta @ c[1:, 0] + theta @ c[1:, 1:] @ theta
            num += resid / n_a
            den += c[0, 0] / n_a
        c0 = covs[0]
        th0 = np.linalg.pinv(c0[1:, 1:], rtol=1e-10, hermitian=True) @ c0[1:, 0]
        r2 = float(th0 @ c0[1:, 0] / c0[0, 0])
        return float(num / den), r2

    ratio, r2 = ratio_of(y_by_arm, x_by_arm)
    parts = []
    for b in range(n_batches):
        ys, xs = [], []
        for y, x in zip(y_by_arm, x_by_arm, strict=True):
            sl = slice(b * y.size // n_batches, (b + 1) * y.size // n_batches)
            ys.append(y[sl])
            xs.append(x[sl])
        parts.append(ratio_of(ys, xs)[0])
    se = float(np.std(parts, ddof=1) / math.sqrt(n_batches))
    return ratio, se, r2


# ----------------------------------------------------------------------------- helpers
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


def _arm_var(m: RatioMoments) -> np.ndarray:
    """Within-arm variance (ddof 1) over n of a mean metric: the plain s.e. squared."""
    return (m.sum_vv - m.sum_v**2 / m.n) / (m.n - 1) / m.n


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


def _post_treatment_ratio_moments(mom: Any, arm: int) -> RatioMoments:
    """Ratio-metric moments whose covariate is the experiment-period clicks V (post-treatment)."""
    m = RatioMoments.from_simulator(mom, arm, covariates=False)
    return RatioMoments(
        n=m.n,
        sum_v=m.sum_v,
        sum_m=m.sum_m,
        sum_vv=m.sum_vv,
        sum_mm=m.sum_mm,
        sum_vm=m.sum_vm,
        sum_x=m.sum_v[:, None],
        sum_xx=m.sum_vv[:, None, None],
        sum_vx=m.sum_vv[:, None],
        sum_mx=m.sum_vm[:, None],
    )


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


# ----------------------------------------------------------------------------- cells
def _query_cells(ctx: RunContext, r: int) -> list[_Cell]:
    scen = sim.QueryScenario(day_effects=CALIBRATION_DAY_EFFECTS)
    ss = ctx.seed_sequence("cuped-calibration/queries")
    qm = query_moments(scen, _CAL_USERS, r, ss)
    pilot_users = ctx.replicates(200_000, _PILOT_USERS)
    ss_pilot = ctx.seed_sequence("cuped-calibration/queries/pilot")
    pdata = sim.simulate_queries(scen, (pilot_users, pilot_users), rng=ss_pilot)
    py = pdata.queries.astype(np.float64)
    px = _query_columns(pdata, np.random.default_rng(child_sequences(ss_pilot, 1)[0]))
    parms = [pdata.arm == a for a in (0, 1)]

    def pilot(cols: list[int]) -> tuple[float, float, float]:
        xs = tuple(px[sel][:, cols] for sel in parms)
        return pilot_variance_ratio((py[parms[0]], py[parms[1]]), xs, _CAL_USERS)

    plain_mt, plain_mc = qm.arm(1, None), qm.arm(0, None)
    plain = _arr(ratio_test_from_moments(plain_mt, plain_mc, ddof=1).estimate)
    plain_se = np.sqrt(_arm_var(plain_mt) + _arm_var(plain_mc))
    post_t, post_c = qm.arm(1, _DESIGNS["post"]), qm.arm(0, _DESIGNS["post"])
    post, _ = _cuped(post_t, post_c)
    post_q = shrinkage_q(post_t, post_c)
    n_total = sum(_CAL_USERS)
    desc = {**qm.scenario, "metric": "queries (Y)"}
    out = []
    specs = (
        ("one-covariate", "pre", 1, "pre-period queries"),
        ("many-covariates", "many", 9, "pre-period queries, N(0,1) noise, 7 day dummies"),
        ("singular-dummies", "singular", 8, "pre-period queries, all 8 first-visit-day dummies"),
    )  # fmt: skip
    for cell, design, rank, covs in specs:
        cols = _DESIGNS[design]
        mt, mc = qm.arm(1, cols), qm.arm(0, cols)
        res, n_rank = _cuped(mt, mc)
        within, _ = _cuped(mt, mc, theta="within")
        est, se = _arr(res.estimate), _arr(res.std_error)
        extra: dict[str, Any] = {
            "covariates": covs,
            "rank": rank,
            "pilot_users_per_arm": pilot_users,
        }
        if cell == "one-covariate":
            ctrl_cov = ("s.e. divided by the total n", np.sqrt((se**2) * _CAL_USERS[0] / n_total))
            ctrl_red = ("theta = 0 (CUPED silently off)", plain)
        elif cell == "many-covariates":
            v_t, v_c = _adjusted_arm_vars(mt, mc, _arr(res.theta))
            extra["max_rel_diff_arm_vars_vs_estimators"] = float(
                np.max(np.abs(np.sqrt(v_t + v_c) / se - 1.0))
            )
            ctrl_cov = ("s.e. of the arms summed, se_T + se_C", np.sqrt(v_t) + np.sqrt(v_c))
            pre_only, _ = _cuped(qm.arm(1, _DESIGNS["pre"]), qm.arm(0, _DESIGNS["pre"]))
            ctrl_red = ("pre-period covariate only (dummies ignored)", _arr(pre_only.estimate))
        else:
            ref, _ = _cuped(qm.arm(1, _DESIGNS["drop-one"]), qm.arm(0, _DESIGNS["drop-one"]))
            extra["rank_deficient_warnings"] = n_rank
            extra["max_abs_diff_vs_drop_one_level"] = float(
                np.max(np.abs(est - _arr(ref.estimate)))
            )
            extra["max_abs_diff_se_vs_drop_one_level"] = float(
                np.max(np.abs(se - _arr(ref.std_error)))
            )
            ctrl_cov = ("un-adjusted (plain) s.e. with the CUPED estimate", plain_se)
            ctrl_red = ("theta = 0 (CUPED silently off, as when inv() fails on it)", plain)
        out.append(
            _Cell(
                name=cell,
                scenario={**desc, "covariates": covs},
                seed=int(ss.entropy),
                truth=qm.truth,
                plain=plain,
                estimate=est,
                std_error=se,
                q=shrinkage_q(mt, mc),
                within=_arr(within.estimate),
                k=rank,
                n_total=n_total,
                pilot=pilot(cols),
                n_rank_warnings=n_rank,
                control_bias=(_arr(post.estimate), post_q),
                control_coverage=ctrl_cov,
                control_reduction=ctrl_red,
                extra=extra,
            )
        )
    return out


def _ratio_cell(ctx: RunContext, r: int) -> _Cell:
    scen = sim.Deng2018Classes(**_RATIO_SCENARIO)
    ss = ctx.seed_sequence("cuped-calibration/ratio")
    mom = sim.simulate_moments(scen, _CAL_USERS, r, rng=ss)
    mt, mc = RatioMoments.from_simulator(mom, 1), RatioMoments.from_simulator(mom, 0)
    pairs = ((0, 1),)
    res, _ = _cuped(mt, mc, covariate_ratios=pairs)
    within, _ = _cuped(mt, mc, covariate_ratios=pairs, theta="within")
    plain = ratio_test_from_moments(
        RatioMoments.from_simulator(mom, 1, covariates=False),
        RatioMoments.from_simulator(mom, 0, covariates=False),
        ddof=1,
    )
    post_t, post_c = (_post_treatment_ratio_moments(mom, a) for a in (1, 0))
    post, _ = _cuped(post_t, post_c)
    est, se = _arr(res.estimate), _arr(res.std_error)
    pilot_users = ctx.replicates(200_000, _PILOT_USERS)
    ss_pilot = ctx.seed_sequence("cuped-calibration/ratio/pilot")
    n_total = sum(_CAL_USERS)
    truth = np.full(r, scen.truth().difference)
    return _Cell(
        name="ratio-metric",
        scenario={
            **scen.to_dict(),
            "n_control": _CAL_USERS[0],
            "n_treatment": _CAL_USERS[1],
            "metric": "CTR = sum clicks / sum views (linearised)",
            "covariates": "pre-period CTR (ratio covariate, linearised with pooled means)",
        },
        seed=int(ss.entropy),
        truth=truth,
        plain=_arr(plain.estimate),
        estimate=est,
        std_error=se,
        q=shrinkage_q(mt, mc, pairs),
        within=_arr(within.estimate),
        k=1,
        n_total=n_total,
        pilot=_ratio_pilot_n(scen, pilot_users, ss_pilot),
        n_rank_warnings=0,
        control_bias=(_arr(post.estimate), shrinkage_q(post_t, post_c)),
        control_coverage=("s.e. divided by the total n", se * math.sqrt(_CAL_USERS[0] / n_total)),
        control_reduction=("theta = 0 (CUPED silently off)", _arr(plain.estimate)),
        extra={"covariates": "pre-period CTR", "rank": 1, "pilot_users_per_arm": pilot_users},
    )


def _ratio_pilot_n(scenario: Any, n_users: int, ss) -> tuple[float, float, float]:
    data = sim.simulate_clicks(scenario, (n_users, n_users), rng=ss)
    v, m = data.clicks.astype(np.float64), data.views.astype(np.float64)
    pv, pm = data.pre_clicks.astype(np.float64), data.pre_views.astype(np.float64)
    w = pv / pm.mean() - pv.mean() / pm.mean() ** 2 * pm
    ys, xs = [], []
    for a in (0, 1):
        sel = data.arm == a
        r_a = v[sel].sum() / m[sel].sum()
        ys.append((v[sel] - r_a * m[sel]) / m[sel].mean())
        xs.append(w[sel][:, None])
    return pilot_variance_ratio((ys[0], ys[1]), (xs[0], xs[1]), _CAL_USERS)


_CELL_WHAT = {
    "one-covariate": "one covariate (pre-period queries)",
    "many-covariates": "many covariates (pre-period, noise, 7 dummies)",
    "singular-dummies": "singular full dummy set (all 8 levels + intercept)",
    "ratio-metric": "ratio metric (CTR) with the pre-period CTR as a ratio covariate",
}


def calibration_results(ctx: RunContext, n_replicates: int | None = None) -> list[CheckResult]:
    """Every cell of ``cuped-calibration`` (bias, coverage, variance reduction per cell)."""
    r = n_replicates if n_replicates is not None else ctx.replicates(2_000, 20_000)
    cells = _query_cells(ctx, r)
    if ctx.progress is not None:
        ctx.progress(1, 2)
    cells.append(_ratio_cell(ctx, r))
    if ctx.progress is not None:
        ctx.progress(2, 2)
    out = []
    for cell in cells:
        name = f"cuped-calibration/{cell.name}"
        what = _CELL_WHAT[cell.name]
        out += [
            _bias_result(ctx, cell, name, what),
            _coverage_result(ctx, cell, name, what),
            _reduction_result(ctx, cell, name, what),
        ]
    return out


# ----------------------------------------------------------------------------- plots
def plot_calibration(results: list[CheckResult]):
    """Variance reduction vs (1 - R^2)(1 - k/(n-1)) on the identity line; coverage per cell."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4))
    ax_vr, ax_cov = fig.subplots(1, 2)
    red = [r for r in results if r.extra.get("kind") == "variance-reduction"]
    for r in red:
        ax_vr.errorbar(
            r.expected, r.figure, yerr=r.tolerance, fmt="o", capsize=3, label=r.extra["cell"]
        )
        if r.negative_control is not None:
            ax_vr.plot(r.expected, r.negative_control.figure, "x", color="0.4")
    ax_vr.plot([0, 1.05], [0, 1.05], color="k", lw=0.8)
    ax_vr.set_xlim(0.3, 1.05)
    ax_vr.set_ylim(0.3, 1.05)
    ax_vr.set_xlabel("(1 - R²)(1 - k/(n-1)), R² from the pilot")
    ax_vr.set_ylabel("Var(CUPED) / Var(plain) over replicates")
    ax_vr.set_title("variance reduction (x: negative controls)", fontsize=9)
    ax_vr.legend(fontsize=7)
    cov = [r for r in results if r.extra.get("kind") == "coverage"]
    x = np.arange(len(cov))
    if cov:
        ax_cov.axhspan(0.95 - cov[0].tolerance, 0.95 + cov[0].tolerance, color="0.85", zorder=0)
    ax_cov.axhline(0.95, color="k", lw=0.8)
    ax_cov.plot(x, [r.figure for r in cov], "o", label="CUPED 95% CI")
    ax_cov.plot(
        x, [r.negative_control.figure for r in cov], "x", label="negative control", color="0.4"
    )
    ax_cov.set_xticks(x, [r.extra["cell"] for r in cov], rotation=15, fontsize=7)
    ax_cov.set_ylabel("coverage")
    ax_cov.set_title("coverage (grey: 0.95 ± z Monte Carlo s.e.)", fontsize=9)
    ax_cov.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_query(results: list[CheckResult]):
    """Histogram of the query scenario's s.e. ratio CUPED/plain, published 0.84 marked."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.5, 3.6))
    ax = fig.subplots()
    hist = next((r.extra["histogram"] for r in results if "histogram" in r.extra), None)
    if hist is not None:
        edges = np.asarray(hist["edges"])
        for coding, counts in hist["counts"].items():
            ax.stairs(counts, edges, label=coding, fill=coding == hist["main"], alpha=0.6)
    ax.axvline(PUBLISHED_QUERY["se_ratio"], color="r", lw=1.2, label="published single draw 0.84")
    ax.set_xlabel("s.e. ratio CUPED / plain, per experiment (1,000 users)")
    ax.set_ylabel("experiments")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- checks
@register(
    "cuped-calibration",
    claim=(
        "Pooled-theta CUPED (industry default) with one covariate, many covariates, a "
        "singular full dummy set and a ratio metric with a ratio covariate: the 95% CI "
        "covers at 0.95; the variance of the estimate over replicates is (1 - R^2)(1 - "
        "k/(n-1)) times the plain one (R^2 from an independent pilot of 1,000,000 users per "
        "arm; 200,000 at the quick profile); the "
        "estimate's mean error is -mean(tau q/(1+q)), the exact shrinkage of pooled theta "
        "(about -tau k/n; OLS is unbiased). All within z = 4 Monte Carlo s.e."
    ),
    reference=(
        "Deng, Xu, Kohavi, Walker (WSDM 2013) §3 and appendix B; Lin (2013); docs/theory.md §3."
    ),
    published="",
    group="cuped",
    plot=plot_calibration,
)
def check_cuped_calibration(ctx: RunContext) -> list[CheckResult]:
    """CUPED bias, coverage and variance reduction per cell (see the registered claim)."""
    return calibration_results(ctx)


def _se_ratio_consistency(
    ratio: np.ndarray, err_cuped: np.ndarray, err_plain: np.ndarray, z: float
) -> tuple[float, float, float]:
    """(mean ratio, sd(err_cuped)/sd(err_plain), z s.e. of their difference).

    The s.e. linearises ``mean(r) - sqrt(mean(A)/mean(B))`` with A, B the squared
    centred errors, jointly over the replicates (docs/theory.md §1 linearisation).
    """
    r = ratio.size
    a = (err_cuped - err_cuped.mean()) ** 2 * (r / (r - 1))
    b = (err_plain - err_plain.mean()) ** 2 * (r / (r - 1))
    rho = math.sqrt(a.mean() / b.mean())
    lin = ratio - 0.5 * rho * (a / a.mean() - b / b.mean())
    return float(ratio.mean()), rho, z * float(np.std(lin, ddof=1) / math.sqrt(r))


_HIST_EDGES = np.linspace(0.6, 1.0, 81)


@register(
    "cuped-query",
    claim=(
        "docs/theory.md §3 query scenario (1,000 users, random day effects; covariates pre-period "
        "queries and first-visit-day dummies): the per-experiment s.e. ratio CUPED/plain "
        "averages the true ratio of the estimates' s.d.s; the CUPED CI covers the exact "
        "true effect at 0.95; CUPED's mean error is the pooled-theta shrinkage; and CUPED "
        "equals the OLS estimate / (1 + q) exactly (z = 4 Monte Carlo s.e.)."
    ),
    reference="Deng, Xu, Kohavi, Walker (WSDM 2013); docs/theory.md §3.",
    published=(
        "docs/theory.md §3 single draw: s.e. ratio 0.84; t-test 5.01 (1.05), CUPED 4.46 (0.88), "
        "OLS 4.49 (0.88)."
    ),
    group="cuped",
    plot=plot_query,
)
def check_cuped_query(ctx: RunContext, n_replicates: int | None = None) -> list[CheckResult]:
    """Run the docs/theory.md §3 query scenario over many draws (see the registered claim)."""
    r = n_replicates if n_replicates is not None else ctx.replicates(2_000, 20_000)
    scen = sim.QueryScenario()
    ss = ctx.seed_sequence("cuped-query")
    qm = query_moments(
        scen, _QUERY_USERS, r, ss, visitors=True, n_ols=min(_N_OLS, r), progress=ctx.progress
    )
    truth = qm.truth
    seed = int(ss.entropy)
    desc = {**qm.scenario, "covariates": "pre-period queries + 7 first-visit-day dummies"}
    cols = _DESIGNS["drop-one"]
    mt, mc = qm.arm(1, cols), qm.arm(0, cols)
    pmt, pmc = qm.arm(1, None), qm.arm(0, None)
    plain = ratio_test_from_moments(pmt, pmc, ddof=1)
    pe, pse = _arr(plain.estimate), _arr(plain.std_error)
    res, _ = _cuped(mt, mc)
    within, _ = _cuped(mt, mc, theta="within")
    est, se, est_w = _arr(res.estimate), _arr(res.std_error), _arr(within.estimate)
    q = shrinkage_q(mt, mc)
    ratio = se / pse

    # alternative codings of never-visitors (first_visit_dow = -1)
    argmax_cols = [_COL_PRE, *range(_COL_DUMMY0 + 2, _COL_DUMMY0 + 8)]  # -1 lumped into day 0
    arg_res, _ = _cuped(qm.arm(1, argmax_cols), qm.arm(0, argmax_cols))
    ratio_arg = _arr(arg_res.std_error) / pse
    vis = qm.visitors
    vis_cols = [_COL_PRE, *range(_COL_DUMMY0 + 1, _COL_DUMMY0 + 7)]
    vis_res, _ = _cuped(vis.arm(1, vis_cols), vis.arm(0, vis_cols))
    vis_plain = ratio_test_from_moments(vis.arm(1, None), vis.arm(0, None), ddof=1)
    ratio_vis = _arr(vis_res.std_error) / _arr(vis_plain.std_error)
    probs = (0.005, 0.05, 0.25, 0.5, 0.75, 0.95, 0.995)

    def summary(x: np.ndarray) -> dict[str, Any]:
        return {
            "mean": float(x.mean()),
            "sd": float(x.std(ddof=1)),
            "quantiles": dict(
                zip([str(p) for p in probs], np.quantile(x, probs).tolist(), strict=True)
            ),
            "share_below_0.84": float(np.mean(x < PUBLISHED_QUERY["se_ratio"])),
        }

    main = "never-visited as its own level"
    codings = {
        main: ratio,
        "never-visited lumped into day 0 (argmax coding)": ratio_arg,
        "visitors only": ratio_vis,
    }
    hist = {
        "edges": _HIST_EDGES,
        "counts": {k: np.histogram(v, _HIST_EDGES)[0] for k, v in codings.items()},
        "main": main,
    }
    distribution = {k: summary(v) for k, v in codings.items()}

    # 1. s.e. ratio: mean per-experiment ratio = ratio of the estimates' s.d.s
    fig, expected, tol = _se_ratio_consistency(ratio, est - truth, pe - truth, ctx.z)
    v_t, v_c = _adjusted_arm_vars(mt, mc, _arr(res.theta))
    summed = (np.sqrt(v_t) + np.sqrt(v_c)) / pse
    out = [
        CheckResult(
            name="cuped-query/se-ratio",
            claim=(
                "mean over experiments of s.e.(CUPED)/s.e.(plain) = sd(CUPED error)/sd(plain "
                "error) ± z s.e.; the distribution and where 0.84 falls are in extra"
            ),
            scenario=desc,
            figure=fig,
            expected=expected,
            tolerance=tol,
            n_replicates=r,
            seed=seed,
            negative_control=NegativeControl(
                "CUPED s.e. of the arms summed, se_T + se_C",
                float(summed.mean()),
            ),
            extra={"distribution": distribution, "histogram": hist, "main_coding": main},
        )
    ]
    # 2. coverage of the exact true effect (given the experiment's day effects)
    band = coverage(_cover(est, se, truth), z=ctx.z)
    c_unadj = float(_cover(est, pse, truth).mean())
    out.append(
        CheckResult(
            name="cuped-query/coverage",
            claim="coverage of the CUPED 95% CI for the exact true effect = 0.95 ± z s.e.",
            scenario=desc,
            figure=band.figure,
            expected=0.95,
            tolerance=band.tolerance,
            n_replicates=r,
            seed=seed,
            negative_control=NegativeControl(
                "un-adjusted (plain) s.e. with the CUPED estimate",
                c_unadj,
            ),
            extra={
                "kind": "coverage",
                "plain_coverage": float(_cover(pe, pse, truth).mean()),
                "coverage_of_unconditional_effect": float(
                    _cover(est, se, scen.true_effect()).mean()
                ),
                "true_effect": scen.true_effect(),
                "sd_of_true_effect_given_days": float(truth.std(ddof=1)),
            },
        )
    )
    # 3. bias (pooled shrinkage) with a post-treatment control
    post_t, post_c = qm.arm(1, _DESIGNS["post"]), qm.arm(0, _DESIGNS["post"])
    post, _ = _cuped(post_t, post_c)
    cell = _Cell(
        name="query",
        scenario=desc,
        seed=seed,
        truth=truth,
        plain=pe,
        estimate=est,
        std_error=se,
        q=q,
        within=est_w,
        k=len(cols),
        n_total=sum(_QUERY_USERS),
        pilot=(math.nan, math.nan, math.nan),
        n_rank_warnings=0,
        control_bias=(_arr(post.estimate), shrinkage_q(post_t, post_c)),
        control_coverage=("", pse),
        control_reduction=("", pe),
        extra={},
    )
    out.append(_bias_result(ctx, cell, "cuped-query", "docs/theory.md §3 query scenario"))
    # 4. CUPED = OLS / (1 + q), OLS = statsmodels on the first replicates
    scale = se
    dev = float(np.max(np.abs(est * (1.0 + q) - est_w) / scale))
    dev_t = float(np.max(np.abs(pe * (1.0 + q) - est_w) / scale))
    n_ols = qm.ols.shape[0]
    sm_dev = float(np.max(np.abs(qm.ols[:, 0] - est_w[:n_ols]) / scale[:n_ols]))
    # (mean, mean s.e., replicate s.d.); the OLS s.e. here is CUPED-within's (theta known)
    estimates = {
        "ttest": (float(pe.mean()), float(pse.mean()), float(pe.std(ddof=1))),
        "cuped": (float(est.mean()), float(se.mean()), float(est.std(ddof=1))),
        "ols": (float(est_w.mean()), float(_arr(within.std_error).mean()), float(est_w.std())),
    }
    out.append(
        CheckResult(
            name="cuped-query/cuped-vs-ols",
            claim=(
                "per experiment, CUPED (pooled theta) x (1 + q) = OLS y ~ 1 + arm + X "
                "(max deviation / s.e. <= 1e-9; statsmodels OLS on the first replicates); "
                "mean and s.d. of t-test, CUPED and OLS estimates in extra"
            ),
            scenario=desc,
            figure=max(dev, sm_dev),
            expected=0.0,
            tolerance=1e-9,
            rule="at_most",
            n_replicates=r,
            seed=seed,
            negative_control=NegativeControl(
                "t-test (difference in means) in place of CUPED", dev_t
            ),
            extra={
                "estimates_mean_se_sd": estimates,
                "published": PUBLISHED_QUERY,
                "statsmodels_max_dev_over_se": sm_dev,
                "statsmodels_mean_hc2_se": float(qm.ols[:, 1].mean()) if n_ols else math.nan,
                "n_statsmodels": n_ols,
                "mean_q": float(q.mean()),
                "mean_true_effect": float(truth.mean()),
            },
        )
    )
    return out
