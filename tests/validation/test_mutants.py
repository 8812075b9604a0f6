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


@pytest.mark.slow
def test_every_mutant_is_killed_quick_profile():
    survivors = [m.name for m in MUTANTS if not run_mutant(m, profile="quick").killed]
    assert survivors == []


def test_theory_doc_lists_every_mutant():
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "theory.md").read_text("utf-8")
    assert [m.name for m in MUTANTS if f"`{m.name}`" not in doc] == []
