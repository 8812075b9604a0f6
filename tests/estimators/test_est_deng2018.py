"""validation.deng2018: the Table 1 simulation and its registered check."""

from __future__ import annotations

import math

import numpy as np
import pytest

from validation import deng2018 as d
from validation.core import RunContext, get_check


def test_replicates_do_not_depend_on_how_many_are_drawn():
    ss = np.random.SeedSequence(5)
    t_small, c_small = d.simulate_arms("poisson", 20, 300, ss)
    t_big, c_big = d.simulate_arms("poisson", 20, 1_100, ss)
    np.testing.assert_array_equal(t_small.s3, t_big.s3[:300])
    np.testing.assert_array_equal(c_small.s1, c_big.s1[:300])


@pytest.mark.parametrize("model", ["normal", "poisson", "bernoulli"])
def test_simulated_sums_have_the_model_moments(model):
    t, c = d.simulate_arms(model, 50, 2_000, np.random.SeedSequence(6))
    (mx, sx), (my, sy) = d._MODELS[model]
    var_x = {"normal": sx**2, "poisson": mx, "bernoulli": mx * (1 - mx)}[model]
    mean = c.s1.mean() / 50
    assert abs(mean - mx) <= 4 * math.sqrt(var_x / 50 / 2_000)
    assert abs(t.s1.mean() / 50 - my) <= 4 * math.sqrt(var_x * 1.2 / 50 / 2_000)
    if model == "bernoulli":
        np.testing.assert_array_equal(c.s1, c.s3)
    assert d.true_lift(model) == pytest.approx(my / mx - 1)


def test_cell_coverage_reports_every_column():
    cells, diag = d.cell_coverage("bernoulli", 20, 400, np.random.SeedSequence(7))
    assert [c.column for c in cells] == [col for col, _, _ in d.COLUMNS]
    for c in cells:
        assert 0.8 < c.coverage <= 1.0 and c.n_defined + c.n_undefined == 400
        assert math.isnan(c.paper_sign) != c.column.endswith("-bc")
    assert diag.control_coverage < 0.9  # the one-arm variance under-covers
    assert diag.bias_delta > 0.02  # E[Ybar/Xbar] > mu_y/mu_x at n = 20


def test_check_is_registered_with_every_cell():
    check = get_check("deng2018-table1")
    assert check.group == "ab" and "Table 1" in check.claim
    assert sum(len(v) for v in d.PUBLISHED.values()) == 12


@pytest.mark.slow
def test_quick_profile_reproduces_table1():
    """The quick run: 60 cells within the band, and 2 bias cells; every control fails."""
    results = get_check("deng2018-table1").run(RunContext("quick", 20180819))
    assert len(results) == 62
    bad = [r.name for r in results if not r.ok]
    assert not bad, bad
