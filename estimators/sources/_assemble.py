"""Per-arm sums from the aggregation query -> one ``RatioMoments`` per arm label."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from ..moments import RatioMoments
from ._spec import MomentSpec, make_spec
from ._sql import product_terms


def _get(row: Mapping[str, Any], key: str) -> float:
    value = row.get(key)
    return 0.0 if value is None else float(value)


def _check(rows: list[Mapping[str, Any]], spec: MomentSpec) -> None:
    """Raise the data errors the query counted (mixed arms, NULLs)."""
    if not rows:
        raise ValueError("the source has no rows: no arm to summarise.")
    mixed = sum(_get(r, "n_mixed") for r in rows)
    if mixed:
        raise ValueError(
            f"{int(mixed)} unit(s) of `unit` column {spec.unit!r} appear under more than one "
            f"label of `arm` column {spec.arm!r}; each unit must belong to one arm."
        )
    if spec.nan_policy == "omit":
        return
    problems = []
    null_arm = [r for r in rows if r.get("arm") is None]
    if null_arm:
        problems.append(f"`arm` column {spec.arm!r} in {int(_get(null_arm[0], 'n_units'))} unit(s)")
    for key, role, col in (
        ("null_unit", "unit", spec.unit),
        ("null_v", "numerator", spec.numerator),
        ("null_m", "denominator", spec.denominator),
    ):
        count = sum(_get(r, key) for r in rows)
        if count:
            problems.append(f"`{role}` column {col!r} in {int(count)} unit(s)")
    if problems:
        raise ValueError(
            "NULL values in " + "; ".join(problems) + ". Clean the data, or pass "
            "nan_policy='omit' to drop those units."
        )


def moments_from_rows(
    rows: Iterable[Mapping[str, Any]],
    *,
    unit: str,
    arm: str,
    numerator: str,
    denominator: str | None = None,
    covariates: Sequence[str] = (),
    presence: bool = False,
    nan_policy: str = "raise",
) -> dict[str, RatioMoments]:
    """Build the per-arm moments from the rows of a :func:`moments_sql` query run elsewhere.

    Parameters
    ----------
    rows : iterable of mapping
        One mapping per arm with the query's output columns (``arm``, ``n``, the
        shift constants ``c_*``, the sums ``s_*`` and the NULL counts ``null_*``),
        lower-case keys, e.g. ``[dict(r) for r in bigquery_client.query(sql)]``.
    unit, arm, numerator, denominator, covariates, presence, nan_policy
        The keywords the query was generated with.

    Returns
    -------
    dict of str to RatioMoments
        Keyed by ``str(arm label)`` in the query's order; arms without a valid unit
        (all dropped by ``nan_policy="omit"``) are left out.
    """
    spec = make_spec(unit, arm, numerator, denominator, covariates, presence, nan_policy)
    return rows_to_moments(rows, spec)


def rows_to_moments(rows: Iterable[Mapping[str, Any]], spec: MomentSpec) -> dict[str, RatioMoments]:
    """Build the per-arm moments from the rows of the aggregation query.

    Parameters
    ----------
    rows : iterable of mapping
        One mapping per arm with the query's output columns.
    spec : MomentSpec
        The column roles the query was built from.

    Returns
    -------
    dict of str to RatioMoments
        Keyed by ``str(arm label)`` in the query's order; arms without a valid unit
        (all dropped by ``nan_policy="omit"``) are left out.
    """
    rows = [dict(r) for r in rows]
    _check(rows, spec)
    out: dict[str, RatioMoments] = {}
    for row in rows:
        if row.get("arm") is None or not _get(row, "n"):
            continue
        out[str(row["arm"])] = _arm_moments(row, spec)
    if not out:
        raise ValueError("no unit is left to summarise (every unit had a NULL).")
    return out


def _arm_moments(row: Mapping[str, Any], spec: MomentSpec) -> RatioMoments:
    n = _get(row, "n")
    s = {alias: _get(row, alias) for alias in product_terms(spec)}
    k = spec.k
    xs = [f"x{j}" for j in range(k)]
    ratio = spec.denominator is not None
    shift_v = _get(row, "c_v")
    shift_m = _get(row, "c_m") if ratio else 0.0

    def pick(*cols: str) -> float:
        # Sum of the product of the (shifted) per-unit columns; M = 1 when not a ratio.
        rest = sorted((c for c in cols if ratio or c != "m"), key=_series_order(k).index)
        if not rest:
            return n
        return s["s_" + "".join(rest)]

    kw: dict[str, Any] = dict(
        n=n,
        sum_v=pick("v"),
        sum_m=pick("m"),
        sum_vv=pick("v", "v"),
        sum_mm=pick("m", "m"),
        sum_vm=pick("v", "m"),
        sum_vvv=pick("v", "v", "v"),
        sum_vvm=pick("v", "v", "m"),
        sum_vmm=pick("v", "m", "m"),
        sum_mmm=pick("m", "m", "m"),
        shift_v=shift_v,
        shift_m=shift_m,
    )
    if k:
        kw["sum_x"] = np.array([pick(x) for x in xs])
        kw["sum_xx"] = np.array([[pick(a, b) for b in xs] for a in xs])
        kw["sum_vx"] = np.array([pick("v", x) for x in xs])
        kw["sum_mx"] = np.array([pick("m", x) for x in xs])
        kw["shift_x"] = np.array([_get(row, f"c_{x}") for x in xs])
    return RatioMoments(**kw)


def _series_order(k: int) -> list[str]:
    return ["v", "m"] + [f"x{j}" for j in range(k)]
