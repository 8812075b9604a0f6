"""Edge cases of issue 12: each a clear ValueError naming the parameter, or a warning."""

from __future__ import annotations

import numpy as np
import pytest

from estimators import (
    EstimatorWarning,
    RatioMoments,
    cuped_test,
    cuped_test_from_moments,
    mde,
    mean_test,
    ols_test,
    ratio_test,
    sample_size,
)

RNG = np.random.default_rng(2012)
Y20 = RNG.normal(size=20)
ARM20 = np.r_[np.ones(10), np.zeros(10)]
CLUSTER_NAN = np.where(np.arange(20) % 7 == 3, np.nan, np.arange(20.0))


def _impossible_moments():
    # sum_vv = 5 < sum_v^2 / n = 9: no data has these sums
    return RatioMoments(n=4, sum_v=6.0, sum_m=8.0, sum_vv=5.0, sum_mm=20.0, sum_vm=12.0)


ERRORS = [
    ("impossible moments", _impossible_moments, (), {}, r"`RatioMoments.sum_vv` must be >="),
    (
        "overflow",
        mean_test,
        (np.array([1e200, 2e200, 3e200]), np.array([1e200, 3e200, 2e200])),
        {},
        r"the variance overflows float64",
    ),
    ("mde power below alpha", mde, (1.0, 100), {"power": 0.03}, r"`power` must exceed `alpha`"),
    (
        "sample_size power below alpha",
        sample_size,
        (1.0, 0.1),
        {"power": 0.04},
        r"`power` must exceed `alpha` = 0.05 \(the power of the test at zero effect",
    ),
    (
        "sample_size array sigma",
        sample_size,
        (np.array([1.0, 2.0]), 0.1),
        {},
        r"`sigma` must be a scalar here; got an array of shape \(2,\)",
    ),
    (
        "NaN cluster labels",
        ols_test,
        (Y20, ARM20),
        {"cluster": CLUSTER_NAN},
        r"`cluster` contains NaN \(first at row 3\)",
    ),
    (
        "covariate equal to the arm",
        cuped_test,
        (Y20 + ARM20, ARM20, ARM20),
        {},
        r"`X` column 0 is constant within each arm but differs between the arms",
    ),
    (
        "clicks with zero views",
        ratio_test,
        ([1.0, 2.0, 3.0], [0.0, 2.0, 3.0], [1.0, 1.0, 1.0], [2.0, 2.0, 2.0]),
        {},
        r"`num_t` is non-zero where `den_t` is 0 in the treatment arm \(first at unit 0",
    ),
]


@pytest.mark.parametrize("case,fn,args,kwargs,match", ERRORS, ids=[c[0] for c in ERRORS])
def test_edge_case_raises_clear_error(case, fn, args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        fn(*args, **kwargs)


def _tiny_cv():
    rng = np.random.default_rng(3)
    yt, yc = 1e7 + rng.normal(size=50), 1e7 + rng.normal(size=60)
    want = np.sqrt(yt.var(ddof=1) / 50 + yc.var(ddof=1) / 60)
    return mean_test(yt, yc).std_error, want


def _tiny_cv_moments():
    rng = np.random.default_rng(3)
    yt, yc = 1e7 + rng.normal(size=50), 1e7 + rng.normal(size=60)
    want = np.sqrt(yt.var(ddof=1) / 50 + yc.var(ddof=1) / 60)
    res = mean_test(RatioMoments.from_arrays(yt), RatioMoments.from_arrays(yc))
    return res.std_error, want


def _shared_scalar_n():
    """cuped_test_from_moments with one n for all replicates (the docs allow it)."""
    rng = np.random.default_rng(4)
    y, x = rng.normal(size=(5, 40)), rng.normal(size=(5, 40))
    y = y + 0.8 * x

    def arm(sl):
        yy, xx = y[:, sl], x[:, sl]
        return RatioMoments.from_mean_sums(
            20,
            yy.sum(1),
            (yy**2).sum(1),
            sum_x=xx.sum(1)[:, None],
            sum_xx=(xx**2).sum(1)[:, None, None],
            sum_yx=(yy * xx).sum(1)[:, None],
        )

    res = cuped_test_from_moments(arm(slice(0, 20)), arm(slice(20, 40)))
    arm_ind = np.r_[np.ones(20), np.zeros(20)]
    want = cuped_test(y[2], arm_ind, x[2]).std_error
    return res.std_error[2], want


VALUES = [
    ("coefficient of variation 1e-7 (arrays)", _tiny_cv),
    ("coefficient of variation 1e-7 (moments)", _tiny_cv_moments),
    ("scalar n shared across replicates", _shared_scalar_n),
]


@pytest.mark.parametrize("case,fn", VALUES, ids=[c[0] for c in VALUES])
def test_edge_case_gives_the_right_value(case, fn):
    got, want = fn()
    assert got == pytest.approx(want, rel=1e-6)


def test_bias_correction_sign_flip_near_zero_control_warns():
    """The -bc lift that flips sign near a zero control ratio warns (EstimatorWarning)."""
    yc = np.r_[1.0, np.zeros(9)]  # control mean 0.1 from one unit of ten
    yt = np.full(10, 1.3)
    yt[::2] = 1.0
    with pytest.warns(EstimatorWarning, match="exceeds 25% of the ratio") as rec:
        res = mean_test(yt, yc, relative=True, ci_method="delta-bc")
    plain = mean_test(yt, yc, relative=True)
    assert plain.estimate > 10 and res.estimate < plain.estimate / 2
    assert issubclass(rec[0].category, RuntimeWarning)
