"""Result objects shared by every test in :mod:`estimators`."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

FloatOrArray = float | npt.NDArray[np.float64]


class EstimatorWarning(RuntimeWarning):
    """A result is still defined but should not be trusted as it stands.

    Raised (as a warning) e.g. when the second-order bias correction of a lift
    exceeds its standard error (control ratio near 0).
    """


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
        Confidence set for the effect; one-sided alternatives have one infinite end.
        Usually an interval ``[ci_low, ci_high]``. Fieller's exact set
        (``ci_method="fieller"``) may instead be two rays, which is encoded as
        ``ci_low > ci_high``: the set is ``(-inf, ci_high] U [ci_low, inf)``; or the
        whole line ``(-inf, inf)``. Use :attr:`ci_kind` and :meth:`ci_contains`
        rather than comparing with the ends directly.
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

    @property
    def ci_kind(self) -> str | npt.NDArray[np.str_]:
        """Shape of the confidence set: "interval", "rays", "line" or "undefined".

        "interval" includes one-sided intervals with one infinite end; "rays" is
        ``(-inf, ci_high] U [ci_low, inf)`` (Fieller only, ``ci_low > ci_high``);
        "line" is ``(-inf, inf)``; "undefined" marks a NaN replicate. A string for
        a scalar result, an array of strings on the vectorised path.

        Examples
        --------
        >>> from estimators import ratio_test
        >>> ratio_test([1, 2, 3], [2, 2, 3], [1, 0, 2], [2, 2, 2]).ci_kind
        'interval'
        """
        low = np.asarray(self.ci_low, dtype=float)
        high = np.asarray(self.ci_high, dtype=float)
        kind = np.where(
            np.isnan(low) | np.isnan(high),
            "undefined",
            np.where(
                np.isneginf(low) & np.isposinf(high),
                "line",
                np.where(low > high, "rays", "interval"),
            ),
        )
        return str(kind) if kind.ndim == 0 else kind

    def ci_contains(self, value: float) -> bool | npt.NDArray[np.bool_]:
        """Whether ``value`` lies in the confidence set (False for a NaN replicate).

        Parameters
        ----------
        value : float
            An effect on the scale of ``estimate`` (e.g. 0 for "no lift").

        Returns
        -------
        bool or ndarray of bool
            ``ci_low <= value <= ci_high`` for an interval,
            ``value <= ci_high or value >= ci_low`` for two rays.
        """
        low = np.asarray(self.ci_low, dtype=float)
        high = np.asarray(self.ci_high, dtype=float)
        inside = np.where(
            low > high, (value <= high) | (value >= low), (low <= value) & (value <= high)
        )
        return bool(inside) if inside.ndim == 0 else inside

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
