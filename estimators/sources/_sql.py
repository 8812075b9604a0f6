"""One canonical aggregation query, transpiled to each SQL dialect (sqlglot).

The query turns event-level rows into per-arm sums in three steps, all inside the
engine: (1) per unit, sum every metric and covariate column (cast to DOUBLE first,
so integer columns cannot overflow in products), count NULLs and note the unit's
arm; (2) per arm, take the minimum of each per-unit column as its shift constant
(within the data's range, so shifted sums are >= 0 and small when the spread is);
(3) per arm, sum the shifted per-unit values and their products up to third order
(V, M) or second order (with X). Only one row per arm comes back.
"""

from __future__ import annotations

import functools
import re

from ._spec import MomentSpec

#: Dialects whose SQL text is tested against a golden file (any sqlglot dialect works).
DIALECTS = ("duckdb", "spark", "bigquery", "snowflake", "trino", "postgres")

_PLACEHOLDER = "__moments_source__"
_TABLE = re.compile(r"^\s*([A-Za-z0-9_$`\"\[\]-]+)(\.[A-Za-z0-9_$`\"\[\]-]+)*\s*$")


_PLAIN = re.compile(r"^[a-z_][a-z0-9_]*$")


@functools.lru_cache(maxsize=1)
def _reserved() -> frozenset[str]:
    """Reserved words (lower case) of any tested dialect: such names are always quoted."""
    from sqlglot import Dialect

    words: set[str] = set()
    for d in DIALECTS:
        words |= {w.lower() for w in Dialect.get_or_raise(d).generator_class.RESERVED_KEYWORDS}
    return frozenset(words)


def _q(name: str) -> str:
    """Write a column name in the canonical (DuckDB) dialect, quoted only where needed.

    Lower-case plain names stay unquoted, so that engines which fold unquoted names
    (Snowflake to upper case, Postgres to lower case) find the column as the user
    created it; any other name (mixed case, spaces, keywords) is quoted and hence
    matched exactly.
    """
    if _PLAIN.match(name) and name not in _reserved():
        return name
    return '"' + name.replace('"', '""') + '"'


def _series(spec: MomentSpec) -> list[str]:
    """Names of the per-unit columns: ``v``, ``m`` (ratio metrics) and ``x0 .. x{k-1}``."""
    cols = ["v"] + (["m"] if spec.denominator is not None else [])
    return cols + [f"x{j}" for j in range(spec.k)]


def product_terms(spec: MomentSpec) -> dict[str, tuple[str, ...]]:
    """Output alias -> the per-unit columns multiplied in that sum (first order up).

    Aliases are ``s_`` followed by the factors, e.g. ``s_v``, ``s_vm``, ``s_x0x1``,
    ``s_vvm``; third-order sums are taken of V and M only.
    """
    cols = _series(spec)
    terms: dict[str, tuple[str, ...]] = {f"s_{c}": (c,) for c in cols}
    for i, a in enumerate(cols):
        for b in cols[i:]:
            terms[f"s_{a}{b}"] = (a, b)
    vm = [c for c in cols if c in ("v", "m")]
    for i, a in enumerate(vm):
        for j, b in enumerate(vm[i:], start=i):
            for c in vm[j:]:
                terms[f"s_{a}{b}{c}"] = (a, b, c)
    return terms


def unit_columns(spec: MomentSpec) -> list[str]:
    """Step (1) of the aggregation: the per-unit select list, in DuckDB SQL.

    Grouped by ``spec.unit``, it gives ``arm_lo`` / ``arm_hi`` (the unit's arm labels),
    ``nu`` (1 for a NULL unit id), ``v`` and ``nv`` (its numerator sum and NULL count),
    ``m`` and ``nm`` (denominator) and ``x0 .. x{k-1}`` (covariates, NULL as 0).
    """
    dbl = "CAST({} AS DOUBLE)"
    unit_cols = [
        f"MIN({_q(spec.arm)}) AS arm_lo",
        f"MAX({_q(spec.arm)}) AS arm_hi",
        f"CASE WHEN {_q(spec.unit)} IS NULL THEN 1 ELSE 0 END AS nu",
        f"SUM({dbl.format(_q(spec.numerator))}) AS v",
        f"COUNT(*) - COUNT({_q(spec.numerator)}) AS nv",
    ]
    if spec.denominator is not None:
        unit_cols += [
            f"SUM({dbl.format(_q(spec.denominator))}) AS m",
            f"COUNT(*) - COUNT({_q(spec.denominator)}) AS nm",
        ]
    for j, col in enumerate(spec.covariates):
        unit_cols.append(f"COALESCE(SUM({dbl.format(_q(col))}), 0.0) AS x{j}")
    if spec.presence:
        seen = " + ".join(f"COUNT({_q(c)})" for c in spec.covariates)
        unit_cols.append(f"CASE WHEN {seen} > 0 THEN 1.0 ELSE 0.0 END AS x{len(spec.covariates)}")
    return unit_cols


def units_query(source: str, spec: MomentSpec) -> str:
    """Per-unit rows over the table or view ``source`` in DuckDB SQL, ordered by unit.

    The same step (1) as the aggregation (:func:`unit_columns`), for callers that need
    the units themselves (re-randomisation in ``validation.data_scenario``).
    """
    u = _q(spec.unit)
    cols = ",\n  ".join(unit_columns(spec))
    return f"SELECT\n  {cols}\nFROM {source}\nGROUP BY {u}\nORDER BY MIN({u})"


def _canonical(spec: MomentSpec) -> str:
    """Return the aggregation in DuckDB SQL over the placeholder table."""
    unit_cols = unit_columns(spec)
    null_cols = ["nv"] + (["nm"] if spec.denominator is not None else [])
    series = _series(spec)
    shift_cols = [
        "arm_lo",
        "SUM(CASE WHEN arm_lo <> arm_hi THEN 1 ELSE 0 END) AS n_mixed",
        "SUM(nu) AS null_unit",
        "COUNT(*) AS n_units",
    ]
    shift_cols += [f"SUM(CASE WHEN {c} > 0 THEN 1 ELSE 0 END) AS null_{c[1]}" for c in null_cols]
    shift_cols += [f"COALESCE(MIN({c}), 0.0) AS c_{c}" for c in series]
    ok = " AND ".join(f"u.{c} = 0" for c in ["nu", *null_cols])
    dev_cols = ["u.arm_lo AS arm_lo"] + [f"u.{c} - s.c_{c} AS {c}" for c in series]
    sums = ["arm_lo", "COUNT(*) AS n"]
    sums += [f"SUM({' * '.join(f)}) AS {alias}" for alias, f in product_terms(spec).items()]
    passthrough = ["n_mixed", "null_unit", "n_units"] + [f"null_{c[1]}" for c in null_cols]
    passthrough += [f"c_{c}" for c in series]
    final = ["s.arm_lo AS arm"] + [f"s.{c} AS {c}" for c in passthrough]
    final += ["d.n AS n"] + [f"d.{alias} AS {alias}" for alias in product_terms(spec)]
    nl = ",\n    "
    return (
        f"WITH _units AS (\n  SELECT\n    {nl.join(unit_cols)}\n  FROM {_PLACEHOLDER}\n"
        f"  GROUP BY {_q(spec.unit)}\n), _shifts AS (\n  SELECT\n    {nl.join(shift_cols)}\n"
        f"  FROM _units\n  GROUP BY arm_lo\n), _dev AS (\n  SELECT\n    {nl.join(dev_cols)}\n"
        f"  FROM _units AS u\n  JOIN _shifts AS s ON u.arm_lo = s.arm_lo\n  WHERE {ok}\n"
        f"), _sums AS (\n  SELECT\n    {nl.join(sums)}\n  FROM _dev\n  GROUP BY arm_lo\n)\n"
        f"SELECT\n  {', '.join(final)}\nFROM _shifts AS s\n"
        "LEFT JOIN _sums AS d ON s.arm_lo = d.arm_lo\nORDER BY s.arm_lo"
    )


def render(source: str, spec: MomentSpec, dialect: str) -> str:
    """Return the aggregation over ``source`` (a table name or a query) in ``dialect``."""
    import sqlglot  # the `sql` extra

    if not isinstance(source, str) or not source.strip():
        raise TypeError(
            f"`query_or_table` must be a non-empty SQL query or table name; got {source!r}."
        )
    if not isinstance(dialect, str):
        raise TypeError(f"`dialect` must be a sqlglot dialect name (str); got {dialect!r}.")
    try:
        sqlglot.Dialect.get_or_raise(dialect)
    except ValueError as exc:
        raise ValueError(
            f"`dialect` must be a dialect sqlglot knows (e.g. {', '.join(DIALECTS)}); "
            f"got {dialect!r}."
        ) from exc
    tree = sqlglot.parse_one(_canonical(spec), read="duckdb")
    text = tree.sql(dialect=dialect, pretty=True, identify=False)
    if _TABLE.match(source):
        inner = source.strip()
    else:
        body = source.strip().rstrip(";").strip()
        inner = "(\n" + body + "\n) AS _src"
    if text.count(_PLACEHOLDER) != 1:  # pragma: no cover - guards the template
        raise RuntimeError("the canonical query lost its source placeholder.")
    return text.replace(_PLACEHOLDER, inner)
