"""Public entry points: SQL text, SQL connections and DataFrames to per-arm moments."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from ..moments import RatioMoments
from ._assemble import rows_to_moments
from ._spec import MomentSpec, make_spec
from ._sql import render

_KEYWORDS_DOC = """
    unit : str
        Column identifying the randomisation unit (e.g. ``user_id``). Rows are
        summed per unit first, so event-level rows (several per unit) are normal.
    arm : str
        Column with the arm label of each row; every row of a unit must carry the
        same label. Result keys are ``str(label)``.
    numerator : str
        Column summed per unit into the numerator V (e.g. ``clicks``).
    denominator : str, optional
        Column summed per unit into the denominator M (e.g. ``views``). ``None``
        (default) analyses the per-unit sum of ``numerator`` as a mean metric.
    covariates : sequence of str, optional
        Columns summed per unit into the covariates X (pre-period values for
        CUPED). Rows that carry only covariates (pre-period rows, zeros or NULL in
        the metric columns) are normal; a unit with no non-NULL value gets 0.
    presence : bool, default False
        Append one more covariate: 1 for a unit with at least one non-NULL
        covariate value, 0 otherwise (the missing-pre-period indicator CUPED
        recommends [2]_).
    nan_policy : {"raise", "omit"}, default "raise"
        A NULL unit id, arm label, numerator or denominator value raises a
        ``ValueError`` counting the units concerned; ``"omit"`` drops those units."""

_NOTES_DOC = """
    Integer columns are cast to DOUBLE before any product (DuckDB and Spark raise on
    BIGINT overflow). Each per-unit column is stored about a shift constant, the
    arm's minimum of that column, computed in the engine: the sums are of ``V - c_V``,
    ``M - c_M``, ``X - c_X`` and their products, which keeps the variance exact to
    rounding when a mean is large against its standard deviation (a raw sum of
    squares of values near 1e9 keeps no digits of a variance of 1). The
    third-order sums of (V, M) come along for skewness-aware intervals.
    The moments are those of Deng et al. [1]_ (delta method) and Deng et al. [2]_
    (CUPED).

    References
    ----------
    .. [1] A. Deng, U. Knoblich, J. Lu, "Applying the Delta Method in Metric
       Analytics: A Practical Guide with Novel Ideas", KDD 2018.
    .. [2] A. Deng, Y. Xu, R. Kohavi, T. Walker, "Improving the Sensitivity of
       Online Controlled Experiments by Utilizing Pre-Experiment Data", WSDM 2013."""


def _spec(unit, arm, numerator, denominator, covariates, presence, nan_policy) -> MomentSpec:
    return make_spec(unit, arm, numerator, denominator, covariates, presence, nan_policy)


def moments_sql(
    query_or_table: str,
    *,
    dialect: str,
    unit: str,
    arm: str,
    numerator: str,
    denominator: str | None = None,
    covariates: Sequence[str] = (),
    presence: bool = False,
    nan_policy: str = "raise",
) -> str:
    """Write the SQL that aggregates rows into per-arm sufficient statistics.

    Parameters
    ----------
    query_or_table : str
        A table name (``events``, ``project.dataset.events``) or a SELECT query in
        ``dialect``; a query is wrapped as a subquery, unchanged.
    dialect : str
        Target SQL dialect: any sqlglot dialect name; ``duckdb``, ``spark``,
        ``bigquery``, ``snowflake``, ``trino`` and ``postgres`` are tested.
    {keywords}

    Returns
    -------
    str
        One query returning a row per arm: ``arm``, ``n``, the shift constants
        ``c_v, c_m, c_x0 ...``, the shifted sums ``s_v, s_vm, s_x0x1, s_vvm ...``
        and NULL counts. :func:`moments_from_sql` runs it and builds the moments;
        to run it elsewhere, pass its rows (as mappings) to
        ``estimators.sources.moments_from_rows``.

    Notes
    -----
    The text is generated from one canonical query by sqlglot, so every dialect
    computes the same thing: per unit (GROUP BY the unit column) the sums of each
    column; per arm the minimum of each per-unit column (the shift); per arm the
    count and the sums of shifted values and products.
    {notes}

    Examples
    --------
    >>> sql = moments_sql("events", dialect="bigquery", unit="user_id", arm="variant",
    ...                   numerator="clicks", denominator="views")
    >>> "CAST(clicks AS FLOAT64)" in sql
    True
    """
    spec = _spec(unit, arm, numerator, denominator, covariates, presence, nan_policy)
    return render(query_or_table, spec, dialect)


def _is_duckdb(obj: Any, cls: str) -> bool:
    return type(obj).__module__.split(".")[0] in ("duckdb", "_duckdb") and (
        type(obj).__name__ == cls
    )


def _is_spark(obj: Any, cls: str) -> bool:
    mod = type(obj).__module__
    return mod.startswith("pyspark.sql") and type(obj).__name__ == cls


def _dialect_of(connection: Any, dialect: str | None) -> str:
    if dialect is not None:
        return dialect
    if _is_duckdb(connection, "DuckDBPyConnection"):
        return "duckdb"
    if _is_spark(connection, "SparkSession"):
        return "spark"
    if type(connection).__module__ == "sqlite3":
        return "sqlite"
    raise ValueError(
        f"`dialect` is required for a {type(connection).__name__} connection "
        "(e.g. dialect='postgres'); it is inferred only for DuckDB, Spark and sqlite3."
    )


def _run(connection: Any, sql: str) -> list[dict[str, Any]]:
    """Execute ``sql`` on a DuckDB connection, a SparkSession or a DB-API connection."""
    if _is_spark(connection, "SparkSession"):
        return [row.asDict() for row in connection.sql(sql).collect()]
    if _is_duckdb(connection, "DuckDBPyConnection"):
        cursor = connection.execute(sql)
    elif hasattr(connection, "cursor"):
        cursor = connection.cursor()
        cursor.execute(sql)
    else:
        raise TypeError(
            "`connection` must be a DuckDB connection, a SparkSession or a DB-API "
            f"connection (with .cursor()); got {type(connection).__name__}."
        )
    names = [d[0].lower() for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def moments_from_sql(
    connection: Any,
    query: str,
    *,
    unit: str,
    arm: str,
    numerator: str,
    denominator: str | None = None,
    covariates: Sequence[str] = (),
    presence: bool = False,
    nan_policy: str = "raise",
    dialect: str | None = None,
) -> dict[str, RatioMoments]:
    """Per-arm moments aggregated inside a database or Spark.

    Parameters
    ----------
    connection : DuckDB connection, SparkSession or DB-API connection
        Where the query runs. Only one row per arm comes back.
    query : str
        A table name or a SELECT query in the connection's dialect.
    {keywords}
    dialect : str, optional
        SQL dialect of the connection; inferred for DuckDB (``duckdb``), a
        ``SparkSession`` (``spark``) and ``sqlite3`` (``sqlite``), required otherwise.

    Returns
    -------
    dict of str to RatioMoments
        One entry per arm label, in the label's sort order.

    Notes
    -----
    Runs :func:`moments_sql` in the engine.
    {notes}

    Examples
    --------
    >>> import duckdb
    >>> con = duckdb.connect()
    >>> _ = con.execute("CREATE TABLE ev AS SELECT * FROM (VALUES (1, 'a', 1, 2), "
    ...                 "(1, 'a', 0, 1), (2, 'b', 1, 1), (3, 'a', 2, 3)) t(u, g, c, v)")
    >>> m = moments_from_sql(con, "ev", unit="u", arm="g", numerator="c", denominator="v")
    >>> sorted(m), float(m["a"].n)
    (['a', 'b'], 2.0)
    """
    spec = _spec(unit, arm, numerator, denominator, covariates, presence, nan_policy)
    sql = render(query, spec, _dialect_of(connection, dialect))
    return rows_to_moments(_run(connection, sql), spec)


def _check_columns(present: Sequence[str], spec: MomentSpec) -> None:
    missing = [c for c in spec.columns if c not in present]
    if missing:
        raise ValueError(
            f"column(s) {missing} not in the frame; it has {list(present)[:20]}"
            + (" ..." if len(present) > 20 else "")
            + "."
        )


def moments_from_frame(
    frame: Any,
    *,
    unit: str,
    arm: str,
    numerator: str,
    denominator: str | None = None,
    covariates: Sequence[str] = (),
    presence: bool = False,
    nan_policy: str = "raise",
) -> dict[str, RatioMoments]:
    """Per-arm moments of a pandas, polars or pyarrow frame, DuckDB relation or Spark frame.

    Parameters
    ----------
    frame : DataFrame-like
        Unit-level or event-level rows: a pandas or polars DataFrame (or polars
        LazyFrame), a pyarrow Table, a DuckDB relation, a PySpark DataFrame, or
        anything else Narwhals recognises.
    {keywords}

    Returns
    -------
    dict of str to RatioMoments
        One entry per arm label, in the label's sort order.

    Notes
    -----
    Narwhals identifies the library and reads the column names the same way for
    every one of them; the aggregation is the query of :func:`moments_sql`, run
    where the data are: in Spark for a PySpark DataFrame, in DuckDB for a DuckDB
    relation, and in an in-process DuckDB over the Arrow data (no copy for polars
    and pyarrow) for in-memory frames. One query for every source means one
    definition of the sums.
    {notes}

    Examples
    --------
    >>> import pandas as pd
    >>> ev = pd.DataFrame({{"user": [1, 1, 2, 3, 4], "arm": ["c", "c", "t", "c", "t"],
    ...                    "clicks": [1, 0, 2, 1, 0], "views": [2, 1, 3, 1, 2]}})
    >>> m = moments_from_frame(ev, unit="user", arm="arm", numerator="clicks",
    ...                        denominator="views")
    >>> float(m["c"].n), float(m["t"].n)
    (2.0, 2.0)
    """
    import narwhals as nw  # the `sql` extra

    spec = _spec(unit, arm, numerator, denominator, covariates, presence, nan_policy)
    try:
        nw_frame = nw.from_native(frame)
    except TypeError as exc:
        raise TypeError(
            "`frame` must be a DataFrame Narwhals knows (pandas, polars, pyarrow, DuckDB, "
            f"PySpark ...); got {type(frame).__name__}."
        ) from exc
    _check_columns(nw_frame.columns, spec)
    view = f"_moments_src_{uuid.uuid4().hex[:12]}"
    if _is_spark(frame, "DataFrame"):
        frame.createOrReplaceTempView(view)
        try:
            return moments_from_sql(frame.sparkSession, view, **_kw(spec))
        finally:
            frame.sparkSession.catalog.dropTempView(view)
    if _is_duckdb(frame, "DuckDBPyRelation"):
        sql = render(view, spec, "duckdb")
        cursor = frame.query(view, sql)
        names = [c.lower() for c in cursor.columns]
        return rows_to_moments([dict(zip(names, r, strict=True)) for r in cursor.fetchall()], spec)
    import duckdb

    if isinstance(nw_frame, nw.LazyFrame):
        nw_frame = nw_frame.collect()
    table = nw_frame.select(list(spec.columns)).to_arrow()
    con = duckdb.connect()
    try:
        con.register(view, table)
        return moments_from_sql(con, view, **_kw(spec))
    finally:
        con.close()


def _kw(spec: MomentSpec) -> dict[str, Any]:
    return dict(
        unit=spec.unit,
        arm=spec.arm,
        numerator=spec.numerator,
        denominator=spec.denominator,
        covariates=spec.covariates,
        presence=spec.presence,
        nan_policy=spec.nan_policy,
    )


for _f in (moments_sql, moments_from_sql, moments_from_frame):
    _f.__doc__ = _f.__doc__.format(keywords=_KEYWORDS_DOC.strip("\n").lstrip(), notes=_NOTES_DOC)
