"""Every treatment arm against control for every metric, from a SQL source."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from ..cuped import cuped_test_from_moments
from ..moments import RatioMoments
from ..ratio import ratio_test_from_moments
from ..srm import SRMResult, srm_test

ADJUSTMENTS = ("holm", "bh", "none")
#: SRM p-values below this trigger the warning line.
SRM_ALARM = 0.001


def adjust_pvalues(pvalues: Sequence[float], method: str = "holm") -> np.ndarray:
    """Adjust p-values for multiple comparisons.

    Parameters
    ----------
    pvalues : sequence of float
        The family's p-values.
    method : {"holm", "bh", "none"}, default "holm"
        Holm's step-down (family-wise error rate) [1]_, Benjamini-Hochberg (false
        discovery rate) [2]_ or none.

    Returns
    -------
    ndarray
        Adjusted p-values in the input order.

    Notes
    -----
    Holm: with ``p_(1) <= ... <= p_(m)``, ``adj_(i) = max_{j <= i} min(1, (m - j + 1)
    p_(j))``. Benjamini-Hochberg is ``scipy.stats.false_discovery_control``.

    References
    ----------
    .. [1] S. Holm, "A Simple Sequentially Rejective Multiple Test Procedure",
       Scand. J. Statist. 6 (1979) 65-70.
    .. [2] Y. Benjamini, Y. Hochberg, "Controlling the False Discovery Rate",
       J. R. Stat. Soc. B 57 (1995) 289-300.

    Examples
    --------
    >>> adjust_pvalues([0.01, 0.04, 0.03]).round(3).tolist()
    [0.03, 0.06, 0.06]
    """
    p = np.asarray(pvalues, dtype=np.float64)
    if method not in ADJUSTMENTS:
        raise ValueError(f"`adjust` must be one of {list(ADJUSTMENTS)}; got {method!r}.")
    if p.ndim != 1 or ((p < 0) | (p > 1)).any():
        raise ValueError(f"`pvalues` must be a 1-d sequence in [0, 1]; got {p.tolist()}.")
    if method == "none" or p.size == 0:
        return p.copy()
    if method == "bh":
        return stats.false_discovery_control(p, method="bh")
    order = np.argsort(p, kind="stable")
    m = p.size
    stepped = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out = np.empty(m)
    out[order] = np.minimum(stepped, 1.0)
    return out


@dataclass(frozen=True, slots=True)
class Metric:
    """A metric to analyse: ``numerator / denominator`` or the mean of ``numerator``."""

    numerator: str
    denominator: str | None = None

    @classmethod
    def parse(cls, text: str) -> Metric:
        """Parse ``"NUM"`` or ``"NUM/DEN"``."""
        parts = [p.strip() for p in text.split("/")]
        if len(parts) > 2 or not all(parts):
            raise ValueError(f"a metric must be NUM or NUM/DEN (column names); got {text!r}.")
        return cls(parts[0], parts[1] if len(parts) == 2 else None)

    @property
    def name(self) -> str:
        """``NUM/DEN`` or ``NUM``."""
        return (
            self.numerator if self.denominator is None else f"{self.numerator}/{self.denominator}"
        )


@dataclass(frozen=True, slots=True)
class Analysis:
    """Outcome of :func:`analyze_moments`: one row per (metric, treatment arm), and SRM.

    Attributes
    ----------
    control : str
        Control arm label.
    arms : list of str
        Every arm label.
    rows : list of dict
        Per metric and treatment arm: arm sizes, values, absolute effect with CI and
        p-value (CUPED with covariates, else delta method), adjusted p-value,
        relative lift with its delta-method CI.
    srm : SRMResult
        Sample-ratio-mismatch test of the unit counts per arm (equal shares).
    adjust : str
        P-value adjustment across all rows.
    warnings : list of str
        Lines to show the user (e.g. the SRM alarm).
    """

    control: str
    arms: list[str]
    rows: list[dict[str, Any]]
    srm: SRMResult
    adjust: str
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready ``dict``.

        Returns
        -------
        dict
            ``control``, ``arms``, ``adjust``, ``srm``, ``results`` and ``warnings``.
        """
        return {
            "control": self.control,
            "arms": self.arms,
            "adjust": self.adjust,
            "srm": self.srm.to_dict(),
            "results": self.rows,
            "warnings": self.warnings,
        }

    def to_table(self) -> str:
        """Return a plain-text table of the rows, the SRM line and the warnings.

        Returns
        -------
        str
            Aligned columns, one line per (metric, arm).
        """
        head = ["metric", "arm", "n", "control", "treatment", "effect", "ci", "p", "p_adj", "lift"]
        lines = [head]
        for r in self.rows:
            lines.append(
                [
                    r["metric"],
                    r["arm"],
                    f"{r['n_treatment']:.0f}/{r['n_control']:.0f}",
                    f"{r['control_value']:.6g}",
                    f"{r['treatment_value']:.6g}",
                    f"{r['estimate']:+.4g}",
                    f"[{r['ci_low']:.4g}, {r['ci_high']:.4g}]",
                    f"{r['pvalue']:.3g}",
                    f"{r['pvalue_adjusted']:.3g}",
                    f"{100 * r['relative_estimate']:+.2f}% "
                    f"[{100 * r['relative_ci_low']:.2f}, {100 * r['relative_ci_high']:.2f}]",
                ]
            )
        widths = [max(len(row[j]) for row in lines) for j in range(len(head))]
        text = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in lines]
        counts = ", ".join(f"{a}={c:.0f}" for a, c in zip(self.arms, self.srm.counts, strict=True))
        text.append(f"SRM ({self.srm.method}): {counts}; p = {self.srm.pvalue:.3g}")
        text.append(f"p_adj: {self.adjust}; control arm: {self.control}")
        text += [f"WARNING: {w}" for w in self.warnings]
        return "\n".join(text)


def _f(x: Any) -> float:
    return float(x)


def analyze_moments(
    moments: dict[str, dict[str, RatioMoments]],
    *,
    control: str | None = None,
    covariate_ratios: Sequence[tuple[int, int]] = (),
    adjust: str = "holm",
    confidence_level: float = 0.95,
) -> Analysis:
    """Compare every treatment arm with control for every metric.

    Parameters
    ----------
    moments : dict of str to dict of str to RatioMoments
        Metric name -> arm label -> moments (all metrics with the same arms).
    control : str, optional
        Control label; default ``"control"`` when present, else the first label.
    covariate_ratios : sequence of (int, int)
        Ratio covariates for CUPED, as in :func:`~estimators.cuped_test_from_moments`.
    adjust : {"holm", "bh", "none"}, default "holm"
        Adjustment of the p-values across metrics x arms (:func:`adjust_pvalues`).
    confidence_level : float, default 0.95
        Level of every interval.

    Returns
    -------
    Analysis
        Rows, SRM test and warnings.
    """
    if adjust not in ADJUSTMENTS:
        raise ValueError(f"`adjust` must be one of {list(ADJUSTMENTS)}; got {adjust!r}.")
    first = next(iter(moments.values()))
    arms = list(first)
    if control is None:
        control = "control" if "control" in arms else arms[0]
    if control not in arms:
        raise LookupError(f"control label {control!r} is not an arm label; the labels are {arms}.")
    if len(arms) < 2:
        raise LookupError(f"only one arm label ({arms[0]!r}) in the data; nothing to compare.")
    rows = []
    for metric, per_arm in moments.items():
        mc = per_arm[control]
        for label in arms:
            if label == control:
                continue
            mt = per_arm[label]
            rel = ratio_test_from_moments(mt, mc, relative=True, confidence_level=confidence_level)
            if mt.k:
                res = cuped_test_from_moments(
                    mt, mc, covariate_ratios=covariate_ratios, confidence_level=confidence_level
                )
            else:
                res = ratio_test_from_moments(mt, mc, confidence_level=confidence_level)
            rows.append(
                {
                    "metric": metric,
                    "arm": label,
                    "control": control,
                    "method": res.method,
                    "n_control": _f(res.n_control),
                    "n_treatment": _f(res.n_treatment),
                    "control_value": _f(res.control_value),
                    "treatment_value": _f(res.treatment_value),
                    "estimate": _f(res.estimate),
                    "std_error": _f(res.std_error),
                    "ci_low": _f(res.ci_low),
                    "ci_high": _f(res.ci_high),
                    "pvalue": _f(res.pvalue),
                    "relative_estimate": _f(rel.estimate),
                    "relative_ci_low": _f(rel.ci_low),
                    "relative_ci_high": _f(rel.ci_high),
                    "relative_method": rel.method,
                    "variance_reduction": None
                    if res.variance_reduction is None
                    else _f(res.variance_reduction),
                }
            )
    adjusted = adjust_pvalues([r["pvalue"] for r in rows], adjust)
    for r, p in zip(rows, adjusted, strict=True):
        r["pvalue_adjusted"] = float(p)
    srm = srm_test([float(first[a].n) for a in arms])
    warnings = []
    if srm.pvalue < SRM_ALARM:
        warnings.append(
            f"sample-ratio mismatch: p = {srm.pvalue:.3g} < {SRM_ALARM} for equal shares "
            "across arms; the assignment or logging may be broken and the effects are suspect."
        )
    return Analysis(control, arms, rows, srm, adjust, warnings)
