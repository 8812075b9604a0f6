"""Tests of validation.properties: the suite's estimators satisfy them, broken ones do not."""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
from hypothesis import assume, given, settings

import estimators
from validation import properties, strategies

QUICK = settings(max_examples=25)
RATIO_ARGS = (
    [1.0, 2.0, 0.0, 3.0],
    [4.0, 4.0, 2.0, 5.0],
    [0.0, 1.0, 1.0, 0.0],
    [3.0, 4.0, 5.0, 2.0],
)
MEAN_ARGS = ([3.0, 5.0, 4.0, 7.0], [1.0, 2.0, 3.0, 2.5])


@QUICK
@given(strategies.estimator_inputs("ratio"))
def test_ratio_test_satisfies_every_property(args):
    properties.check_all(estimators.ratio_test, args)


@QUICK
@given(strategies.estimator_inputs("ratio", cases=["plain", "unbalanced"]))
def test_relative_lift_satisfies_the_lift_properties(args):
    assume(np.sum(args[0]) > 0 and np.sum(args[2]) > 0)  # both lifts (T/C and C/T) defined
    lift = functools.partial(estimators.ratio_test, relative=True)
    properties.check_all(lift, args, kind="ratio", estimand="relative")


@QUICK
@given(strategies.estimator_inputs("mean"))
def test_mean_test_satisfies_every_property(args):
    properties.check_all(estimators.mean_test, args)


@QUICK
@given(strategies.estimator_inputs("covariate", cases=["plain", "unbalanced", "zero-clicks"]))
def test_cuped_test_satisfies_every_property(args):
    properties.check_all(estimators.cuped_test, args, rtol=1e-7)


@QUICK
@given(strategies.estimator_inputs("covariate", cases=["constant-covariate"]))
def test_cuped_test_raises_clearly_on_a_constant_covariate(args):
    # degenerate but valid input: a clear error is allowed, a silent NaN is not
    with pytest.raises(ValueError, match="constant"):
        properties.check_no_silent_nan(estimators.cuped_test, args)


# ----------------------------------------------------------------------------- controls
def _z_result(est: float, se: float, **over) -> dict[str, float]:
    out = {
        "estimate": est,
        "std_error": se,
        "ci_low": est - 1.96 * se,
        "ci_high": est + 1.96 * se,
        "pvalue": 0.5,
    }
    return {**out, **over}


def _mean_se(y_t, y_c):
    y_t, y_c = np.asarray(y_t, float), np.asarray(y_c, float)
    return y_t.mean() - y_c.mean(), math.sqrt(
        y_t.var(ddof=1) / y_t.size + y_c.var(ddof=1) / y_c.size
    )


def se_with_a_floor(y_t, y_c):
    """Broken: adds a constant to the s.e. (not equivariant in the unit of Y)."""
    est, se = _mean_se(y_t, y_c)
    return _z_result(est, se + 0.01)


def absolute_estimate(y_t, y_c):
    """Broken: |difference| (does not flip sign when the arms swap)."""
    est, se = _mean_se(y_t, y_c)
    return _z_result(abs(est), se)


def shifted_interval(y_t, y_c):
    """Broken: the interval is shifted past the estimate."""
    est, se = _mean_se(y_t, y_c)
    return _z_result(est, se, ci_low=est + se, ci_high=est + 3 * se)


def nan_pvalue(y_t, y_c):
    """Broken: a NaN p-value on valid input."""
    est, se = _mean_se(y_t, y_c)
    return _z_result(est, se, pvalue=float("nan"))


def per_view_ratio(num_t, den_t, num_c, den_c):
    """Broken: the s.e. uses the number of views as n (changes when V and M are rescaled)."""
    res = estimators.ratio_test(num_t, den_t, num_c, den_c)
    se = res.std_error * math.sqrt(len(num_t) / np.sum(den_t))
    return _z_result(float(res.estimate), se)


@pytest.mark.parametrize(
    ("broken", "prop", "match"),
    [
        (se_with_a_floor, properties.check_scale_invariance, "`std_error` should be"),
        (absolute_estimate, properties.check_arm_swap, "arms swapped: `estimate` should be"),
        (shifted_interval, properties.check_ci_contains_estimate, "does not contain the estimate"),
        (nan_pvalue, properties.check_no_silent_nan, "`pvalue` is NaN on valid input"),
    ],
)
def test_each_property_rejects_its_broken_estimator(broken, prop, match):
    with pytest.raises(AssertionError, match=match):
        prop(broken, MEAN_ARGS)
    with pytest.raises(AssertionError, match=match):
        properties.check_all(broken, MEAN_ARGS)


def test_ratio_scale_invariance_rejects_a_per_view_standard_error():
    properties.check_scale_invariance(estimators.ratio_test, RATIO_ARGS)
    with pytest.raises(AssertionError, match=r"V and M multiplied by 3: `std_error`"):
        properties.check_scale_invariance(per_view_ratio, RATIO_ARGS)


def test_messages_name_the_estimator():
    with pytest.raises(AssertionError, match="test_properties:absolute_estimate"):
        properties.check_arm_swap(absolute_estimate, MEAN_ARGS)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (
            lambda: properties.check_all(estimators.mean_test, RATIO_ARGS),
            ValueError,
            r"`args` of a 'mean' estimator must have 2 arrays; got 4",
        ),
        (
            lambda: properties.check_scale_invariance(estimators.mean_test, MEAN_ARGS, factor=0),
            ValueError,
            "`factor` must be a positive finite number; got 0",
        ),
        (
            lambda: properties.check_arm_swap(estimators.mean_test, MEAN_ARGS, estimand="x"),
            ValueError,
            "`estimand` must be 'difference' or 'relative'",
        ),
        (
            lambda: properties.check_all(estimators.mean_test, MEAN_ARGS, kind="median"),
            ValueError,
            "`kind` must be one of",
        ),
    ],
)
def test_bad_arguments(call, error, match):
    with pytest.raises(error, match=match):
        call()
