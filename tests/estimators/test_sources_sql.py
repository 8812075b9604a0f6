"""moments_sql: one canonical query, the golden text of each dialect, executed where we can."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from estimators import moments_sql
from estimators.sources import DIALECTS, moments_from_rows

pytest.importorskip("sqlglot", reason="the `sql` extra (sqlglot) is not installed")
duckdb = pytest.importorskip("duckdb", reason="the `sql` extra (duckdb) is not installed")

GOLDEN = Path(__file__).parent / "sql_golden"
KW = dict(
    unit="user_id",
    arm="variant",
    numerator="clicks",
    denominator="views",
    covariates=["pre_clicks"],
    presence=True,
)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_golden_sql(dialect):
    # The golden files were written by this function and read by a person; a change
    # in the generated text (sqlglot upgrade, template edit) must be looked at.
    got = moments_sql("analytics.events", dialect=dialect, **KW)
    assert got + "\n" == (GOLDEN / f"{dialect}.sql").read_text()


@pytest.mark.parametrize(
    ("dialect", "cast"),
    [
        ("duckdb", "CAST(clicks AS DOUBLE)"),
        ("spark", "CAST(clicks AS DOUBLE)"),
        ("bigquery", "CAST(clicks AS FLOAT64)"),
        ("snowflake", "CAST(clicks AS DOUBLE)"),
        ("trino", "CAST(clicks AS DOUBLE)"),
        ("postgres", "CAST(clicks AS DOUBLE PRECISION)"),
    ],
)
def test_each_dialect_casts_to_its_double(dialect, cast):
    assert cast in moments_sql("events", dialect=dialect, **KW)


def test_identifiers_quoted_only_where_needed():
    sql = moments_sql("t", dialect="snowflake", unit="UserId", arm="group", numerator="my clicks")
    assert '"UserId"' in sql and '"group"' in sql and '"my clicks"' in sql
    sql = moments_sql("t", dialect="bigquery", unit="UserId", arm="variant", numerator="v")
    assert "`UserId`" in sql and "MIN(variant)" in sql


def test_query_is_wrapped_unchanged():
    q = "SELECT * FROM `proj.ds.events` WHERE _PARTITIONDATE >= '2026-01-01'"
    sql = moments_sql(q, dialect="bigquery", **KW)
    assert f"(\n{q}\n) AS _src" in sql


def test_duckdb_text_executes_and_mixed_case_columns():
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE ev AS SELECT * FROM (VALUES (1, 'a', 1, 2), (1, 'a', 0, 1), "
        "(2, 'b', 3, 4), (3, 'a', 2, 2), (4, 'b', 1, 1)) t(\"UserId\", \"group\", c, v)"
    )
    sql = moments_sql(
        "ev", dialect="duckdb", unit="UserId", arm="group", numerator="c", denominator="v"
    )
    cur = con.execute(sql)
    names = [d[0] for d in cur.description]
    rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    out = moments_from_rows(rows, unit="UserId", arm="group", numerator="c", denominator="v")
    # arm a: units 1 (V=1, M=3) and 3 (V=2, M=2)
    a = out["a"]._stats()
    np.testing.assert_allclose(a.mean, [1.5, 2.5], rtol=1e-15)
    np.testing.assert_allclose(a.ss, [[0.5, -0.5], [-0.5, 0.5]], rtol=1e-15)


def test_query_or_table_type_error():
    with pytest.raises(TypeError, match=r"`query_or_table` must be a non-empty SQL"):
        moments_sql("  ", dialect="duckdb", **KW)
    with pytest.raises(TypeError, match=r"`dialect` must be a sqlglot dialect name"):
        moments_sql("t", dialect=None, **KW)
