"""Input validation shared by the public functions of :mod:`estimators`.

Every check raises ``ValueError`` (bad value) or ``TypeError`` (bad type) with a
message that names the parameter, the constraint and the value received, and the
arm where one applies. Inner helpers trust what these functions return.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

ALTERNATIVES = ("two-sided", "less", "greater")
DISTRIBUTIONS = ("z", "t")
NAN_POLICIES = ("raise", "omit")
DEGENERATE_POLICIES = ("raise", "nan")
ARM_NAMES = {"t": "treatment", "c": "control"}


def check_choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    """Return ``value`` if it is one of ``choices``; raise ``ValueError`` otherwise."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"`{name}` must be one of {list(choices)}; got {value!r}.")
    return value


def check_open_unit(name: str, value: Any) -> float:
    """Return ``value`` as a float in the open interval (0, 1)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"`{name}` must be a real number; got {type(value).__name__}.")
    value = float(value)
    if not 0.0 < value < 1.0:
        raise ValueError(f"`{name}` must be in (0, 1); got {value}.")
    return value


def check_ddof(ddof: Any) -> float:
    """Return ``ddof`` as a float, which must be 0 or positive (usually 0 or 1)."""
    if isinstance(ddof, bool) or not isinstance(ddof, numbers.Real):
        raise TypeError(f"`ddof` must be a real number; got {type(ddof).__name__}.")
    ddof = float(ddof)
    if not (math.isfinite(ddof) and 0.0 <= ddof < 2.0):
        raise ValueError(f"`ddof` must be in [0, 2); got {ddof}.")
    return ddof


def as_float_array(name: str, values: Any, *, ndim: int | tuple[int, ...] = 1) -> np.ndarray:
    """Return ``values`` as a float64 array of the given number of dimensions."""
    if isinstance(values, str | bytes | Mapping):
        raise TypeError(f"`{name}` must be array-like of numbers; got {type(values).__name__}.")
    try:
        arr = np.asarray(values)
    except Exception as exc:  # pragma: no cover - numpy's own failure
        raise TypeError(f"`{name}` must be array-like of numbers; got {values!r}.") from exc
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.bool_)
    ):
        raise TypeError(f"`{name}` must be array-like of numbers; got dtype {arr.dtype}.")
    if np.iscomplexobj(arr):
        raise TypeError(f"`{name}` must be real; got dtype {arr.dtype}.")
    ndims = (ndim,) if isinstance(ndim, int) else ndim
    if arr.ndim not in ndims:
        want = " or ".join(str(d) for d in ndims)
        raise ValueError(f"`{name}` must be {want}-dimensional; got shape {arr.shape}.")
    return np.asarray(arr, dtype=np.float64, order="C")


def _first_index(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask.reshape(mask.shape[0], -1).any(axis=1))[0])


def clean_units(
    columns: dict[str, np.ndarray],
    nan_policy: str,
    *,
    arm: str | None = None,
) -> dict[str, np.ndarray]:
    """Check that per-unit columns align and handle NaN according to ``nan_policy``.

    Parameters
    ----------
    columns : dict
        Parameter name to array; axis 0 indexes units.
    nan_policy : {"raise", "omit"}
        ``"omit"`` drops every unit that has a NaN in any column, consistently across
        all columns. Infinite values always raise.
    arm : {"t", "c"} or None
        Arm the columns belong to, for the messages.

    Returns
    -------
    dict
        The same columns, possibly with units dropped.
    """
    where = f" in the {ARM_NAMES[arm]} arm" if arm else ""
    names = list(columns)
    first = names[0]
    n = columns[first].shape[0]
    for name in names[1:]:
        if columns[name].shape[0] != n:
            raise ValueError(
                f"`{first}` and `{name}` must have the same number of units{where}; "
                f"got {n} and {columns[name].shape[0]}."
            )
    for name in names:
        inf = np.isinf(columns[name])
        if inf.any():
            i = _first_index(inf)
            raise ValueError(f"`{name}` must be finite{where}; got inf at unit {i}.")
    nan_rows = np.zeros(n, dtype=bool)
    for name in names:
        col_nan = np.isnan(columns[name])
        if col_nan.any():
            if nan_policy == "raise":
                i = _first_index(col_nan)
                raise ValueError(
                    f"`{name}` contains NaN{where} (first at unit {i}); "
                    "pass nan_policy='omit' to drop such units."
                )
            nan_rows |= col_nan.reshape(n, -1).any(axis=1)
    if nan_rows.any():
        keep = ~nan_rows
        return {name: col[keep] for name, col in columns.items()}
    return columns


def check_nonnegative(name: str, values: np.ndarray, *, arm: str | None = None) -> None:
    """Raise if a count column has a negative entry."""
    neg = values < 0
    if neg.any():
        where = f" in the {ARM_NAMES[arm]} arm" if arm else ""
        i = int(np.flatnonzero(neg)[0])
        raise ValueError(
            f"`{name}` holds counts and must be >= 0{where}; got {float(values[i])} at unit {i}."
        )


def check_min_units(name: str, n: int, *, arm: str | None = None, minimum: int = 2) -> None:
    """Raise if an arm has fewer than ``minimum`` units."""
    if n < minimum:
        where = f" in the {ARM_NAMES[arm]} arm" if arm else ""
        what = "is empty" if n == 0 else f"has {n} unit"
        raise ValueError(f"`{name}` {what}{where}; need at least {minimum} units.")


def split_arms(arm: Any, n: int) -> npt.NDArray[np.bool_]:
    """Return the treatment mask of a binary arm column of length ``n``."""
    arr = np.asarray(arm)
    if arr.ndim != 1:
        raise ValueError(f"`arm` must be 1-dimensional; got shape {arr.shape}.")
    if arr.shape[0] != n:
        raise ValueError(f"`arm` must have one entry per unit ({n}); got {arr.shape[0]}.")
    if arr.dtype == np.bool_:
        return arr.copy()
    if not np.issubdtype(arr.dtype, np.number):
        raise TypeError(f"`arm` must be 0/1 or boolean; got dtype {arr.dtype}.")
    values = np.unique(arr[~np.isnan(arr)] if np.issubdtype(arr.dtype, np.floating) else arr)
    if np.issubdtype(arr.dtype, np.floating) and np.isnan(arr).any():
        raise ValueError(
            f"`arm` must contain only 0 and 1; got NaN at unit {np.isnan(arr).argmax()}."
        )
    bad = values[(values != 0) & (values != 1)]
    if bad.size:
        raise ValueError(
            f"`arm` must contain only 0 (control) and 1 (treatment); got values {values.tolist()}."
        )
    return arr == 1
