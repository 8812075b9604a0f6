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
from typing import Any

import numpy as np

import sim
from estimators import RatioMoments
from sim._seed import child_sequences
from validation.core import CheckResult, RunContext, register
from validation.cuped_cells import (
    _adjusted_arm_vars,
    _arr,
    _bias_result,
    _Cell,
    _coverage_result,
    _cuped,
    _reduction_result,
)
from validation.cuped_data import (
    _DESIGNS,
    QueryMoments,
    _post_treatment_ratio_moments,
    _query_columns,
    pilot_variance_ratio,
    query_moments,
    shrinkage_q,
)
from validation.cuped_query import PUBLISHED_QUERY, check_cuped_query, plot_query
from validation.shipped import Shipped

ratio_test_from_moments = Shipped("estimators.ratio", "ratio_test_from_moments")
linearize_ratio = Shipped("estimators.ratio", "linearize_ratio")

__all__ = [
    "CALIBRATION_CELLS",
    "CALIBRATION_DAY_EFFECTS",
    "PUBLISHED_QUERY",
    "QueryMoments",
    "calibration_results",
    "check_cuped_calibration",
    "check_cuped_query",
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
_CAL_USERS = (1_000, 1_000)
_RATIO_SCENARIO = {"effect": 0.02}
_PILOT_USERS = 1_000_000


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
    plain_res = ratio_test_from_moments(plain_mt, plain_mc, ddof=1)
    plain, plain_se = _arr(plain_res.estimate), _arr(plain_res.std_error)
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
    w = linearize_ratio(pv, pm)  # pre-period CTR, linearised at the pooled means
    ys, xs = [], []
    for a in (0, 1):
        sel = data.arm == a
        ys.append(linearize_ratio(v[sel], m[sel]))  # the arm's CTR, at its own means
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
