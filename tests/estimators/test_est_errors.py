"""Bad input raises ValueError / TypeError naming the parameter, the arm and the value."""

from __future__ import annotations

import numpy as np
import pytest

from estimators import (
    RatioMoments,
    cuped_test,
    cuped_test_from_moments,
    cuped_theta,
    linearize_ratio,
    mde,
    mean_test,
    ols_test,
    power,
    ratio_test,
    ratio_test_from_moments,
    sample_size,
)

V = [1.0, 2.0, 0.0, 3.0]
M = [4.0, 4.0, 2.0, 5.0]
Y = [3.0, 5.0, 4.0, 6.0, 2.0, 3.0]
ARM = [1, 1, 1, 0, 0, 0]
X = [1.0, 3.0, 2.0, 4.0, 1.0, 2.5]
NAN = float("nan")


def _mom(**kw):
    base = dict(n=4, sum_v=6.0, sum_m=15.0, sum_vv=14.0, sum_mm=61.0, sum_vm=27.0)
    base.update(kw)
    return RatioMoments(**base)


CASES = [
    # zero total denominator, per arm
    (ratio_test, (V, [0, 0, 0, 0], V, M), {}, r"`den_t` sums to 0 in the treatment arm"),
    (ratio_test, (V, M, V, [0, 0, 0, 0]), {}, r"`den_c` sums to 0 in the control arm"),
    (
        ratio_test_from_moments,
        (_mom(), _mom(sum_m=0.0, sum_mm=0.0, sum_vm=0.0)),
        {},
        r"`moments_c.sum_m` has a total <= 0 in the control arm",
    ),
    (cuped_test, (Y, ARM, X), {"den": [0, 0, 0, 1, 1, 1]}, r"`den` sums to 0 in the treatment arm"),
    # fewer than 2 units / empty arm
    (ratio_test, ([1.0], [2.0], V, M), {}, r"`num_t` has 1 unit in the treatment arm"),
    (ratio_test, (V, M, [], []), {}, r"`num_c` is empty in the control arm"),
    (mean_test, ([1.0, 2.0], [3.0]), {}, r"`y_c` has 1 unit in the control arm"),
    (
        ratio_test_from_moments,
        (_mom(n=1, sum_v=2.0, sum_m=4.0, sum_vv=4.0, sum_mm=16.0, sum_vm=8.0), _mom()),
        {},
        r"`moments_t.n` has fewer than 2 units in the treatment arm",
    ),
    (cuped_test, (Y, [1, 0, 0, 0, 0, 0], X), {}, r"`y` has 1 unit in the treatment arm"),
    (ols_test, (Y, [0] * 6), {}, r"`y` is empty in the treatment arm"),
    # NaN / inf
    (
        ratio_test,
        ([1.0, NAN, 0.0, 3.0], M, V, M),
        {},
        r"`num_t` contains NaN in the treatment arm \(first at unit 1\)",
    ),
    (
        ratio_test,
        (V, M, V, [4.0, np.inf, 2.0, 5.0]),
        {},
        r"`den_c` must be finite in the control arm; got inf at unit 1",
    ),
    (
        mean_test,
        ([1.0, 2.0, np.inf], [1.0, 2.0]),
        {"nan_policy": "omit"},
        r"`y_t` must be finite in the treatment arm",
    ),
    (cuped_test, (Y, ARM, [1.0, NAN, 2.0, 4.0, 1.0, 2.5]), {}, r"`X` contains NaN"),
    (_mom, (), {"sum_v": NAN}, r"`RatioMoments.sum_v` must be finite"),
    # negative counts
    (
        ratio_test,
        (V, [4.0, -1.0, 2.0, 5.0], V, M),
        {},
        r"`den_t` holds counts and must be >= 0 in the treatment arm; got -1.0 at unit 1",
    ),
    (
        cuped_test,
        (Y, ARM, X),
        {"den": [1, 1, 1, -2, 1, 1]},
        r"`den` holds counts and must be >= 0; got -2.0",
    ),
    (_mom, (), {"n": -3}, r"`RatioMoments.n` must be >= 0; got -3.0"),
    (ratio_test_from_moments, (_mom(sum_m=-1.0), _mom()), {}, r"`moments_t.sum_m` holds counts"),
    # mismatched lengths
    (
        ratio_test,
        (V, M[:3], V, M),
        {},
        r"`num_t` and `den_t` must have the same number of units in the treatment arm; got 4 and 3",
    ),
    (
        cuped_test,
        (Y, ARM[:5], X),
        {},
        r"`y` and `arm` must have the same number of units; got 6 and 5",
    ),
    (
        cuped_test,
        (Y, ARM, X[:4]),
        {},
        r"`y` and `X` must have the same number of units; got 6 and 4",
    ),
    # non-binary arm
    (
        cuped_test,
        (Y, [0, 1, 2, 0, 1, 0], X),
        {},
        r"`arm` must contain only 0 \(control\) and 1 \(treatment\); got values \[0.0, 1.0, 2.0\]",
    ),
    (ols_test, (Y, [0, 1, 0.5, 0, 1, 0]), {}, r"`arm` must contain only 0 \(control\) and 1"),
    # constant covariate
    (cuped_test, (Y, ARM, [2.0] * 6), {}, r"`X` column 0 is constant \(value 2\)"),
    (
        cuped_test,
        (Y, ARM, np.column_stack([X, [7.0] * 6])),
        {},
        r"`X` column 1 is constant \(value 7\)",
    ),
    (cuped_theta, (Y, [5.0] * 6), {}, r"`X` column 0 is constant \(value 5\)"),
    (ols_test, (Y, ARM, [5.0] * 6), {}, r"`X` column 0 is constant \(value 5\)"),
    # zero variance / relative lift undefined
    (mean_test, ([1.0, 1.0], [2.0, 2.0]), {}, r"the standard error is 0"),
    (
        ratio_test,
        (V, M, [0.0] * 4, M),
        {"relative": True},
        r"a relative lift needs a control ratio > 0",
    ),
    (
        ratio_test,
        ([0.0] * 4, M, V, M),
        {"relative": True, "ci_method": "log"},
        r"ci_method='log' needs a treatment ratio > 0",
    ),
    # options
    (
        ratio_test,
        (V, M, V, M),
        {"ci_method": "log"},
        r"`ci_method` must be 'delta' for an absolute difference",
    ),
    (ratio_test, (V, M, V, M), {"ci_method": "wald"}, r"`ci_method` must be one of"),
    (ratio_test, (V, M, V, M), {"alternative": "two_sided"}, r"`alternative` must be one of"),
    (
        ratio_test,
        (V, M, V, M),
        {"confidence_level": 1.5},
        r"`confidence_level` must be in \(0, 1\); got 1.5",
    ),
    (ratio_test, (V, M, V, M), {"ddof": -1}, r"`ddof` must be in \[0, 2\); got -1.0"),
    (ratio_test, (V, M, V, M), {"distribution": "normal"}, r"`distribution` must be one of"),
    (ratio_test, (V, M, V, M), {"nan_policy": "drop"}, r"`nan_policy` must be one of"),
    (cuped_test, (Y, ARM, X), {"theta": "ols"}, r"`theta` must be one of"),
    (
        cuped_test,
        (Y, ARM, X),
        {"covariate_ratios": [(0, 0)]},
        r"`covariate_ratios` entries must be pairs",
    ),
    (cuped_test_from_moments, (_mom(), _mom()), {}, r"`moments_t` has no covariates"),
    (
        ratio_test_from_moments,
        (_mom(), _mom()),
        {"degenerate": "skip"},
        r"`degenerate` must be one of",
    ),
    (linearize_ratio, (V, [0.0] * 4), {}, r"`den` sums to 0"),
    (ols_test, (Y, ARM), {"cov_type": "cluster"}, r"`cov_type` 'cluster' needs `cluster`"),
    # power
    (sample_size, (1.0, 0.0), {}, r"`mde` must be finite and non-zero; got 0.0"),
    (sample_size, (-1.0, 0.2), {}, r"`sigma` must be finite and > 0; got -1.0"),
    (sample_size, (1.0, 0.2), {"alpha": 0.0}, r"`alpha` must be in \(0, 1\); got 0.0"),
    (sample_size, (1.0, 0.2), {"power": 1.0}, r"`power` must be in \(0, 1\); got 1.0"),
    (sample_size, (1.0, 0.2), {"ratio": 0.0}, r"`ratio` must be finite and > 0; got 0.0"),
    (sample_size, (1.0, 0.2), {"r2": 1.0}, r"`r2` must be in \[0, 1\); got 1.0"),
    (
        sample_size,
        (1.0, 0.2),
        {"method": "lehr", "alpha": 0.01},
        r"Lehr's rule holds for alpha=0.05",
    ),
    (sample_size, (1.0, 0.2), {"relative": True}, r"`baseline` is required"),
    (
        sample_size,
        (1.0, -0.2),
        {"alternative": "greater"},
        r"`mde` must have the sign of the alternative",
    ),
    (sample_size, (1.0, 0.2), {"method": "exact"}, r"`method` must be one of"),
    (power, (1.0, 0.2, 0.0), {}, r"`n_per_arm` must be finite and > 0; got 0.0"),
    (power, (1.0, 0.2, 100), {"method": "lehr"}, r"'lehr' is a sample-size rule"),
    (mde, (1.0, 100), {"power": 0.01}, r"`power` must exceed the test's size 0.025"),
]


@pytest.mark.parametrize(
    "func,args,kwargs,match", CASES, ids=[f"{i}-{c[0].__name__}" for i, c in enumerate(CASES)]
)
def test_bad_input_raises_value_error(func, args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        func(*args, **kwargs)


TYPE_CASES = [
    (ratio_test, (["a", "b"], M, V, M), {}, r"`num_t` must be array-like of numbers"),
    (cuped_test, (Y, ["t", "c", "t", "c", "t", "c"], X), {}, r"`arm` must be 0/1 or boolean"),
    (ratio_test, (V, M, V, M), {"relative": "yes"}, r"`relative` must be a bool"),
    (ratio_test, (V, M, V, M), {"ddof": "1"}, r"`ddof` must be a real number"),
    (ratio_test_from_moments, (V, M), {}, r"`moments_t` must be a RatioMoments"),
    (ratio_test, (_mom(), M, V, M), {}, r"pass either four arrays or two RatioMoments"),
]


@pytest.mark.parametrize("func,args,kwargs,match", TYPE_CASES)
def test_bad_types_raise_type_error(func, args, kwargs, match):
    with pytest.raises(TypeError, match=match):
        func(*args, **kwargs)


def test_nothing_silently_nan():
    """A valid call never returns NaN; a degenerate one raises instead."""
    res = ratio_test(V, M, V, M)
    assert res.estimate == 0.0 and np.isfinite(res.std_error)
    with pytest.raises(ValueError, match="standard error is 0"):
        ratio_test([1.0, 2.0], [1.0, 2.0], [2.0, 4.0], [1.0, 2.0])
