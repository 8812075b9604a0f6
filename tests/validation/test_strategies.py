"""Tests of validation.strategies: drawn experiments are valid, and each case is what it says."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import find, given, settings

import sim
from validation import strategies

QUICK = settings(max_examples=25)
FIND = settings(database=None, max_examples=200)


def _arms(data):
    return [data.arm == a for a in (0, 1)]


@QUICK
@given(strategies.ctr_experiments())
def test_drawn_experiments_are_valid_input(data):
    assert isinstance(data, sim.ClickData)
    for mask in _arms(data):
        assert mask.sum() >= 2
        assert data.views[mask].sum() > 0
    assert (data.clicks >= 0).all() and (data.clicks <= data.views).all()
    assert data.arm.shape == data.views.shape == data.pre_clicks.shape


@pytest.mark.parametrize("case", strategies.CASES)
def test_each_case_is_drawn(case):
    data = find(strategies.ctr_experiments(cases=[case]), lambda d: True, settings=FIND)
    n = [int(m.sum()) for m in _arms(data)]
    if case == "unbalanced":
        assert max(n) >= 10 * min(n)
    if case == "zero-clicks":
        assert min(int(data.clicks[m].sum()) for m in _arms(data)) == 0
    if case == "constant-covariate":
        assert np.unique(data.pre_clicks).size == 1 and np.unique(data.pre_views).size == 1


@pytest.mark.slow
def test_scenarios_strategy_covers_every_simulator():
    for cls in (sim.BetaBinomialCtr, sim.Deng2018Classes, sim.ReferenceCtr):
        found = find(strategies.ctr_scenarios(), lambda s, c=cls: isinstance(s, c), settings=FIND)
        assert isinstance(found, cls)


def test_fixed_scenarios_and_sizes():
    scen = sim.Deng2018Classes(effect=0.02)
    data = find(
        strategies.ctr_experiments(
            scenarios=[scen], min_users_per_arm=5, max_users_per_arm=6, cases=["plain"]
        ),
        lambda d: True,
        settings=FIND,
    )
    assert data.scenario == scen
    assert 5 <= data.n_control <= 6 and 5 <= data.n_treatment <= 6


@QUICK
@given(strategies.ctr_moments(n_replicates=3, max_users_per_arm=50))
def test_moments_are_per_arm_sufficient_statistics(mom):
    assert isinstance(mom, sim.Moments)
    assert mom.sum_v.shape == (3, 2)
    assert (mom.sum_m > 0).all() and (mom.n >= 2).all()
    assert (mom.sum_vv >= mom.sum_v).all()  # V integer: V^2 >= V


@QUICK
@given(strategies.estimator_inputs("covariate"))
def test_covariate_inputs(args):
    y, arm, x = args
    assert y.shape == arm.shape and x.shape == (y.size, 1)
    assert set(np.unique(arm)) == {0, 1}


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"min_users_per_arm": 1}, ValueError, "`min_users_per_arm` must be >= 2; got 1"),
        ({"max_users_per_arm": 1.5}, TypeError, "`max_users_per_arm` must be an int"),
        (
            {"min_users_per_arm": 5, "max_users_per_arm": 3},
            ValueError,
            r"`max_users_per_arm` must be >= `min_users_per_arm` \(5\); got 3",
        ),
        ({"cases": ["odd"]}, ValueError, "`cases` must be a non-empty subset"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        strategies.ctr_experiments(**kwargs)


def test_bad_kind_and_replicates():
    with pytest.raises(ValueError, match="`kind` must be one of"):
        strategies.estimator_inputs("median")
    with pytest.raises(ValueError, match="`n_replicates` must be >= 1; got 0"):
        strategies.ctr_moments(n_replicates=0)
