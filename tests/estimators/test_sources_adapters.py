"""GrowthBook-style sums and tea-tasting aggregates to RatioMoments."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from _sources_data import event_rows
from test_sources import assert_moments_equal

from estimators import RatioMoments, cuped_test_from_moments, ratio_test_from_moments
from estimators.sources import moments_from_growthbook, moments_from_tea_tasting


@pytest.fixture(scope="module")
def units():
    return event_rows(seed=3)[1]


def _growthbook_row(u, covariate=False, ratio=True):
    v, m = u["clicks"], u["views"]
    row = {"count": v.size, "main_sum": v.sum(), "main_sum_squares": v @ v}
    if ratio:
        row.update(
            denominator_sum=m.sum(),
            denominator_sum_squares=m @ m,
            main_denominator_sum_product=v @ m,
        )
    if covariate:
        x = u["pre_clicks"]
        row.update(
            covariate_sum=x.sum(), covariate_sum_squares=x @ x, main_covariate_sum_product=v @ x
        )
    return row


def test_growthbook_ratio_row(units):
    for u in units.values():
        m = moments_from_growthbook(_growthbook_row(u))
        assert_moments_equal(m, np.column_stack([u["clicks"], u["views"]]), rtol=1e-10)


def test_growthbook_mean_row_with_covariate(units):
    got = {a: moments_from_growthbook(_growthbook_row(u, True, False)) for a, u in units.items()}
    ref = {a: RatioMoments.from_arrays(u["clicks"], X=u["pre_clicks"]) for a, u in units.items()}
    r_got = cuped_test_from_moments(got["treatment"], got["control"])
    r_ref = cuped_test_from_moments(ref["treatment"], ref["control"])
    assert r_got.estimate == pytest.approx(r_ref.estimate, rel=1e-12)
    assert r_got.std_error == pytest.approx(r_ref.std_error, rel=1e-12)


def _tea_aggregates(u, cols):
    z = {c: u[c] for c in cols}
    return SimpleNamespace(
        count_=u[cols[0]].size,
        mean_={c: z[c].mean() for c in cols},
        var_={c: z[c].var(ddof=1) for c in cols},
        cov_={(a, b): np.cov(z[a], z[b])[0, 1] for a in cols for b in cols if a < b},
    )


def test_tea_tasting_aggregates(units):
    cols = ["clicks", "views", "pre_clicks"]
    for u in units.values():
        m = moments_from_tea_tasting(
            _tea_aggregates(u, cols),
            numerator="clicks",
            denominator="views",
            covariates=["pre_clicks"],
        )
        assert_moments_equal(m, np.column_stack([u[c] for c in cols]), rtol=1e-12)
    mean = {
        a: moments_from_tea_tasting(_tea_aggregates(u, ["clicks"]), numerator="clicks")
        for a, u in units.items()
    }
    t, c = units["treatment"]["clicks"], units["control"]["clicks"]
    res = ratio_test_from_moments(mean["treatment"], mean["control"])
    assert res.estimate == pytest.approx(t.mean() - c.mean(), rel=1e-12)


def test_tea_tasting_real_aggregates(units):
    aggr = pytest.importorskip(
        "tea_tasting.aggr", reason="tea-tasting (the `adapters` extra) is absent"
    )
    import pandas as pd

    u = units["control"]
    frame = pd.DataFrame({"clicks": u["clicks"], "views": u["views"]})
    got = aggr.read_aggregates(
        frame,
        group_col=None,
        has_count=True,
        mean_cols=("clicks", "views"),
        var_cols=("clicks", "views"),
        cov_cols=(("clicks", "views"),),
    )
    m = moments_from_tea_tasting(got, numerator="clicks", denominator="views")
    assert_moments_equal(m, np.column_stack([u["clicks"], u["views"]]), rtol=1e-12)


@pytest.mark.parametrize(
    ("row", "match"),
    [
        ({"main_sum": 1.0, "main_sum_squares": 1.0}, r"`row` has no field 'count'"),
        ({"count": 2, "main_sum": None, "main_sum_squares": 1.0}, r"`row\['main_sum'\]` is None"),
        (
            {
                "count": 2,
                "main_sum": 1.0,
                "main_sum_squares": 1.0,
                "denominator_sum": 2.0,
                "denominator_sum_squares": 2.0,
                "main_denominator_sum_product": 1.0,
                "covariate_sum": 1.0,
            },
            r"covariate fields on a ratio metric row are not read",
        ),
    ],
)
def test_growthbook_errors(row, match):
    with pytest.raises(ValueError, match=match):
        moments_from_growthbook(row)


def test_tea_tasting_missing_column():
    agg = SimpleNamespace(count_=3, mean_={"a": 1.0}, var_={"a": 1.0}, cov_={})
    with pytest.raises(ValueError, match=r"the aggregates have no mean for 'b'"):
        moments_from_tea_tasting(agg, numerator="a", denominator="b")
