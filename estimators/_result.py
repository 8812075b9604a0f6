"""Result objects shared by every test in :mod:`estimators`."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

FloatOrArray = float | npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class TestResult:
    """Treatment-minus-control (or relative) effect with its uncertainty.

    Scalars are Python floats when the inputs were per-unit arrays (or scalar
    moments); they are ``float64`` arrays of the broadcast replicate shape when the
    inputs were :class:`~estimators.RatioMoments` whose fields are arrays (the
    vectorised path of the ``*_from_moments`` functions).

    Attributes
    ----------
    estimate : float or ndarray
        The effect: ``treatment - control`` (absolute) or ``treatment / control - 1``
        (relative lift). With ``ci_method="delta-bc"`` the bias-corrected lift.
    std_error : float or ndarray
        Standard error of ``estimate`` (delta method for the lift, on the scale of
        ``estimate`` for every ``ci_method``).
    statistic : float or ndarray
        Test statistic of the null "no effect" (z or t). For ``ci_method="log"`` it
        is ``log(R_T / R_C)`` over its log-scale standard error, for
        ``ci_method="fieller"`` it is ``(R_T - R_C) / sqrt(var_T + var_C)`` (Fieller's
        pivot at lift 0), otherwise ``estimate / std_error``.
    pvalue : float or ndarray
        P-value of ``statistic`` for ``alternative``.
    ci_low, ci_high : float or ndarray
        Confidence interval for the effect; one-sided alternatives have one
        infinite end. A Fieller interval is ``(-inf, inf)`` when the control arm's
        ratio is not significantly different from 0 at the chosen level.
    confidence_level : float
        Confidence level of ``(ci_low, ci_high)``.
    alternative : {"two-sided", "less", "greater"}
        Alternative hypothesis of ``pvalue`` (and side of the interval).
    n_control, n_treatment : float or ndarray
        Number of randomisation units in each arm (users, not sessions).
    method : str
        What was computed, e.g. ``"ratio/delta/relative/z"`` or ``"cuped/pooled"``.
    df : float or ndarray
        Degrees of freedom of the reference distribution; ``inf`` for the normal.
    control_value, treatment_value : float or ndarray
        The per-arm statistics compared (ratios, means, or CUPED-adjusted means).
    theta : ndarray or None
        CUPED / regression coefficients of the covariates; shape ``(k,)`` for one
        coefficient vector, ``(2, k)`` (control row, treatment row) for
        ``theta="per_arm"``; replicate axes lead on the vectorised path.
    variance_reduction : float, ndarray or None
        ``1 - Var(adjusted estimate) / Var(unadjusted estimate)`` achieved by CUPED
        (both variances estimated on the same data).
    """

    __test__ = False  # keep pytest from collecting this class when it is imported

    estimate: FloatOrArray
    std_error: FloatOrArray
    statistic: FloatOrArray
    pvalue: FloatOrArray
    ci_low: FloatOrArray
    ci_high: FloatOrArray
    confidence_level: float
    alternative: Literal["two-sided", "less", "greater"]
    n_control: FloatOrArray
    n_treatment: FloatOrArray
    method: str
    df: FloatOrArray = math.inf
    control_value: FloatOrArray | None = None
    treatment_value: FloatOrArray | None = None
    theta: npt.NDArray[np.float64] | None = None
    variance_reduction: FloatOrArray | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the fields as a plain ``dict`` (arrays are kept as arrays).

        Returns
        -------
        dict
            Field name to value, in declaration order.
        """
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def summary(self) -> str:
        """Return a short human-readable summary.

        Returns
        -------
        str
            A few lines: method, effect with CI, statistic and p-value, arm sizes,
            and the CUPED figures where they apply. Vectorised results are summarised
            by their shape.
        """
        if np.ndim(self.estimate) > 0:
            shape = np.shape(self.estimate)
            return (
                f"{self.method}: vectorised result over {shape} replicates; "
                f"mean estimate {np.nanmean(self.estimate):.6g}, "
                f"share p < 0.05: {np.nanmean(np.asarray(self.pvalue) < 0.05):.4g}"
            )
        pct = f"{100 * self.confidence_level:g}%"
        lines = [
            f"{self.method} ({self.alternative})",
            f"  estimate   {self.estimate:.6g}  (s.e. {self.std_error:.6g})",
            f"  {pct} CI    [{self.ci_low:.6g}, {self.ci_high:.6g}]",
            f"  statistic  {self.statistic:.6g}  p-value {self.pvalue:.4g}"
            + ("" if math.isinf(self.df) else f"  df {self.df:.4g}"),
            f"  n control  {self.n_control:g}  n treatment {self.n_treatment:g}",
        ]
        if self.control_value is not None and self.treatment_value is not None:
            lines.append(
                f"  control    {self.control_value:.6g}  treatment {self.treatment_value:.6g}"
            )
        if self.theta is not None:
            theta = np.array2string(np.asarray(self.theta), precision=4)
            lines.append(f"  theta      {theta}")
        if self.variance_reduction is not None:
            lines.append(f"  variance reduction {self.variance_reduction:.4g}")
        return "\n".join(lines)
