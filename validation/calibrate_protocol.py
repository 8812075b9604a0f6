"""The estimator protocol of :func:`validation.calibrate`: kinds, arguments, outputs.

An estimator is a callable of kind ``"ratio"`` (``fn(num_t, den_t, num_c, den_c)``),
``"mean"`` (``fn(y_t, y_c)``) or ``"covariate"`` (``fn(y, arm, X)``) returning
``estimate``, ``std_error``, ``ci_low``, ``ci_high`` and ``pvalue`` (docs/calibrate.md).
:func:`infer_kind` reads the kind from the signature, :func:`estimator_args` builds the
arguments from one simulated experiment and :func:`estimator_output` checks a result.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

import sim

#: Estimator kinds and their call signatures.
KINDS: tuple[str, ...] = ("ratio", "mean", "covariate")
_FIELDS = ("estimate", "std_error", "ci_low", "ci_high", "pvalue")


class ProtocolError(ValueError):
    """An estimator's return value is outside the protocol (missing field, NaN, shape)."""


@dataclass(frozen=True, slots=True)
class EstimatorOutput:
    """The five protocol fields of one estimator call, as Python floats.

    Attributes
    ----------
    estimate, std_error : float
        Effect and its standard error (finite; ``std_error >= 0``).
    ci_low, ci_high : float
        Interval, ``ci_low <= ci_high``; an end may be infinite, never NaN.
    pvalue : float
        Two-sided p-value of "no effect", in [0, 1].
    """

    estimate: float
    std_error: float
    ci_low: float
    ci_high: float
    pvalue: float


def _field(result: Any, name: str) -> Any:
    if isinstance(result, Mapping):
        if name not in result:
            raise ProtocolError(f"returned a {type(result).__name__} without the key {name!r}.")
        return result[name]
    if not hasattr(result, name):
        raise ProtocolError(f"returned a {type(result).__name__} without the attribute `{name}`.")
    return getattr(result, name)


def estimator_output(result: Any) -> EstimatorOutput:
    """Read and check the protocol fields of an estimator's return value.

    Parameters
    ----------
    result : object or mapping
        What the estimator returned: attributes or keys ``estimate``, ``std_error``,
        ``ci_low``, ``ci_high``, ``pvalue``.

    Returns
    -------
    EstimatorOutput

    Raises
    ------
    ProtocolError
        A field is missing, is not a real scalar (e.g. an array of shape (3,)), is NaN,
        ``estimate`` or ``std_error`` is infinite, ``std_error < 0``, ``pvalue`` is
        outside [0, 1], or ``ci_low > ci_high``. The message names the field and
        the value.

    Examples
    --------
    >>> estimator_output({"estimate": 1.0, "std_error": 0.5, "ci_low": 0.02,
    ...                   "ci_high": 1.98, "pvalue": 0.0455}).std_error
    0.5
    """
    values: dict[str, float] = {}
    for name in _FIELDS:
        raw = _field(result, name)
        if isinstance(raw, (bool, np.bool_)):
            raise ProtocolError(f"`{name}` must be a real number; got the bool {raw}.")
        shape = np.shape(raw)
        if shape != ():
            raise ProtocolError(f"`{name}` must be a scalar; got shape {shape}.")
        try:
            value = float(raw)
        except (TypeError, ValueError):
            raise ProtocolError(
                f"`{name}` must be a real number; got {type(raw).__name__} {raw!r}."
            ) from None
        if math.isnan(value):
            raise ProtocolError(f"`{name}` is NaN on valid input.")
        values[name] = value
    for name in ("estimate", "std_error"):
        if math.isinf(values[name]):
            raise ProtocolError(f"`{name}` must be finite; got {values[name]}.")
    if values["std_error"] < 0:
        raise ProtocolError(f"`std_error` must be >= 0; got {values['std_error']}.")
    if not 0.0 <= values["pvalue"] <= 1.0:
        raise ProtocolError(f"`pvalue` must be in [0, 1]; got {values['pvalue']}.")
    if values["ci_low"] > values["ci_high"]:
        raise ProtocolError(
            f"`ci_low` must be <= `ci_high`; got {values['ci_low']} > {values['ci_high']}."
        )
    return EstimatorOutput(**values)


_SIGNATURES = {
    ("num_t", "den_t", "num_c", "den_c"): "ratio",
    ("y_t", "y_c"): "mean",
    ("y", "arm", "X"): "covariate",
}
_ARITY = {4: "ratio", 2: "mean", 3: "covariate"}


def infer_kind(estimator: Callable[..., Any]) -> str:
    """Tell an estimator's kind from its signature.

    Parameters
    ----------
    estimator : callable
        The estimator.

    Returns
    -------
    {"ratio", "mean", "covariate"}
        From the names of its first parameters (``num_t, den_t, num_c, den_c``;
        ``y_t, y_c``; ``y, arm, X``), else from its number of required positional
        parameters (4, 2, 3).

    Raises
    ------
    TypeError
        If ``estimator`` is not callable or neither rule applies (pass ``kind``).

    Examples
    --------
    >>> import estimators
    >>> infer_kind(estimators.ratio_test), infer_kind(estimators.cuped_test)
    ('ratio', 'covariate')
    """
    if not callable(estimator):
        raise TypeError(f"`estimator` must be callable; got {type(estimator).__name__}.")
    try:
        params = list(inspect.signature(estimator).parameters.values())
    except (TypeError, ValueError):
        raise TypeError(
            f"cannot read the signature of {_name(estimator)}; pass `kind` (one of {list(KINDS)})."
        ) from None
    positional = [
        p
        for p in params
        if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    ]
    names = tuple(p.name for p in positional)
    for sig, kind in _SIGNATURES.items():
        if names[: len(sig)] == sig:
            return kind
    required = sum(p.default is inspect.Parameter.empty for p in positional)
    if required in _ARITY:
        return _ARITY[required]
    raise TypeError(
        f"cannot infer the kind of {_name(estimator)} (positional parameters {names}); "
        f"pass `kind` (one of {list(KINDS)})."
    )


def _name(estimator: Any) -> str:
    module = getattr(estimator, "__module__", None)
    qual = getattr(estimator, "__qualname__", None) or type(estimator).__name__
    return f"{module}:{qual}" if module else str(qual)


def estimator_args(kind: str, data: Any) -> tuple[npt.NDArray[Any], ...]:
    """Return the positional arguments of a ``kind`` estimator for one simulated experiment.

    Parameters
    ----------
    kind : {"ratio", "mean", "covariate"}
        Estimator kind.
    data : sim.ClickData or sim.QueryData
        One experiment.

    Returns
    -------
    tuple of ndarray
        ``"ratio"``: ``(clicks_t, views_t, clicks_c, views_c)``; ``"mean"``:
        ``(y_t, y_c)`` with Y = clicks (or queries); ``"covariate"``: ``(y, arm, X)``
        with X the pre-period clicks (or queries), shape ``(n, 1)``. Float64, except
        ``arm`` (int64 0/1).

    Examples
    --------
    >>> d = sim.simulate_clicks(sim.Deng2018Classes(), 6, rng=0)
    >>> [a.shape for a in estimator_args("ratio", d)]
    [(3,), (3,), (3,), (3,)]
    """
    _check_kind(kind)
    from validation.data_scenario import DataReplicate  # own-data replicates (issue 14)

    if isinstance(data, DataReplicate):
        return data.estimator_args(kind)
    treated = data.arm == 1
    if isinstance(data, sim.ClickData):
        y, pre = data.clicks, data.pre_clicks
        if kind == "ratio":
            v = data.clicks.astype(np.float64)
            m = data.views.astype(np.float64)
            return v[treated], m[treated], v[~treated], m[~treated]
    elif isinstance(data, sim.QueryData):
        if kind == "ratio":
            raise ValueError(
                "`kind` 'ratio' needs a CTR scenario; the query scenario has no ratio."
            )
        y, pre = data.queries, data.pre_queries
    else:
        raise TypeError(f"`data` must be a ClickData or QueryData; got {type(data).__name__}.")
    yf = y.astype(np.float64)
    if kind == "mean":
        return yf[treated], yf[~treated]
    return yf, data.arm.astype(np.int64), pre.astype(np.float64)[:, None]


def _check_kind(kind: Any) -> str:
    if kind not in KINDS:
        raise ValueError(f"`kind` must be one of {list(KINDS)}; got {kind!r}.")
    return kind
