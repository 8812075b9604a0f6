"""Experiment data in: DataFrames, SQL engines and Spark to per-arm ``RatioMoments``.

``moments_from_frame`` (pandas, polars, pyarrow, DuckDB relations, PySpark),
``moments_from_sql`` (DuckDB, Spark, any DB-API connection) and ``moments_sql``
(the SQL text for a warehouse dialect) all run one canonical aggregation; the
adapters read GrowthBook-style sums and tea-tasting aggregates. DuckDB, sqlglot
and Narwhals (the ``sql`` extra) and pyspark (the ``spark`` extra) are imported
only when a function needs them.
"""

from ._adapters import moments_from_growthbook, moments_from_tea_tasting
from ._analyze import Analysis, adjust_pvalues, analyze_moments
from ._api import moments_from_frame, moments_from_sql, moments_sql
from ._assemble import moments_from_rows
from ._sql import DIALECTS

__all__ = [
    "DIALECTS",
    "Analysis",
    "adjust_pvalues",
    "analyze_moments",
    "moments_from_frame",
    "moments_from_growthbook",
    "moments_from_rows",
    "moments_from_sql",
    "moments_sql",
    "moments_from_tea_tasting",
]
