"""The ``delta-coverage`` check: coverage of the delta-method intervals by n and distribution.

Coverage of the 95 % interval for the absolute difference and the four relative-lift
intervals (linear delta, log-scale delta, Fieller, delta with Deng's second-order bias
correction), for n in {20, 50, 200, 2000} users per arm on normal, Poisson, Bernoulli
and a heavy-tailed ratio metric; the Fieller cells, the delta-bc bias cell and the
log-versus-delta separation cell (docs/theory.md §1).

References
----------
.. [1] A. Deng, U. Knoblich, J. Lu, "Applying the Delta Method in Metric Analytics:
   A Practical Guide with Novel Ideas", KDD 2018.
.. [2] E. C. Fieller, "Some Problems in Interval Estimation", JRSS B 16(2), 1954.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from estimators import EstimatorWarning
from validation.ab_mc import coverage, mean_band
from validation.ab_samples import (
    _CONFIDENCE,
    COVERAGE_DISTRIBUTIONS,
    COVERAGE_METHODS,
    COVERAGE_N,
    CoverageSample,
    _arm_stats,
    coverage_moments,
)
from validation.core import CheckResult, NegativeControl, RunContext, register
from validation.shipped import Shipped

ratio_test_from_moments = Shipped("estimators.ratio", "ratio_test_from_moments")


# ----------------------------------------------------------------------------- intervals
def _interval(sample: CoverageSample, method: str) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised 95 % interval of ``method`` over the replicates (estimators' path)."""
    res = _test(sample, method)
    return np.asarray(res.ci_low, dtype=np.float64), np.asarray(res.ci_high, dtype=np.float64)


def _test(sample: CoverageSample, method: str, confidence_level: float = _CONFIDENCE) -> Any:
    """Return the shipped ratio test of ``method`` over the replicates (NaN: undefined)."""
    relative = method != "absolute"
    with warnings.catch_warnings():  # a -bc correction > 25% of the ratio warns; kept
        warnings.simplefilter("ignore", EstimatorWarning)
        return ratio_test_from_moments(
            sample.treatment,
            sample.control,
            relative=relative,
            ci_method="delta" if method == "absolute" else method,
            confidence_level=confidence_level,
            ddof=1,
            degenerate="nan",
        )


def _control_interval(
    sample: CoverageSample, method: str, control: str
) -> tuple[np.ndarray, np.ndarray]:
    """Interval of a negative control (a known-wrong variant) over the replicates.

    ``"naive binomial s.e."``: each view an independent Bernoulli trial,
    var(R) = R (1 - R) / sum M (absolute; or the linear relative interval with these
    variances). ``"summed s.e."``: se_T + se_C instead of sqrt(var_T + var_C).
    ``"absolute CI / control mean"``: the absolute interval divided by R_C.
    """
    z = stats.norm.ppf(0.5 + _CONFIDENCE / 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        return _control_interval_unchecked(sample, method, control, z)


def _control_interval_unchecked(
    sample: CoverageSample, method: str, control: str, z: float
) -> tuple[np.ndarray, np.ndarray]:
    r_c, v_c, nv_c = _arm_stats(sample.control)
    r_t, v_t, nv_t = _arm_stats(sample.treatment)
    if control == "naive binomial s.e.":
        v_c, v_t = nv_c, nv_t
        if method == "absolute":
            est, se = r_t - r_c, np.sqrt(v_t + v_c)
        else:
            est = r_t / r_c - 1.0
            se = np.sqrt(v_t / r_c**2 + r_t**2 * v_c / r_c**4)
    elif control == "summed s.e.":
        est, se = r_t - r_c, np.sqrt(v_t) + np.sqrt(v_c)
    elif control == "absolute CI / control mean":
        est, se = r_t / r_c - 1.0, np.sqrt(v_t + v_c) / r_c
    else:  # pragma: no cover - internal table
        raise ValueError(f"unknown control {control!r}.")
    return est - z * se, est + z * se


def _covered(lo: np.ndarray, hi: np.ndarray, truth: float) -> np.ndarray:
    """Whether ``truth`` is in the set per replicate (NaN bounds count as not covering).

    ``lo > hi`` is Fieller's two-ray set ``(-inf, hi] U [lo, inf)`` (``TestResult.ci_kind``).
    """
    with np.errstate(invalid="ignore"):
        return np.where(lo > hi, (truth <= hi) | (truth >= lo), (lo <= truth) & (truth <= hi))


def _exact_t_coverage(n: int) -> float:
    """Exact coverage of the z interval for a normal mean difference, equal n and sigma.

    With equal arms, (d - delta) / sqrt(s_T^2/n + s_C^2/n) is Student t with 2n - 2
    degrees of freedom, so the 95 % z interval covers with P(|t_{2n-2}| < z_0.975).
    """
    z = stats.norm.ppf(0.5 + _CONFIDENCE / 2)
    return float(1.0 - 2.0 * stats.t.sf(z, 2 * n - 2))


# ----------------------------------------------------------------------------- claims
def _claim_kind(dist: str, n: int, method: str) -> str | None:
    """Which claim a coverage cell makes (None: reported in the table, no verdict).

    * ``"calibrated"``: n = 2000 on every distribution and method, except the linear,
      log and bias-corrected relative intervals on the heavy-tailed ratio metric,
      which still under-cover there by 0.6-0.9 points (measured at 20,000 replicates,
      docs/calibration.md) and so make no claim: |c - 0.95| <= tol;
    * ``"exact"``: normal data, absolute difference, n < 2000: the z interval's
      coverage equals the exact finite-n value P(|t_{2n-2}| < 1.96);
    * ``"under"`` (documented limit): heavy-tailed ratio metric, n in {20, 50}, the
      linear, log and bias-corrected relative-lift intervals under-cover:
      c < 0.95 - tol. (Fieller does not: it covers at about 0.94-0.95 there.)
    """
    heavy_relative = dist == "heavy" and method in ("delta", "log", "delta-bc")
    if n == 2000:
        return None if heavy_relative else "calibrated"
    if dist == "normal" and method == "absolute":
        return "exact"
    if heavy_relative and n in (20, 50):
        return "under"
    if method == "fieller" and n in (20, 50):
        return "fieller"  # coverage among bounded sets; their share in the cell's extra
    return None


def _control_name(dist: str, method: str) -> str:
    if dist == "heavy":
        return "naive binomial s.e."
    return "summed s.e." if method == "absolute" else "absolute CI / control mean"


@dataclass(frozen=True, slots=True)
class CoverageCell:
    """One (distribution, n, method) entry of the coverage table."""

    dist: str
    n_per_arm: int
    method: str
    coverage: float
    mcse: float
    n_replicates: int
    control: str
    control_coverage: float
    kind: str | None
    n_undefined: int = 0
    unbounded_share: float = 0.0
    paired_mcse: float = 0.0
    wrong_paired: float = 0.0


def coverage_table(
    ctx: RunContext, n_replicates: int | None = None
) -> tuple[list[CoverageCell], dict[tuple[str, int], CoverageSample]]:
    """Simulate every (distribution, n) scenario and the coverage of every interval.

    Returns the table and the samples' scenario descriptions (for the cells).
    """
    r = n_replicates if n_replicates is not None else ctx.replicates(2_000, 10_000)
    cells: list[CoverageCell] = []
    samples: dict[tuple[str, int], CoverageSample] = {}
    total = len(COVERAGE_DISTRIBUTIONS) * len(COVERAGE_N)
    done = 0
    for dist in COVERAGE_DISTRIBUTIONS:
        for n in COVERAGE_N:
            sample = coverage_moments(dist, n, r, ctx.seed_sequence(f"delta-coverage/{dist}/{n}"))
            samples[(dist, n)] = sample
            for method in COVERAGE_METHODS:
                truth = sample.difference if method == "absolute" else sample.relative_lift
                lo, hi = _interval(sample, method)
                # undefined replicates (a zero control ratio) are counted, not misses;
                # Fieller's coverage is among its bounded sets (their share is shown)
                keep = ~(np.isnan(lo) | np.isnan(hi))
                unbounded = keep & (np.isinf(lo) | np.isinf(hi))
                n_bad = int((~keep).sum())
                if method == "fieller":
                    keep = keep & ~unbounded
                cov = _covered(lo, hi, truth)[keep]
                control = _control_name(dist, method)
                paired_mcse = wrong_paired = 0.0
                heavy_fieller = method == "fieller" and dist == "heavy" and n < 2000
                if heavy_fieller:
                    control = "delta interval on the same data"
                    clo, chi = _interval(sample, "delta")
                else:
                    clo, chi = _control_interval(sample, method, control)
                ccov = _covered(clo, chi, truth)[keep]
                if heavy_fieller and n == 50 and cov.size > 1:  # the paired cell's figures
                    paired = cov.astype(float) - ccov.astype(
                        float
                    )  # Fieller minus delta, same replicates
                    paired_mcse = float(paired.std(ddof=1) / math.sqrt(paired.size))
                    wlo, whi = _fieller_unsquared_interval(sample)
                    wrong_paired = float(
                        np.mean(_covered(wlo, whi, truth)[keep].astype(float) - ccov)
                    )
                cells.append(
                    CoverageCell(
                        dist=dist,
                        n_per_arm=n,
                        method=method,
                        coverage=float(cov.mean()),
                        mcse=float(math.sqrt(cov.mean() * (1 - cov.mean()) / max(cov.size, 1))),
                        n_replicates=int(cov.size),
                        control=control,
                        control_coverage=float(ccov.mean()),
                        kind=_claim_kind(dist, n, method),
                        n_undefined=n_bad,
                        unbounded_share=float(unbounded.mean()),
                        paired_mcse=paired_mcse,
                        wrong_paired=wrong_paired,
                    )
                )
            done += 1
            if ctx.progress is not None:
                ctx.progress(done, total)
    return cells, samples


def _fieller_unsquared_interval(sample: CoverageSample) -> tuple[np.ndarray, np.ndarray]:
    """Fieller's set with the quantile not squared: z in place of z^2 in its quadratic.

    A realistic slip (the negative control of the heavy-tailed n = 50 Fieller cell).
    The quadratic of Fieller (1954) has ``z^2``; writing ``z`` gives the shipped set at
    the confidence level whose normal quantile is ``sqrt(z)``, ``2 Phi(sqrt(1.96)) - 1
    = 0.84``, so the shipped function computes it.
    """
    z = stats.norm.ppf(0.5 + _CONFIDENCE / 2)
    res = _test(sample, "fieller", confidence_level=float(2 * stats.norm.cdf(math.sqrt(z)) - 1))
    return np.asarray(res.ci_low, dtype=np.float64), np.asarray(res.ci_high, dtype=np.float64)


def _t_interval_coverage(sample: CoverageSample) -> float:
    """Coverage of the Student-t interval (2n - 2 df) for a normal mean difference (exact 0.95)."""
    r_c, v_c, _ = _arm_stats(sample.control)
    r_t, v_t, _ = _arm_stats(sample.treatment)
    n = float(np.asarray(sample.control.n).ravel()[0])
    q = stats.t.ppf(0.5 + _CONFIDENCE / 2, 2 * n - 2)
    d, se = r_t - r_c, np.sqrt(v_t + v_c)
    return float(_covered(d - q * se, d + q * se, sample.difference).mean())


_TABLE_KEYS = (
    "dist",
    "n_per_arm",
    "method",
    "coverage",
    "mcse",
    "control",
    "control_coverage",
    "n_undefined",
    "unbounded_share",
)


def plot_coverage(results: list[CheckResult]):
    """Coverage vs n per method and distribution, with the z-s.e. band around 0.95.

    Reads the full table from ``extra["table"]`` of the first cell (every cell carries
    it), including the cells that make no claim.
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 3.4))
    if not results:
        return fig
    table = results[0].extra.get("table", [])
    z = results[0].extra.get("z", 4.0)
    dists = list(COVERAGE_DISTRIBUTIONS)
    axes = fig.subplots(1, len(dists), sharey=True)
    for ax, dist in zip(axes, dists, strict=True):
        for method in COVERAGE_METHODS:
            rows = sorted(
                (t for t in table if t["dist"] == dist and t["method"] == method),
                key=lambda t: t["n_per_arm"],
            )
            if not rows:
                continue
            ns = [t["n_per_arm"] for t in rows]
            ax.plot(ns, [t["coverage"] for t in rows], marker="o", label=method)
        if table:
            r = table[0]["n_replicates"]
            half = z * math.sqrt(0.95 * 0.05 / r)
            ax.axhspan(0.95 - half, 0.95 + half, color="0.85", zorder=0)
        ax.axhline(0.95, color="k", lw=0.8)
        ax.set_xscale("log")
        ax.set_title(dist)
        ax.set_xlabel("users per arm")
    axes[0].set_ylabel("coverage of the 95% CI")
    axes[0].legend(fontsize=7, loc="lower right")
    fig.suptitle(f"Delta-method CI coverage (grey: 0.95 ± {z:g} Monte Carlo s.e.)")
    fig.tight_layout()
    return fig


@register(
    "delta-coverage",
    claim=(
        "95% CIs for the absolute difference and the relative lift (linear delta, log, "
        "Fieller, bias-corrected delta) cover at 0.95 within z Monte Carlo s.e. at "
        "2,000 users per arm on normal, Poisson and Bernoulli data (absolute and Fieller "
        "also on the heavy-tailed ratio metric); the "
        "normal z interval matches its exact finite-n coverage P(|t_2n-2| < 1.96) at "
        "every n; documented limit: on the heavy-tailed ratio metric at 20 and 50 users "
        "per arm the linear, log and bias-corrected relative-lift CIs under-cover "
        "(coverage below 0.95 - tolerance). Fieller at 20 and 50 users per arm: coverage "
        "among its bounded sets (the unbounded share in the claim) equals the z "
        "interval's exact finite-n coverage P(|t_2n-2| < 1.96) on normal, Poisson and "
        "Bernoulli data; on heavy tails it is below 0.95 at n = 20 (most sets "
        "unbounded) and at n = 50 (0.93), where it still covers more often than the "
        "delta interval on the same replicates (paired difference > z s.e.); "
        "delta-bc's lift estimate is unbiased at n = 50 (Bernoulli) where the plain "
        "delta estimate is not. Undefined "
        "replicates (a zero control ratio) are counted per cell, not scored. "
        "Band: z = 4 s.e. (6.3e-5 per cell)."
    ),
    reference="Deng, Knoblich, Lu (KDD 2018), §3 and Table 1; Fieller (1954); docs/theory.md §1.",
    published=(
        "Deng et al. 2018 Table 1 design (coverage by n and distribution); the issue's "
        "figure ≈0.91 for the linear relative CI at 50 users per arm on skewed data."
    ),
    group="ab",
    plot=plot_coverage,
)
def check_delta_coverage(ctx: RunContext) -> list[CheckResult]:
    """Coverage table of the delta-method intervals (see the registered claim)."""
    cells, samples = coverage_table(ctx)
    table = [
        {**{k: getattr(c, k) for k in _TABLE_KEYS}, "n_replicates": c.n_replicates, "claim": c.kind}
        for c in cells
    ]
    t_cov = {n: _t_interval_coverage(samples[("normal", n)]) for n in COVERAGE_N}
    out: list[CheckResult] = []
    for c in cells:
        if c.kind is None:
            continue
        # the full table (cells without a claim included) rides on the first cell only
        extra_table = {"table": table} if not out else {}
        sample = samples[(c.dist, c.n_per_arm)]
        seed = int(ctx.seed_sequence(f"delta-coverage/{c.dist}/{c.n_per_arm}").entropy)
        name = f"delta-coverage/{c.dist}/n={c.n_per_arm}/{c.method}"
        r = c.n_replicates
        figure = c.coverage
        if c.kind == "calibrated":
            band = coverage(np.zeros(r, bool), expected=0.95, z=ctx.z)
            expected, tol = 0.95, band.tolerance
            rule = "within"
            claim = f"coverage = 0.95 ± {ctx.z:g} s.e. ({c.method}, {c.dist}, n={c.n_per_arm})"
            ctrl = NegativeControl(c.control, c.control_coverage)
        elif c.kind == "exact":
            expected = _exact_t_coverage(c.n_per_arm)
            tol = ctx.z * math.sqrt(expected * (1 - expected) / r)
            rule = "within"
            claim = (
                f"z-interval coverage equals the exact P(|t_{2 * c.n_per_arm - 2}| < 1.96) = "
                f"{expected:.4f} ± {ctx.z:g} s.e. (normal, n={c.n_per_arm})"
            )
            ctrl = NegativeControl(c.control, c.control_coverage)
        elif c.kind == "fieller" and c.dist == "heavy" and c.n_per_arm == 50:
            # Fieller does not reach 0.95 here (0.929 at 10,000 replicates) but covers far
            # more often than the delta interval on the same replicates: claim the paired
            # difference, which the delta interval in Fieller's place makes exactly 0
            figure, expected, rule = c.coverage - c.control_coverage, 0.0, "above"
            tol = ctx.z * c.paired_mcse
            claim = (
                f"Fieller among its bounded sets covers the lift more often than the delta "
                f"interval on the same replicates (paired difference > {ctx.z:g} s.e.; "
                f"Fieller {c.coverage:.4f}, delta {c.control_coverage:.4f}, below 0.95; "
                f"{c.unbounded_share:.1%} unbounded; heavy, n={c.n_per_arm})"
            )
            ctrl = NegativeControl(
                "Fieller with z in place of z^2 (quantile not squared) minus delta",
                c.wrong_paired,
            )
        elif c.kind == "fieller":
            rule = "within"
            # Fieller uses the normal quantile, so on light-tailed data at small n it
            # covers like the z interval can: the exact finite-n coverage of the z
            # interval, P(|t_{2n-2}| < 1.96) (0.9425 at n = 20, 0.9474 at n = 50; the
            # full profile puts Bernoulli at n = 20 at 0.939, 1.3 s.e. below 0.95 - tol)
            expected = 0.95 if c.dist == "heavy" else _exact_t_coverage(c.n_per_arm)
            tol = coverage(np.zeros(r, bool), expected=expected, z=ctx.z).tolerance
            if c.dist == "heavy" and c.n_per_arm == 20:
                # documented limit: most sets are unbounded, the bounded ones under-cover
                rule = "below"
            text = {
                "within": f"coverage = exact z-interval coverage {expected:.4f} ± ",
                "below": "documented limit: coverage < 0.95 - ",
            }[rule]
            claim = (
                f"Fieller among its bounded sets ({c.unbounded_share:.1%} of the intervals "
                f"unbounded): {text}{ctx.z:g} s.e. ({c.dist}, n={c.n_per_arm})"
            )
            ctrl = NegativeControl(c.control, c.control_coverage)
            if rule == "below":
                ctrl = NegativeControl(
                    f"Student-t interval, normal data, n={c.n_per_arm} (exact 0.95)",
                    t_cov[c.n_per_arm],
                )
        else:  # "under": documented limit
            expected = 0.95
            tol = ctx.z * math.sqrt(0.95 * 0.05 / r)
            rule = "below"
            t_c = t_cov[c.n_per_arm]
            claim = (
                f"documented limit: the {c.method} relative-lift CI under-covers on the "
                f"heavy-tailed ratio metric at n={c.n_per_arm} (coverage < 0.95 - "
                f"{ctx.z:g} s.e.)"
            )
            ctrl = NegativeControl(
                f"Student-t interval, normal data, n={c.n_per_arm} (exact 0.95; must not "
                "be flagged as under-covering)",
                t_c,
            )
        out.append(
            CheckResult(
                name=name,
                claim=claim,
                scenario=sample.scenario,
                figure=float(figure),
                expected=float(expected),
                tolerance=float(tol),
                rule=rule,
                seed_key=f"delta-coverage/{c.dist}/{c.n_per_arm}",
                n_undefined=c.n_undefined,
                n_replicates=r,
                seed=seed,
                negative_control=ctrl,
                extra={
                    "dist": c.dist,
                    "n_per_arm": c.n_per_arm,
                    "method": c.method,
                    "kind": "separation" if rule == "above" else c.kind,
                    "coverage": c.coverage,
                    "control_coverage": c.control_coverage,
                    "unbounded_share": c.unbounded_share,
                    "mcse": c.mcse,
                    "z": ctx.z,
                    **extra_table,
                },
            )
        )
    for dist in BIAS_DISTRIBUTIONS:
        out.append(_bias_cell(ctx, samples[(dist, BIAS_N)], dist, BIAS_N))
    out.append(_separation_cell(ctx, samples[("heavy", 20)], 20))
    return out


def _log_interval_unsquared(sample: CoverageSample) -> tuple[np.ndarray, np.ndarray]:
    """Log-scale lift interval with the delta variance of log R taken as var(R) / R.

    A realistic slip (the negative control of the separation cell): the log-scale
    variance ``var(log R) ≈ var(R) / R^2`` (docs/theory.md §1) written without the
    square, ``var_T / R_T + var_C / R_C``. For a CTR (R < 1) the interval is far too
    narrow, so it covers less often than the linear delta interval, not more.
    """
    r_c, v_c, _ = _arm_stats(sample.control)
    r_t, v_t, _ = _arm_stats(sample.treatment)
    z = stats.norm.ppf(0.5 + _CONFIDENCE / 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_lift = np.log(r_t / r_c)
        se = np.sqrt(v_t / r_t + v_c / r_c)
        return np.expm1(log_lift - z * se), np.expm1(log_lift + z * se)


def _separation_cell(ctx: RunContext, sample: CoverageSample, n: int) -> CheckResult:
    """On heavy tails at small n the log interval covers better than the linear delta one."""
    truth = sample.relative_lift
    lo_log, hi_log = _interval(sample, "log")
    lo_d, hi_d = _interval(sample, "delta")
    lo_w, hi_w = _log_interval_unsquared(sample)
    keep = ~(np.isnan(lo_log) | np.isnan(hi_log) | np.isnan(lo_d) | np.isnan(hi_d))
    cov_delta = _covered(lo_d, hi_d, truth)[keep].astype(float)
    diff = _covered(lo_log, hi_log, truth)[keep] - cov_delta
    band = mean_band(diff, z=ctx.z)
    wrong = float(np.mean(_covered(lo_w, hi_w, truth)[keep] - cov_delta))
    return CheckResult(
        name=f"delta-coverage/heavy/n={n}/log-minus-delta",
        claim=(
            "the methods differ where they should: on the heavy-tailed ratio metric the log "
            "interval covers the lift more often than the linear delta interval (paired "
            f"difference > {ctx.z:g} s.e., n={n})"
        ),
        scenario=sample.scenario,
        figure=band.figure,
        expected=0.0,
        tolerance=band.tolerance,
        rule="above",
        n_replicates=int(keep.sum()),
        n_undefined=int((~keep).sum()),
        seed=ctx.seed,
        seed_key=f"delta-coverage/heavy/{n}",
        negative_control=NegativeControl(
            "log interval with var(log R) = var(R)/R (square dropped) minus delta", wrong
        ),
        extra={"kind": "separation", "mcse": band.mcse},
    )


#: Distributions of the delta-bc bias cells: the plain delta estimate of the lift has a
#: bias of several Monte Carlo s.e. there, so a correction can be judged.
BIAS_DISTRIBUTIONS: tuple[str, ...] = ("bernoulli",)
#: Users per arm of the delta-bc bias cells. At n = 20 the correction leaves an O(1/n^2)
#: remainder (-0.015 against the plain bias 0.077 at 10,000 replicates, Bernoulli) that
#: the full profile resolves; at n = 50 it is -0.002 ± 0.009 (full profile, 10,000
#: replicates), the plain bias 0.028.
BIAS_N: int = 50


def _bias_cell(ctx: RunContext, sample: CoverageSample, dist: str, n: int) -> CheckResult:
    """delta-bc's lift estimate is unbiased at small n; the plain delta one is not."""
    truth = sample.relative_lift
    bc = np.asarray(_test(sample, "delta-bc").estimate, dtype=np.float64)
    plain = np.asarray(_test(sample, "delta").estimate, dtype=np.float64)
    keep = np.isfinite(bc) & np.isfinite(plain)
    band = mean_band(bc[keep] - truth, z=ctx.z)
    return CheckResult(
        name=f"delta-coverage/{dist}/n={n}/delta-bc-bias",
        claim=(
            "delta-bc removes the O(1/n) bias of the relative lift: mean(estimate - true "
            f"lift {truth:g}) = 0 ± {ctx.z:g} s.e. ({dist}, n={n})"
        ),
        scenario=sample.scenario,
        figure=band.figure,
        expected=0.0,
        tolerance=band.tolerance,
        n_replicates=int(keep.sum()),
        n_undefined=int((~keep).sum()),
        seed=ctx.seed,
        seed_key=f"delta-coverage/{dist}/{n}",
        negative_control=NegativeControl(
            "plain delta estimate Ybar/Xbar - 1", float(np.mean(plain[keep] - truth))
        ),
        extra={
            "kind": "bias",
            "mcse": band.mcse,
            "plain_bias": float(np.mean(plain[keep] - truth)),
        },
    )
