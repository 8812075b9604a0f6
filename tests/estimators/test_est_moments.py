"""RatioMoments: third-order sums, shift constants, and the formulas defined once."""

from __future__ import annotations

import math

import numpy as np
import pytest
from _est_data import clicks_views

from estimators import RatioMoments, cuped_test, cuped_test_from_moments, mean_test, ratio_test
from estimators.moments import _ArmStats, ratio_covariate_matrix

THIRD = ("sum_vvv", "sum_vvm", "sum_vmm", "sum_mmm")


def _direct_third(v, m, sv=0.0, sm=0.0):
    v, m = v - sv, m - sm
    return {"sum_vvv": v**3, "sum_vvm": v * v * m, "sum_vmm": v * m * m, "sum_mmm": m**3}


def test_from_arrays_fills_third_order_sums():
    v, m = clicks_views(np.random.default_rng(1), 40)
    mom = RatioMoments.from_arrays(v, m)
    assert mom.has_third
    for f, col in _direct_third(v, m).items():
        assert float(getattr(mom, f)) == pytest.approx(col.sum(), rel=1e-14)


def test_third_order_fields_come_together():
    with pytest.raises(ValueError, match=r"third-order fields .* missing \['sum_vmm', 'sum_mmm'\]"):
        RatioMoments(1, 1, 1, 1, 1, 1, sum_vvv=1.0, sum_vvm=1.0)


def test_from_mean_sums_third_order_matches_from_arrays():
    y = np.random.default_rng(2).exponential(size=30)
    a = RatioMoments.from_mean_sums(30, y.sum(), y @ y, sum_yyy=(y**3).sum())
    b = RatioMoments.from_arrays(y)
    for f in THIRD:
        assert float(getattr(a, f)) == pytest.approx(float(getattr(b, f)), rel=1e-13)
    np.testing.assert_allclose(a._stats().m3, b._stats().m3, rtol=1e-10, atol=1e-12)


def test_central_third_moments_match_two_pass():
    v, m = clicks_views(np.random.default_rng(3), 50)
    got = RatioMoments.from_arrays(v, m)._stats().m3
    want = _ArmStats.from_units(np.column_stack([v, m])).m3
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)


def test_reshift_leaves_every_estimate_unchanged():
    rng = np.random.default_rng(4)
    v, m = clicks_views(rng, 60)
    x = rng.normal(3.0, 1.0, size=(60, 2))
    mom = RatioMoments.from_arrays(v, m, x)
    other = mom.reshift(1.5, 4.0, [3.0, -2.0])
    assert float(other.shift_v) == 1.5 and other.shift_x.tolist() == [3.0, -2.0]
    a, b = mom._stats(), other._stats()
    for field in ("mean", "ss", "m3"):
        np.testing.assert_allclose(getattr(b, field), getattr(a, field), rtol=1e-10, atol=1e-9)
    # and the shifted sums are the sums of the shifted columns
    assert float(other.sum_vv) == pytest.approx(((v - 1.5) ** 2).sum(), rel=1e-12)
    assert float(other.sum_vmm) == pytest.approx(((v - 1.5) * (m - 4.0) ** 2).sum(), rel=1e-12)


def test_adding_parts_with_different_shifts_is_exact():
    rng = np.random.default_rng(5)
    v = 1e9 + rng.normal(size=80)
    m = 1.0 + rng.poisson(3.0, size=80)
    part1 = RatioMoments.from_arrays(v[:30], m[:30])
    part2 = RatioMoments.from_arrays(v[30:], m[30:]).reshift(1e9 + 7.0, 2.0)
    pooled = part1 + part2
    ref = RatioMoments.from_arrays(v, m)
    assert float(pooled.shift_v) == float(part1.shift_v) == 1e9
    a, b = pooled._stats(), ref._stats()
    np.testing.assert_allclose(a.ss, b.ss, rtol=1e-9)
    np.testing.assert_allclose(a.m3[..., 3], b.m3[..., 3], rtol=1e-9)
    np.testing.assert_allclose(a.mean, b.mean, rtol=1e-15)


@pytest.mark.parametrize("den", [False, True])
def test_huge_mean_keeps_its_standard_error(den):
    """Mean 1e9, s.d. 1: s.e. to 1e-6 relative from arrays and from moments."""
    rng = np.random.default_rng(6)
    yt, yc = 1e9 + rng.normal(size=500), 1e9 + 0.1 + rng.normal(size=400)
    dt, dc = (np.ones(500), np.ones(400)) if not den else (np.full(500, 2.0), np.full(400, 2.0))
    # reference: exact centred variances on the shifted data (shift is exact in float)
    ref_t, ref_c = (yt - 1e9) / dt, (yc - 1e9) / dc
    want = math.sqrt(ref_t.var(ddof=1) / 500 + ref_c.var(ddof=1) / 400)
    arrays = ratio_test(yt, dt, yc, dc) if den else mean_test(yt, yc)
    mt, mc = RatioMoments.from_arrays(yt, dt), RatioMoments.from_arrays(yc, dc)
    moments = ratio_test(mt, mc)
    assert float(mt.shift_v) == 1e9
    assert arrays.std_error == pytest.approx(want, rel=1e-6)
    assert moments.std_error == pytest.approx(want, rel=1e-6)


def test_unshifted_huge_mean_sums_lose_the_variance():
    """Negative control: the same data in raw sums has no correct digit left."""
    rng = np.random.default_rng(6)
    y = 1e9 + rng.normal(size=500)
    raw = RatioMoments.from_mean_sums(500, y.sum(), y @ y)
    shifted = RatioMoments.from_arrays(y)
    want = (y - 1e9).var(ddof=1) / 500
    got = float(shifted.ratio_variance())
    assert got == pytest.approx(want, rel=1e-9)
    try:
        bad = float(raw.ratio_variance())
    except ValueError:  # pragma: no cover - raw sums may even look impossible
        return
    assert abs(bad - want) > 1e-3 * want


def test_cauchy_schwarz_violation_is_refused():
    with pytest.raises(ValueError, match=r"`RatioMoments.sum_vv` must be >= `sum_v`\^2 / n"):
        RatioMoments(n=4, sum_v=6.0, sum_m=8.0, sum_vv=5.0, sum_mm=20.0, sum_vm=12.0)
    with pytest.raises(ValueError, match=r"`RatioMoments.sum_mm` must be >= `sum_m`\^2 / n"):
        RatioMoments(n=4, sum_v=6.0, sum_m=8.0, sum_vv=10.0, sum_mm=15.0, sum_vm=12.0)


def test_methods_equal_the_textbook_formulas():
    v, m = clicks_views(np.random.default_rng(7), 70)
    mom = RatioMoments.from_arrays(v, m)
    r = v.sum() / m.sum()
    mv, mm = v.mean(), m.mean()
    lin = v / mm - mv / mm**2 * m
    assert float(mom.ratio()) == pytest.approx(r, rel=1e-14)
    assert float(mom.ratio_variance()) == pytest.approx(lin.var(ddof=1) / 70, rel=1e-11)
    cov = np.cov(v, m)
    delta = (cov[0, 0] - 2 * r * cov[0, 1] + r * r * cov[1, 1]) / mm**2 / 70
    assert float(mom.ratio_variance()) == pytest.approx(delta, rel=1e-11)
    a, b = mom.linearization()
    np.testing.assert_allclose(a * v + b * m, lin, rtol=1e-12)


def test_ratio_covariate_transform_linearises_pairs():
    rng = np.random.default_rng(8)
    x = rng.poisson(4.0, size=(50, 3)).astype(float) + 1.0
    mom = RatioMoments.from_arrays(rng.normal(size=50), None, x)
    B = mom.ratio_covariate_transform([(0, 2)])
    xb = x.mean(0)
    np.testing.assert_allclose(B[0], [1 / xb[2], 0.0, -xb[0] / xb[2] ** 2], rtol=1e-12)
    np.testing.assert_allclose(B[1], [0.0, 1.0, 0.0])
    np.testing.assert_allclose(ratio_covariate_matrix(xb, [(0, 2)], 3), B, rtol=1e-12)


def test_cuped_from_shifted_moments_equals_arrays():
    rng = np.random.default_rng(9)
    n = 200
    x = 5e8 + rng.normal(size=n)
    y = 2.0 * (x - 5e8) + rng.normal(size=n) + 1e9
    arm = np.r_[np.ones(n // 2), np.zeros(n // 2)].astype(bool)
    y = y + 0.3 * arm
    ref = cuped_test(y - 1e9, arm.astype(float), x - 5e8)
    mt, mc = (
        RatioMoments.from_arrays(y[arm], None, x[arm]),
        RatioMoments.from_arrays(y[~arm], None, x[~arm]),
    )
    got = cuped_test_from_moments(mt, mc)
    assert got.estimate == pytest.approx(ref.estimate, rel=1e-6)
    assert got.std_error == pytest.approx(ref.std_error, rel=1e-6)


def test_simulator_moments_carry_third_order_sums():
    from sim import Deng2018Classes, simulate_clicks, simulate_moments

    mom = simulate_moments(Deng2018Classes(), 60, 2, rng=3)
    rm = RatioMoments.from_simulator(mom, 1, covariates=False)
    assert rm.has_third and rm.sum_vvv.shape == (2,)
    data = simulate_clicks(Deng2018Classes(), 60, rng=np.random.SeedSequence(3).spawn(2)[0])
    t = data.arm == 1
    v, m = data.clicks[t].astype(float), data.views[t].astype(float)
    for f, col in _direct_third(v, m).items():
        assert getattr(rm, f)[0] == col.sum()
