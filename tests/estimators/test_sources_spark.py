"""Spark is real: a local[1] SparkSession aggregates event rows into the same moments."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
from _sources_data import event_rows
from test_sources import COVS, KW, _units_matrix, assert_moments_equal

from estimators import moments_from_frame, moments_from_sql

pytest.importorskip("pyspark", reason="the `spark` extra (pyspark) is not installed")
if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
    pytest.skip(
        "no Java runtime (java on PATH or JAVA_HOME): Spark cannot start", allow_module_level=True
    )

# Starting the JVM takes 10-150 s on a loaded 2-core machine: run with `pytest -m slow`.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def spark(tmp_path_factory):
    from pyspark.sql import SparkSession

    warehouse = tmp_path_factory.mktemp("spark-warehouse")
    session = (
        SparkSession.builder.master("local[1]")
        .appName("estimators-sources-test")
        .config("spark.sql.warehouse.dir", str(warehouse))
        .config("spark.sql.shuffle.partitions", "1")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.memory", "1g")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.driver.extraJavaOptions", f"-Dderby.system.home={warehouse}")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture(scope="module")
def data():
    return event_rows(seed=17, n_units=300)


def _none(x):
    return None if np.isnan(x) else float(x)


@pytest.fixture(scope="module")
def spark_events(spark, data):
    events, _ = data
    # Rows as Python tuples: PySpark's pandas path warns under pandas 3 (filterwarnings=error).
    rows = [
        (int(u), str(g), int(c), int(v), float(r), _none(pc), _none(pv))
        for u, g, c, v, r, pc, pv in events.itertuples(index=False)
    ]
    schema = (
        "user_id long, variant string, clicks long, views long, revenue double, "
        "pre_clicks double, pre_views double"
    )
    frame = spark.createDataFrame(rows, schema)
    frame.createOrReplaceTempView("events")
    return frame


def test_moments_from_sql_spark_equals_per_unit_arrays(spark, spark_events, data):
    _, units = data
    out = moments_from_sql(spark, "events", covariates=COVS, presence=True, **KW)
    assert list(out) == sorted(units)
    for arm, u in units.items():
        assert_moments_equal(out[arm], _units_matrix(u, COVS, presence=True))


def test_moments_from_frame_spark_equals_per_unit_arrays(spark_events, data):
    _, units = data
    out = moments_from_frame(spark_events.filter("variant != 't2'"), covariates=COVS, **KW)
    assert sorted(out) == ["control", "treatment"]
    for arm in out:
        assert_moments_equal(out[arm], _units_matrix(units[arm], COVS))


def test_spark_query_text_and_integer_overflow(spark):
    # LONG products overflow (Spark 4 raises in ANSI mode) unless cast to DOUBLE first.
    big = 2**40
    spark.createDataFrame(
        [(1, "a", big), (2, "a", 2 * big), (3, "b", big), (4, "b", 3 * big)],
        "u long, g string, v long",
    ).createOrReplaceTempView("big")
    out = moments_from_sql(spark, "SELECT * FROM big WHERE u > 0", unit="u", arm="g", numerator="v")
    z = np.column_stack([[float(big), 2.0 * big], [1.0, 1.0]])
    assert_moments_equal(out["a"], z)
