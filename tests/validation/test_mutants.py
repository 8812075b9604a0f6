"""The mutation harness: catalogue, swapping, and the 100 % score (slow)."""

import importlib

import pytest

import estimators
import recsys.negatives
from validation.__main__ import main
from validation.mutants import MUTANTS, run_mutant, select_mutants, swapped
from validation.runner import select_checks


def test_catalogue_is_large_named_and_resolvable():
    assert len(MUTANTS) >= 25
    names = [m.name for m in MUTANTS]
    assert len(set(names)) == len(names)
    for m in MUTANTS:
        assert m.description and m.checks
        select_checks(list(m.checks))  # every listed check exists
    targets = {m.target.split(":")[0].split(".")[0] for m in MUTANTS}
    assert targets == {"estimators", "recsys", "sim"}


def test_swap_reaches_package_and_submodule_and_is_undone():
    power = importlib.import_module("estimators.power")  # `estimators.power` is the function
    orig = power.sample_size
    (m,) = select_mutants(["sample-size-21pct-small"])
    with swapped(m):
        assert estimators.sample_size is power.sample_size is not orig
        assert estimators.sample_size(1.0, 0.1).n_control < orig(1.0, 0.1).n_control
    assert estimators.sample_size is orig and power.sample_size is orig


def test_method_swap_is_undone():
    from recsys.frequency import StreamingFrequencyEstimator as Est

    orig = Est.item_probability
    (m,) = select_mutants(["frequency-item-probability-linear"])
    with swapped(m):
        assert Est.item_probability is not orig
    assert Est.item_probability is orig


def test_unknown_mutant_is_a_usage_error(capsys):
    with pytest.raises(ValueError, match="unknown mutant"):
        select_mutants(["no-such-mutant"])
    assert main(["mutants", "--only", "no-such-mutant"]) == 2
    assert main(["mutants", "--list", "--only", "loss-logq-added"]) == 0
    assert "recsys.losses:sampled_softmax_loss" in capsys.readouterr().out


def test_a_fast_mutant_is_killed_and_the_original_restored():
    orig = recsys.negatives.inclusion_probability
    outcome = run_mutant(select_mutants(["inclusion-exponent-4b"])[0])
    assert outcome.killed and any("mixed-inclusion" in c for c in outcome.killed_by)
    assert recsys.negatives.inclusion_probability is orig


#: Mutants whose specific killing cell is part of the guarantee: the two that were once
#: killed only by a check raising (now a cell must fail), and the three added for Deng
#: et al. (2018) Table 1 (a Table 1 cell must see them). Their runs do not stop early.
EXPECTED_KILLERS = {
    "sample-size-ignores-ratio": "power-calibration/reference/ratio-2",
    "ratio-relative-ignored": "power-calibration/reference/relative-lift",
    "ratio-fieller-z-for-t": "deng2018-table1/normal/n=20/fieller",
    "ratio-edgeworth-skewness-x3": "deng2018-table1/poisson/n=20/edgeworth-bc",
    "ratio-lift-bias-sign": "deng2018-table1/poisson/n=20/bias",
}


def test_expected_killers_name_catalogued_mutants():
    assert set(EXPECTED_KILLERS) <= {m.name for m in MUTANTS}


@pytest.mark.slow
@pytest.mark.parametrize("mutant", MUTANTS, ids=lambda m: m.name)
def test_every_mutant_is_killed_by_cells_quick_profile(mutant):
    """The mutation score stays 100 %, every kill by a failing cell (not a check raising);
    one test per mutant, so that they spread over the test workers.

    A mutant's remaining checks are skipped once a cell has killed it
    (``stop_at_first_kill``): the verdict is the same, the figures of the checks that
    ran are the same. Mutants in :data:`EXPECTED_KILLERS` run every listed check and
    must be killed by that cell too.
    """
    killer = EXPECTED_KILLERS.get(mutant.name)
    outcome = run_mutant(mutant, profile="quick", stop_at_first_kill=killer is None)
    assert outcome.kill == "cells", f"{mutant.name}: {outcome.kill or 'survives'}"
    assert killer is None or killer in outcome.killed_by, (mutant.name, outcome.killed_by)


def _spy_on_checks(monkeypatch) -> list[str]:
    import validation.runner

    ran: list[str] = []
    real = validation.runner.run_checks

    def spy(checks, **kwargs):
        ran.extend(c.name for c in checks)
        return real(checks, **kwargs)

    monkeypatch.setattr(validation.runner, "run_checks", spy)
    return ran


def test_stop_at_first_kill_skips_the_remaining_checks(monkeypatch):
    """A mutant killed by its first check's cells: the second check runs only without
    ``stop_at_first_kill``, and the first check's killing cells are the same."""
    import dataclasses

    (m,) = select_mutants(["power-one-sided-alpha"])  # killed by power-mde-roundtrip
    two = dataclasses.replace(m, checks=("power-mde-roundtrip", "retrieval-mixed-inclusion"))
    ran = _spy_on_checks(monkeypatch)
    full = run_mutant(two)
    assert ran == ["power-mde-roundtrip", "retrieval-mixed-inclusion"]
    ran.clear()
    short = run_mutant(two, stop_at_first_kill=True)
    assert ran == ["power-mde-roundtrip"]
    assert short.kill == full.kill == "cells"
    assert short.killed_by == full.killed_by  # the second check killed nothing here


def test_stop_at_first_kill_runs_on_when_nothing_failed(monkeypatch):
    """An honest "mutant" (the original function): every listed check runs, none kills."""
    import dataclasses

    (m,) = select_mutants(["power-one-sided-alpha"])
    honest = dataclasses.replace(
        m, make=lambda orig: orig, checks=("power-mde-roundtrip", "retrieval-mixed-inclusion")
    )
    ran = _spy_on_checks(monkeypatch)
    outcome = run_mutant(honest, stop_at_first_kill=True)
    assert ran == ["power-mde-roundtrip", "retrieval-mixed-inclusion"]
    assert outcome.kill == ""


def test_kill_kind_tells_cells_from_raising_checks():
    from validation.mutants import RAISED, MutantOutcome

    (m,) = select_mutants(["sample-size-ignores-ratio"])
    assert MutantOutcome(m, (), 0.0).kill == ""
    assert MutantOutcome(m, (f"power-calibration{RAISED}",), 0.0).kill == "raised"
    both = (f"power-calibration{RAISED}", "power-calibration/reference/ratio-2")
    assert MutantOutcome(m, both, 0.0).kill == "cells"


def test_theory_doc_lists_every_mutant():
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "theory.md").read_text("utf-8")
    assert [m.name for m in MUTANTS if f"`{m.name}`" not in doc] == []


def test_table1_sees_a_swapped_ratio_estimator():
    """Table 1 looks the estimator up at call time, so the Fieller z-for-t mutant reaches it."""
    import numpy as np

    from validation import deng2018

    (m,) = select_mutants(["ratio-fieller-z-for-t"])

    def fieller_coverage():
        cells, _ = deng2018.cell_coverage("normal", 20, 500, np.random.SeedSequence(3))
        return cells[0].coverage

    honest = fieller_coverage()
    with swapped(m):
        mutated = fieller_coverage()
    assert mutated < honest  # z < t quantile: a narrower interval covers less


def test_power_pilot_size_is_a_parameter():
    import numpy as np

    import sim
    from validation.power_checks import scenario_sigma

    with pytest.raises(ValueError, match="pilot_users"):
        scenario_sigma(sim.ReferenceCtr(), np.random.SeedSequence(0), 1)
    sigma, sigma_se, wrong = scenario_sigma(sim.ReferenceCtr(), np.random.SeedSequence(0), 2_000)
    assert 0 < sigma_se < 0.1 * sigma < wrong


def test_mutants_are_not_grouped(request):
    """The parametrized mutants go to the xdist workers one by one (tests/conftest.py)."""
    assert request.node.get_closest_marker("xdist_group") is None
