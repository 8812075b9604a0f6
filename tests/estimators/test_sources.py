"""estimators.sources: frames and SQL engines to per-arm moments, against per-unit arrays."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest
from _sources_data import event_rows

from estimators import (
    RatioMoments,
    cuped_test,
    cuped_test_from_moments,
    moments_from_frame,
    moments_from_sql,
    moments_sql,
    ratio_test,
    ratio_test_from_moments,
)
from estimators.moments import _ArmStats

duckdb = pytest.importorskip("duckdb", reason="the `sql` extra (duckdb) is not installed")
pl = pytest.importorskip("polars", reason="the `sql` extra (polars) is not installed")
pa = pytest.importorskip("pyarrow", reason="the `sql` extra (pyarrow) is not installed")

RTOL = 1e-12
KW = dict(unit="user_id", arm="variant", numerator="clicks", denominator="views")
COVS = ("pre_clicks", "pre_views")


@pytest.fixture(scope="module")
def data():
    return event_rows(seed=13)


def _units_matrix(u, covariates=(), presence=False, ratio=True):
    cols = [u["clicks"], u["views"] if ratio else np.ones_like(u["clicks"])]
    cols += [u[c] for c in covariates]
    if presence:
        cols.append(u["present"])
    return np.column_stack(cols)


def assert_moments_equal(m: RatioMoments, z: np.ndarray, rtol: float = RTOL):
    """Centred moments of ``m`` equal the two-pass moments of the unit matrix ``z``."""
    ref = _ArmStats.from_units(z)
    got = m._stats()
    assert float(got.n) == z.shape[0]
    np.testing.assert_allclose(got.mean, ref.mean, rtol=rtol, atol=0)
    scale = np.sqrt(np.outer(np.diag(ref.ss), np.diag(ref.ss)))
    assert np.all(np.abs(got.ss - ref.ss) <= rtol * scale), (got.ss, ref.ss)


def _frames(events):
    return {
        "pandas": events,
        "polars": pl.from_pandas(events),
        "polars-lazy": pl.from_pandas(events).lazy(),
        "pyarrow": pa.Table.from_pandas(events, preserve_index=False),
        "duckdb": duckdb.from_arrow(pa.Table.from_pandas(events, preserve_index=False)),
    }


@pytest.mark.parametrize("kind", ["pandas", "polars", "polars-lazy", "pyarrow", "duckdb"])
def test_moments_from_frame_equal_per_unit_arrays(data, kind):
    events, units = data
    frame = _frames(events)[kind]
    out = moments_from_frame(frame, covariates=COVS, presence=True, **KW)
    assert list(out) == sorted(units)
    for arm, u in units.items():
        assert_moments_equal(out[arm], _units_matrix(u, COVS, presence=True))


def test_tests_from_frame_equal_tests_on_arrays(data):
    events, units = data
    out = moments_from_frame(events, covariates=COVS, **KW)
    t, c = units["treatment"], units["control"]
    got = ratio_test_from_moments(out["treatment"], out["control"], relative=True)
    ref = ratio_test(t["clicks"], t["views"], c["clicks"], c["views"], relative=True)
    for f in ("estimate", "std_error", "ci_low", "ci_high", "pvalue"):
        assert getattr(got, f) == pytest.approx(getattr(ref, f), rel=RTOL), f
    got = cuped_test_from_moments(out["treatment"], out["control"], covariate_ratios=[(0, 1)])
    y = np.concatenate([t["clicks"], c["clicks"]])
    den = np.concatenate([t["views"], c["views"]])
    X = np.concatenate([_units_matrix(t, COVS)[:, 2:], _units_matrix(c, COVS)[:, 2:]])
    arm = np.r_[np.ones(t["clicks"].size), np.zeros(c["clicks"].size)]
    ref = cuped_test(y, arm, X, den=den, covariate_ratios=[(0, 1)])
    for f in ("estimate", "std_error", "pvalue"):
        assert getattr(got, f) == pytest.approx(getattr(ref, f), rel=1e-10), f


def test_mean_metric_from_sql_duckdb(data):
    events, units = data
    con = duckdb.connect()
    con.register("ev", events)
    out = moments_from_sql(con, "ev", unit="user_id", arm="variant", numerator="revenue")
    for arm, u in units.items():
        z = np.column_stack([u["revenue"], np.ones_like(u["revenue"])])
        assert_moments_equal(out[arm], z)
        # M = 1 per unit: the moments are those of a mean metric.
        assert float(out[arm].sum_m) == float(out[arm].n)


def test_moments_from_sql_query_text_and_sqlite(data):
    events, units = data
    con = duckdb.connect()
    con.register("ev", events)
    q = "SELECT * FROM ev WHERE variant <> 't2'"
    out = moments_from_sql(con, q, covariates=COVS, **KW)
    assert sorted(out) == ["control", "treatment"]
    lite = sqlite3.connect(":memory:")
    events.to_sql("ev", lite, index=False)
    via_dbapi = moments_from_sql(lite, q, covariates=COVS, **KW)
    for arm in out:
        z = _units_matrix(units[arm], COVS)
        assert_moments_equal(out[arm], z)
        assert_moments_equal(via_dbapi[arm], z)


def test_large_mean_keeps_standard_error():
    # The precision case: unit values of mean 1e9 and s.d. 1.
    rng = np.random.default_rng(5)
    n = 20_000
    import pandas as pd

    y = {a: 1e9 + rng.standard_normal(n) + (0.05 if a == "t" else 0.0) for a in ("c", "t")}
    frame = pd.DataFrame(
        {
            "u": np.arange(2 * n),
            "g": np.repeat(["c", "t"], n),
            "y": np.concatenate([y["c"], y["t"]]),
        }
    )
    out = moments_from_frame(frame, unit="u", arm="g", numerator="y")
    got = ratio_test_from_moments(out["t"], out["c"])
    se_ref = np.sqrt(y["t"].var(ddof=1) / n + y["c"].var(ddof=1) / n)
    assert got.std_error == pytest.approx(se_ref, rel=1e-6)
    # Raw sums of squares cannot do this: the variance is lost below eps * 1e18.
    raw = RatioMoments.from_mean_sums(n, y["c"].sum(), y["c"] @ y["c"])
    assert abs(raw._stats().ss[..., 0, 0] / (n - 1) - y["c"].var(ddof=1)) > 1e-3


def test_integer_columns_do_not_overflow():
    # clicks near 2**62 per unit overflow BIGINT in V*V unless cast to DOUBLE first.
    import pandas as pd

    big = 2**40
    frame = pd.DataFrame(
        {"u": [1, 2, 3, 4], "g": ["a", "a", "b", "b"], "v": np.array([big, 2 * big, big, 3 * big])}
    )
    out = moments_from_frame(frame, unit="u", arm="g", numerator="v")
    z = np.column_stack([[float(big), 2.0 * big], [1.0, 1.0]])
    assert_moments_equal(out["a"], z)


def test_presence_indicator_and_missing_covariates_are_zero(data):
    events, units = data
    out = moments_from_frame(events, covariates=("pre_clicks",), presence=True, **KW)
    m = out["control"]
    assert m.k == 2
    u = units["control"]
    assert float(m.n) == u["clicks"].size
    # units without a pre-period row have covariate 0 and indicator 0
    assert 0 < u["present"].mean() < 1
    assert_moments_equal(m, _units_matrix(u, ("pre_clicks",), presence=True))


def test_string_and_integer_arm_labels():
    import pandas as pd

    frame = pd.DataFrame({"u": [1, 2, 3, 4], "g": [0, 0, 1, 1], "v": [1.0, 2.0, 3.0, 5.0]})
    out = moments_from_frame(frame, unit="u", arm="g", numerator="v")
    assert list(out) == ["0", "1"]


def test_nulls_raise_or_omit(data):
    events, units = data
    ev = events.copy()
    ev.loc[ev.index[:3], "clicks"] = np.nan
    with pytest.raises(ValueError, match=r"NULL values in `numerator` column 'clicks' in \d+ unit"):
        moments_from_frame(ev, **KW)
    out = moments_from_frame(ev, nan_policy="omit", **KW)
    bad = set(ev.loc[ev["clicks"].isna(), "user_id"])
    keep = ev[~ev["user_id"].isin(bad)]
    ref = moments_from_frame(keep, **KW)
    for arm in ref:
        assert_moments_equal(out[arm], _stats_units(keep, arm))


def _stats_units(frame, arm):
    g = frame[frame["variant"] == arm].groupby("user_id")[["clicks", "views"]].sum()
    return g.to_numpy(dtype=float)


def test_unit_in_two_arms_raises():
    import pandas as pd

    frame = pd.DataFrame({"u": [1, 1, 2], "g": ["a", "b", "b"], "v": [1.0, 2.0, 3.0]})
    with pytest.raises(ValueError, match=r"1 unit\(s\) of `unit` column 'u' appear under more"):
        moments_from_frame(frame, unit="u", arm="g", numerator="v")


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(unit="nope"), ValueError, r"column\(s\) \['nope'\] not in the frame"),
        (dict(unit=3), TypeError, r"`unit` must be a non-empty column name"),
        (dict(covariates="pre_clicks"), TypeError, r"`covariates` must be a sequence"),
        (dict(covariates=("a", "a")), ValueError, r"`covariates` must not repeat"),
        (dict(presence=True), ValueError, r"`presence=True` needs at least one column"),
        (dict(nan_policy="drop"), ValueError, r"`nan_policy` must be one of"),
        (dict(arm="user_id"), ValueError, r"`unit` and `arm` must be different"),
    ],
)
def test_errors(data, kwargs, error, match):
    events, _ = data
    with pytest.raises(error, match=match):
        moments_from_frame(events, **{**KW, **kwargs})


def test_frame_type_error():
    with pytest.raises(TypeError, match=r"`frame` must be a DataFrame Narwhals knows"):
        moments_from_frame([1, 2, 3], **KW)


def test_dialect_errors():
    with pytest.raises(ValueError, match=r"`dialect` must be a dialect sqlglot knows"):
        moments_sql("t", dialect="nosuchsql", **KW)
    with pytest.raises(ValueError, match=r"`dialect` is required for a Conn connection"):

        class Conn:
            def cursor(self):  # pragma: no cover - never reached
                raise AssertionError

        moments_from_sql(Conn(), "t", **KW)


def test_partitions_by_unit_add_up(data):
    # Moments of disjoint sets of units (e.g. hash partitions) pool by addition,
    # although each part carries its own shift constants.
    events, units = data
    parts = [events[events["user_id"] % 3 == r] for r in range(3)]
    pooled = [moments_from_frame(p, covariates=COVS, **KW) for p in parts]
    for arm, u in units.items():
        total = pooled[0][arm] + pooled[1][arm] + pooled[2][arm]
        assert_moments_equal(total, _units_matrix(u, COVS))


def test_constant_denominator_shifts_to_zero_sums():
    # Every unit has M = 2: the shifted sums of M are 0, the ratio is still defined.
    import pandas as pd

    rng = np.random.default_rng(2)
    n = 200
    frame = pd.DataFrame(
        {
            "u": np.arange(n),
            "g": np.where(np.arange(n) < n // 2, "a", "b"),
            "v": rng.poisson(1.0, n),
            "m": 2,
        }
    )
    out = moments_from_frame(frame, unit="u", arm="g", numerator="v", denominator="m")
    assert float(out["a"].sum_m) == 0.0 and float(out["a"].shift_m) == 2.0
    a, b = frame[frame.g == "a"], frame[frame.g == "b"]
    ref = ratio_test(b.v, b.m, a.v, a.m)
    got = ratio_test_from_moments(out["b"], out["a"])
    assert got.std_error == pytest.approx(ref.std_error, rel=RTOL)


def test_null_arm_and_unit_are_counted():
    import pandas as pd

    frame = pd.DataFrame(
        {"u": [1, 2, 3, 4, None], "g": ["a", None, None, "b", "b"], "v": [1.0, 2.0, 3.0, 4.0, 5.0]}
    )
    with pytest.raises(
        ValueError, match=r"`arm` column 'g' in 2 unit\(s\); `unit` column 'u' in 1"
    ):
        moments_from_frame(frame, unit="u", arm="g", numerator="v")
    out = moments_from_frame(frame, unit="u", arm="g", numerator="v", nan_policy="omit")
    assert sorted(out) == ["a", "b"] and float(out["b"].n) == 1.0
