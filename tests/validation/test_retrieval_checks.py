import numpy as np
import pytest
from matplotlib.figure import Figure

from validation import RunContext
from validation import retrieval_checks as rc
from validation.core import BUILTIN_CHECK_MODULES, get_check, iter_checks

CHECKS = (
    "retrieval-gradient-bias",
    "retrieval-fixed-point",
    "retrieval-biased-variants",
    "retrieval-mixed-inclusion",
    "retrieval-streaming-frequency",
    "retrieval-training",
)


def test_variant_corrections_use_the_recsys_words():
    """One name per concept: a variant's ``correction`` is the builders' word (or "share")."""
    words = {"expected_count", "inclusion_probability", "none", "share"}
    assert {v.correction for v in rc.VARIANTS.values()} == words
    for v in rc.VARIANTS.values():
        assert v.dedupe == (v.correction == "inclusion_probability")
        assert v.builder_correction in {"expected_count", "inclusion_probability", "none"}
        assert not hasattr(v, "q")


def test_validation_holds_no_numpy_twin():
    """The closed form and the builder twins live in tests/, not in validation/."""
    import validation.retrieval_shipped as rs
    import validation.retrieval_training as rt

    for module, name in (
        (rc, "expected_sampled_gradient"),
        (rt, "candidate_logit_gradient"),
        (rt, "batch_candidates_np"),
        (rt, "_first_occurrence_np"),
        (rs, "reference_expected_gradient"),
    ):
        assert not hasattr(module, name), name


def test_power_law_slope_recovers_exponent():
    m = np.array([16.0, 32, 64, 128])
    k, se = rc.power_law_slope(m, 3.0 / m, 0.01 / m)
    assert k == pytest.approx(-1.0, abs=1e-6) and se > 0


def test_registered_and_in_builtin_modules():
    assert "validation.retrieval_checks" in BUILTIN_CHECK_MODULES
    names = {c.name for c in iter_checks() if c.group == "retrieval"}
    assert set(CHECKS) <= names


@pytest.fixture(scope="module")
def quick_results():
    ctx = RunContext("quick", 0)
    return {name: get_check(name).run(ctx) for name in CHECKS}


@pytest.mark.slow
@pytest.mark.parametrize("name", CHECKS)
def test_quick_verdicts(quick_results, name):
    results = quick_results[name]
    assert results
    for res in results:
        assert res.passed, (
            f"{res.name}: figure {res.figure} expected {res.expected} ± {res.tolerance}"
        )
        assert res.tolerance > 0 and res.n_replicates > 0
        res.to_dict()  # JSON-serialisable


@pytest.mark.slow
@pytest.mark.parametrize("name", CHECKS)
def test_negative_controls_fail(quick_results, name):
    for res in quick_results[name]:
        assert res.negative_control is not None, res.name
        assert res.negative_control.failed_as_expected, (
            f"{res.name}: control {res.negative_control.name} = {res.negative_control.figure}"
        )


@pytest.mark.slow
@pytest.mark.parametrize("name", CHECKS)
def test_plots(quick_results, name):
    fig = get_check(name).plot(quick_results[name])
    assert isinstance(fig, Figure) and fig.axes


@pytest.mark.slow
def test_uncorrected_demotes_popular_items(quick_results):
    cell = next(
        r
        for r in quick_results["retrieval-fixed-point"]
        if r.name.endswith("uncorrected-at-log-pi-minus-log-q")
    )
    assert cell.extra["demotes_popular"]
