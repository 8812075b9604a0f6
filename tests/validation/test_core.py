import json

import numpy as np
import pytest

from validation import CheckResult, NegativeControl, RunContext, family_wise_rate, register
from validation.core import Claim, get_check, iter_checks, rule_holds, unregister
from validation.mc import mcse_proportion, proportion_tolerance, two_sided_tail


def _result(**kw):
    base = dict(
        name="x",
        claim="c",
        scenario={"n": np.int64(3)},
        figure=np.float64(0.95),
        expected=0.95,
        tolerance=0.01,
        n_replicates=10,
        seed=1,
    )
    base.update(kw)
    return CheckResult(**base)


def test_to_dict_is_json_and_keeps_schema_keys():
    res = _result(negative_control=NegativeControl("naive", 0.8), extra={"a": np.arange(2)})
    d = json.loads(json.dumps(res.to_dict()))
    for key in (
        "name",
        "claim",
        "scenario",
        "figure",
        "expected",
        "tolerance",
        "passed",
        "n_replicates",
        "negative_control",
    ):
        assert key in d
    assert d["negative_control"] == {"name": "naive", "figure": 0.8, "failed_as_expected": True}
    assert d["extra"]["a"] == [0, 1]


def test_ok_requires_negative_control_to_fail():
    assert _result().ok
    assert not _result(negative_control=NegativeControl("n", 0.955)).ok
    assert not _result(figure=0.9).ok


@pytest.mark.parametrize(
    ("rule", "figure", "holds"),
    [
        ("within", 0.951, True),
        ("within", 0.97, False),
        ("at_most", 0.90, True),
        ("at_most", 0.97, False),
        ("at_least", 0.99, True),
        ("at_least", 0.93, False),
        ("below", 0.93, True),
        ("below", 0.945, False),
        ("above", 0.97, True),
        ("above", 0.955, False),
        ("within", float("nan"), False),
    ],
)
def test_claim_rules(rule, figure, holds):
    assert Claim(figure, 0.95, 0.01, rule).holds is holds
    assert rule_holds(rule, figure, 0.95, 0.01) is holds


def test_claim_rejects_unknown_rule():
    with pytest.raises(ValueError, match="`rule` must be one of"):
        Claim(0.0, 0.0, 1.0, "roughly")


def test_negative_control_is_judged_by_the_cells_own_claim():
    # the control's own s.e. does not enter: same expected, tolerance and rule
    inside = _result(negative_control=NegativeControl("c", 0.945, True))
    assert inside.negative_control.failed_as_expected is False  # the given bool is replaced
    below = _result(figure=0.90, rule="below", negative_control=NegativeControl("t", 0.95))
    assert below.passed and below.negative_control.failed_as_expected
    assert below.state == "breaks as stated"
    assert _result().state == "holds" and _result(figure=0.5).state == "fails"


def test_hand_written_verdict_that_contradicts_the_claim_raises():
    assert _result(passed=True).passed
    with pytest.raises(ValueError, match="contradicts its claim"):
        _result(passed=False)


def test_undefined_replicates_and_seed_key():
    res = _result(name="chk/cell", n_undefined=3)
    assert res.n_undefined == 3 and res.seed_key == "chk"
    assert res.to_dict()["n_undefined"] == 3
    with pytest.raises(ValueError, match="n_undefined"):
        _result(n_undefined=-1)


def test_registry_roundtrip_and_duplicate_name():
    @register("tmp-check", claim="always one cell", group="test")
    def _tmp(ctx):
        return _result(name="tmp-check")

    try:
        check = get_check("tmp-check")
        assert [r.name for r in check.run(RunContext("quick", 0))] == ["tmp-check"]
        assert "tmp-check" in [c.name for c in iter_checks()]
        with pytest.raises(ValueError, match="already registered"):
            register("tmp-check", claim="again")(_tmp)
    finally:
        unregister("tmp-check")
    with pytest.raises(KeyError, match="no check named 'tmp-check'"):
        get_check("tmp-check")


def test_seed_sequence_depends_on_name_only():
    a = RunContext("quick", 7).seed_sequence("a").generate_state(2)
    b = RunContext("full", 7).seed_sequence("a").generate_state(2)
    c = RunContext("quick", 7).seed_sequence("b").generate_state(2)
    assert (a == b).all() and not (a == c).all()


def test_mc_helpers():
    assert mcse_proportion(0.5, 100) == pytest.approx(0.05)
    assert proportion_tolerance(0.5, 100, z=2.0) == pytest.approx(0.1)
    assert two_sided_tail(1.959963984540054) == pytest.approx(0.05)
    assert family_wise_rate(150) < 0.01
    with pytest.raises(ValueError, match="`p` must be in"):
        mcse_proportion(1.5, 10)
