"""Reusable property checks for any estimator of the calibrate protocol.

Call them inside your own hypothesis tests, with the inputs drawn by
:mod:`validation.strategies`::

    @given(strategies.estimator_inputs("ratio"))
    def test_my_estimator(args):
        properties.check_all(my_estimator, args, kind="ratio")

Each check calls the estimator (``estimator(*args)``), reads its ``estimate``,
``std_error``, ``ci_low``, ``ci_high`` and ``pvalue``
(:func:`validation.calibrate.estimator_output`) and raises ``AssertionError`` with a
message naming the estimator, the property, the field and both values when the
property fails. Exceptions the estimator raises propagate unchanged (raising a clear
error on degenerate input is allowed; returning NaN is not).

Properties (docs/theory.md §1; the exact identities of the delta method [1]_):

* :func:`check_scale_invariance`: a ratio metric is unchanged when V and M are
  multiplied by the same factor; a mean metric (and a covariate adjustment) is
  equivariant: estimate, s.e. and interval scale with Y, the p-value does not; a
  covariate adjustment is unchanged when X is rescaled;
* :func:`check_arm_swap`: swapping the arms flips the sign of a difference, keeps
  its s.e. and p-value and reflects the interval (a relative lift l becomes
  1/(1 + l) - 1);
* :func:`check_ci_contains_estimate`;
* :func:`check_no_silent_nan`: every field is a number (no NaN), the s.e. is finite.

References
----------
.. [1] A. Deng, U. Knoblich, J. Lu, "Applying the Delta Method in Metric Analytics:
   A Practical Guide with Novel Ideas", KDD 2018.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from validation.calibrate import (
    EstimatorOutput,
    ProtocolError,
    _check_kind,
    _name,
    estimator_output,
    infer_kind,
)

__all__ = [
    "check_all",
    "check_arm_swap",
    "check_ci_contains_estimate",
    "check_no_silent_nan",
    "check_scale_invariance",
]

_FIELDS = ("estimate", "std_error", "ci_low", "ci_high", "pvalue")


def _kind(estimator: Callable[..., Any], kind: str | None) -> str:
    return infer_kind(estimator) if kind is None else _check_kind(kind)


def _args(args: Sequence[Any], kind: str) -> tuple[Any, ...]:
    need = {"ratio": 4, "mean": 2, "covariate": 3}[kind]
    if len(args) != need:
        raise ValueError(
            f"`args` of a {kind!r} estimator must have {need} arrays; got {len(args)}."
        )
    return tuple(np.asarray(a) for a in args)


def _call(estimator: Callable[..., Any], args: Sequence[Any], what: str) -> EstimatorOutput:
    result = estimator(*args)
    try:
        return estimator_output(result)
    except ProtocolError as exc:
        raise AssertionError(f"{_name(estimator)} on {what}: {exc}") from None


def _close(a: float, b: float, scale: float, rtol: float) -> bool:
    if math.isinf(a) or math.isinf(b):
        return a == b
    return math.isclose(a, b, rel_tol=rtol, abs_tol=rtol * scale)


def _compare(
    estimator: Callable[..., Any],
    prop: str,
    expected: dict[str, float],
    got: EstimatorOutput,
    scale: float,
    rtol: float,
) -> None:
    for name, want in expected.items():
        value = getattr(got, name)
        tol_scale = 1.0 if name == "pvalue" else scale
        if not _close(value, want, tol_scale, rtol):
            raise AssertionError(
                f"{_name(estimator)}: {prop}: `{name}` should be {want!r}, got {value!r} "
                f"(relative tolerance {rtol:g})."
            )


def check_no_silent_nan(
    estimator: Callable[..., Any], args: Sequence[Any], *, kind: str | None = None
) -> EstimatorOutput:
    """Assert that the estimator returns numbers, not NaN, on valid input.

    Parameters
    ----------
    estimator : callable
        An estimator of the calibrate protocol.
    args : sequence of array_like
        Its positional arguments (e.g. from :func:`validation.strategies.estimator_inputs`).
    kind : {"ratio", "mean", "covariate"} or None
        None infers it from the signature.

    Returns
    -------
    EstimatorOutput
        The checked output.

    Raises
    ------
    AssertionError
        If a field is missing, NaN or not a scalar, the estimate or s.e. is infinite,
        the s.e. negative, the p-value outside [0, 1] or ``ci_low > ci_high``.

    Examples
    --------
    >>> import estimators
    >>> check_no_silent_nan(estimators.mean_test, ([3.0, 5.0, 4.0], [1.0, 2.0, 3.0])).estimate
    2.0
    """
    kind = _kind(estimator, kind)
    return _call(estimator, _args(args, kind), "valid input")


def check_ci_contains_estimate(
    estimator: Callable[..., Any], args: Sequence[Any], *, kind: str | None = None
) -> None:
    """Assert ``ci_low <= estimate <= ci_high``.

    Parameters
    ----------
    estimator : callable
        An estimator of the calibrate protocol.
    args : sequence of array_like
        Its positional arguments.
    kind : {"ratio", "mean", "covariate"} or None
        None infers it from the signature.

    Raises
    ------
    AssertionError
        If the interval does not contain the estimate (or the output is not valid).
    """
    out = check_no_silent_nan(estimator, args, kind=kind)
    slack = 1e-12 * max(1.0, abs(out.estimate))
    if not (out.ci_low - slack <= out.estimate <= out.ci_high + slack):
        raise AssertionError(
            f"{_name(estimator)}: the interval [{out.ci_low!r}, {out.ci_high!r}] does not "
            f"contain the estimate {out.estimate!r}."
        )


def check_scale_invariance(
    estimator: Callable[..., Any],
    args: Sequence[Any],
    *,
    kind: str | None = None,
    estimand: str = "difference",
    factor: float = 3.0,
    rtol: float = 1e-8,
) -> None:
    """Assert invariance (ratio) or equivariance (mean, covariate) under rescaling.

    Parameters
    ----------
    estimator : callable
        An estimator of the calibrate protocol.
    args : sequence of array_like
        Its positional arguments.
    kind : {"ratio", "mean", "covariate"} or None
        None infers it from the signature.
    estimand : {"difference", "relative"}
        A relative lift of a mean metric is invariant (not equivariant) under a
        rescaling of Y.
    factor : float, default 3
        The scale factor (not a power of 2, so rounding is exercised).
    rtol : float, default 1e-8
        Relative tolerance (absolute for p-values; relative to the s.e. for values
        near 0).

    Raises
    ------
    AssertionError
        ``"ratio"``: the five fields change when V and M are both multiplied by
        ``factor`` (docs/theory.md §1: R = Vbar/Mbar and var(L)/n are invariant).
        ``"mean"``/``"covariate"``: estimate, s.e. and interval are not multiplied by
        ``factor`` when Y is, or the p-value changes; ``"covariate"`` also: any
        field changes when X is multiplied by ``factor``.

    Examples
    --------
    >>> import estimators
    >>> check_scale_invariance(estimators.ratio_test, ([1, 2, 0, 3], [4, 4, 2, 5],
    ...                        [0, 1, 1, 0], [3, 4, 5, 2]))
    """
    if not (isinstance(factor, (int, float)) and math.isfinite(factor) and factor > 0):
        raise ValueError(f"`factor` must be a positive finite number; got {factor!r}.")
    if estimand not in ("difference", "relative"):
        raise ValueError(f"`estimand` must be 'difference' or 'relative'; got {estimand!r}.")
    kind = _kind(estimator, kind)
    a = list(_args(args, kind))
    floats = range(len(a)) if kind != "covariate" else (0, 2)  # keep `arm` as given
    for i in floats:
        a[i] = a[i].astype(np.float64)
    base = _call(estimator, a, "the original input")
    scale = abs(base.std_error) + abs(base.estimate) + 1e-300
    fields = {f: getattr(base, f) for f in _FIELDS}
    if kind == "ratio":
        scaled = _call(estimator, [factor * x for x in a], f"V and M x {factor:g}")
        _compare(estimator, f"V and M multiplied by {factor:g}", fields, scaled, scale, rtol)
        return
    if estimand == "difference":
        want = {f: v * factor for f, v in fields.items() if f != "pvalue"}
        want["pvalue"] = fields["pvalue"]
        y_scale = scale * factor
    else:  # a relative lift does not depend on the unit of Y
        want, y_scale = dict(fields), scale
    if kind == "mean":
        scaled = _call(estimator, [factor * a[0], factor * a[1]], f"Y x {factor:g}")
    else:
        scaled = _call(estimator, [factor * a[0], a[1], a[2]], f"Y x {factor:g}")
    _compare(estimator, f"Y multiplied by {factor:g}", want, scaled, y_scale, rtol)
    if kind == "covariate":
        rescaled = _call(estimator, [a[0], a[1], factor * a[2]], f"X x {factor:g}")
        _compare(estimator, f"X multiplied by {factor:g}", fields, rescaled, scale, rtol)


def check_arm_swap(
    estimator: Callable[..., Any],
    args: Sequence[Any],
    *,
    kind: str | None = None,
    estimand: str = "difference",
    rtol: float = 1e-8,
) -> None:
    """Assert the sign flip when treatment and control are swapped.

    Parameters
    ----------
    estimator : callable
        An estimator of the calibrate protocol.
    args : sequence of array_like
        Its positional arguments.
    kind : {"ratio", "mean", "covariate"} or None
        None infers it from the signature.
    estimand : {"difference", "relative"}
        ``"difference"``: the estimate becomes ``-estimate``, the s.e. and the
        two-sided p-value stay, the interval becomes ``[-ci_high, -ci_low]``.
        ``"relative"``: the lift l becomes ``1 / (1 + l) - 1`` (only the estimate is
        checked: the delta-method s.e. of a lift is not symmetric).
    rtol : float, default 1e-8
        Relative tolerance.

    Raises
    ------
    AssertionError
        If a field differs from its expected value after the swap.

    Examples
    --------
    >>> import estimators
    >>> check_arm_swap(estimators.mean_test, ([3.0, 5.0, 4.0], [1.0, 2.0, 3.0]))
    """
    if estimand not in ("difference", "relative"):
        raise ValueError(f"`estimand` must be 'difference' or 'relative'; got {estimand!r}.")
    kind = _kind(estimator, kind)
    a = _args(args, kind)
    base = _call(estimator, a, "the original input")
    if kind == "ratio":
        swapped_args = [a[2], a[3], a[0], a[1]]
    elif kind == "mean":
        swapped_args = [a[1], a[0]]
    else:
        swapped_args = [a[0], 1 - a[1].astype(np.int64), a[2]]
    swapped = _call(estimator, swapped_args, "swapped arms")
    scale = abs(base.std_error) + abs(base.estimate) + 1e-300
    if estimand == "difference":
        want = {
            "estimate": -base.estimate,
            "std_error": base.std_error,
            "ci_low": -base.ci_high,
            "ci_high": -base.ci_low,
            "pvalue": base.pvalue,
        }
    else:
        want = {"estimate": 1.0 / (1.0 + base.estimate) - 1.0}
    _compare(estimator, "arms swapped", want, swapped, scale, rtol)


def check_all(
    estimator: Callable[..., Any],
    args: Sequence[Any],
    *,
    kind: str | None = None,
    estimand: str = "difference",
    rtol: float = 1e-8,
) -> None:
    """Run every property check on one input (see the module docstring).

    Raises
    ------
    AssertionError
        From the first property that fails.

    Examples
    --------
    >>> import estimators
    >>> check_all(estimators.ratio_test, ([1, 2, 0, 3], [4, 4, 2, 5], [0, 1, 1, 0], [3, 4, 5, 2]))
    """
    kind = _kind(estimator, kind)
    check_no_silent_nan(estimator, args, kind=kind)
    check_ci_contains_estimate(estimator, args, kind=kind)
    check_scale_invariance(estimator, args, kind=kind, estimand=estimand, rtol=rtol)
    check_arm_swap(estimator, args, kind=kind, estimand=estimand, rtol=rtol)
