import json
import os
import warnings

import pytest
from _tmpchecks import coverage_cells, exact_cell, register_tmp_checks

from validation import CheckResult, NegativeControl, register
from validation.core import get_check, unregister
from validation.mc import family_wise_rate
from validation.runner import (
    DEFAULT_SEED,
    NONDETERMINISTIC_KEYS,
    AtomicWriter,
    RunInterrupted,
    UnknownCheckError,
    format_outcome_lines,
    package_versions,
    results_json,
    run_checks,
    select_checks,
    strip_nondeterministic,
    write_results,
)

SCHEMA_KEYS = (
    "name",
    "claim",
    "scenario",
    "figure",
    "expected",
    "tolerance",
    "passed",
    "n_replicates",
    "negative_control",
)


@pytest.fixture
def registry():
    """Register temporary checks; unregister every name registered through it."""
    names: list[str] = []

    def add(name, function, **kw):
        kw.setdefault("claim", f"claim of {name}")
        register(name, **kw)(function)
        names.append(name)
        return get_check(name)

    def add_family(prefix, **kw):
        new = register_tmp_checks(prefix, **kw)
        names.extend(new)
        return [get_check(n) for n in new]

    add.family = add_family
    yield add
    for name in names:
        unregister(name)


def _cell(
    name, *, passed=True, control=True, ctrl_fails=True, figure=None, tolerance=0.01, rule="within"
):
    """A cell whose verdicts follow from its figures (``passed`` picks the figure)."""
    figure = (0.95 if passed else 0.5) if figure is None else figure
    ctrl_figure = 0.5 if ctrl_fails == (rule == "within") else 0.95
    ctrl = NegativeControl("naive", ctrl_figure) if control else None
    return CheckResult(name, "c", {"k": 1}, figure, 0.95, tolerance, None, 100, 0, ctrl, rule=rule)


def test_select_by_name_group_and_pattern(registry):
    cov, exact = registry.family("tsel")
    assert [c.name for c in select_checks(["tsel-coverage"])] == ["tsel-coverage"]
    assert [c.name for c in select_checks(["tmpexact"])] == ["tsel-exact"]
    assert [c.name for c in select_checks(["tsel-*"])] == ["tsel-coverage", "tsel-exact"]
    assert {c.name for c in select_checks(None)} >= {"tsel-coverage", "tsel-exact"}


def test_select_unknown_lists_known_names(registry):
    registry.family("tunk")
    with pytest.raises(UnknownCheckError, match=r"'nope'.*known checks: .*tunk-coverage"):
        select_checks(["tunk-coverage", "nope"])


def test_run_passes_and_counts(registry):
    checks = registry.family("tpass")
    run = run_checks(checks, profile="quick", seed=3, show_progress=False)
    assert run.ok, run.problems
    assert (run.n_cells, run.n_passed, run.n_controls, run.n_controls_failed, run.n_exact) == (
        3,
        3,
        2,
        2,
        1,
    )
    assert run.family_wise_rate == pytest.approx(family_wise_rate(3, run.z))
    doc = json.loads(results_json(run))
    assert doc["seed"] == 3 and doc["profile"] == "quick"
    for key in (
        "numpy",
        "scipy",
        "numba",
        "torch",
        "statsmodels",
        "python",
        "platform",
        "numba_num_threads",
    ):
        assert key in doc["versions"]
    for cell in doc["checks"]:
        for key in SCHEMA_KEYS:
            assert key in cell
        assert cell["seed_entropy"] == 3
    exact = [c for c in doc["checks"] if c["check"] == "tpass-exact"]
    assert exact[0]["negative_control"] is None
    cov = [c for c in doc["checks"] if c["check"] == "tpass-coverage"]
    assert set(cov[0]["negative_control"]) == {"name", "figure", "failed_as_expected"}


def test_same_seed_same_results_modulo_timing(registry):
    checks = registry.family("tdet")
    a = json.loads(results_json(run_checks(checks, seed=11, show_progress=False)))
    b = json.loads(results_json(run_checks(list(reversed(checks)), seed=11, show_progress=False)))
    c = json.loads(results_json(run_checks(checks, seed=12, show_progress=False)))
    assert set(NONDETERMINISTIC_KEYS) == {"timing", "versions"}
    assert strip_nondeterministic(a)["checks"] == sorted(
        strip_nondeterministic(b)["checks"], key=lambda d: d["check"]
    )
    assert strip_nondeterministic(a)["summary"] == strip_nondeterministic(b)["summary"]
    # running a check alone gives the same figures as running it with the others
    alone = json.loads(results_json(run_checks(checks[:1], seed=11, show_progress=False)))
    assert alone["checks"] == a["checks"][:2]
    assert [x["figure"] for x in c["checks"]] != [x["figure"] for x in a["checks"]]


@pytest.mark.parametrize(
    ("cell", "needle"),
    [
        (_cell("x", passed=False), "cell 'x' failed"),
        (_cell("x", ctrl_fails=False), "negative control 'naive' of cell 'x' passed"),
        (_cell("x", control=False), "has no negative control"),
        (_cell("x", figure=float("nan")), "figure is not a finite number"),
        (_cell("x", tolerance=float("inf")), "tolerance is not a finite number"),
    ],
)
def test_suite_failures(registry, cell, needle):
    check = registry("tfail", lambda ctx: cell)
    run = run_checks([check], show_progress=False)
    assert not run.ok
    assert any(needle in p for p in run.problems), run.problems
    doc = json.loads(results_json(run))  # non-finite figures still give valid JSON
    assert doc["summary"]["ok"] is False and doc["checks"][0]["ok"] is False


def test_exact_check_without_control_is_fine(registry):
    check = registry("texact", lambda ctx: exact_cell("texact", ctx.seed), exact=True)
    assert run_checks([check], show_progress=False).ok


def test_raising_check_is_recorded_and_run_continues(registry):
    def boom(ctx):
        raise RuntimeError("kaboom in the simulator")

    first = registry("traise-a", boom)
    second = registry("traise-b", lambda ctx: coverage_cells(ctx, "traise-b"))
    seen = []
    run = run_checks([first, second], show_progress=False, on_outcome=seen.append)
    assert [o.check.name for o in seen] == ["traise-a", "traise-b"]
    assert not run.ok and seen[1].ok
    assert "RuntimeError: kaboom in the simulator" in seen[0].error
    assert "Traceback" in seen[0].error
    assert any("traise-a' raised RuntimeError: kaboom" in p for p in run.problems)
    doc = json.loads(results_json(run))
    bad = doc["checks"][0]
    assert bad["passed"] is False and bad["figure"] is None and "kaboom" in bad["error"]
    assert run.n_cells == 3
    assert any(line.startswith("ERROR") for line in format_outcome_lines(seen[0]))


def test_check_returning_no_cells_or_wrong_type(registry):
    empty = registry("tempty", lambda ctx: [])
    wrong = registry("twrong", lambda ctx: [{"figure": 1}])
    run = run_checks([empty, wrong], show_progress=False)
    text = "\n".join(run.problems)
    assert "returned no cells" in text and "must return CheckResult objects" in text


def test_duplicate_cell_names_fail(registry):
    a = registry("tdup-a", lambda ctx: _cell("same"))
    b = registry("tdup-b", lambda ctx: _cell("same"))
    run = run_checks([a, b], show_progress=False)
    assert any("cell name 'same'" in p for p in run.problems)


def test_empty_run_fails():
    run = run_checks([], show_progress=False)
    assert not run.ok and "no checks ran" in run.problems[0]


def test_progress_and_context(registry):
    seen = {}

    def check(ctx):
        seen["ctx"] = (ctx.profile, ctx.seed, ctx.z)
        for i in range(3):
            ctx.progress(i + 1, 3)
        return coverage_cells(ctx, "tprog")

    c = registry("tprog", check)
    run = run_checks([c], profile="full", seed=5, show_progress=True)
    assert seen["ctx"] == ("full", 5, run.z)
    assert run.outcomes[0].results[0].n_replicates == 10_000


def test_warnings_are_recorded_not_raised(registry):
    def noisy(ctx):
        warnings.warn("loose tolerance", RuntimeWarning, stacklevel=1)
        return _cell("twarn")

    run = run_checks([registry("twarn", noisy)], show_progress=False)
    assert run.outcomes[0].warnings == ("RuntimeWarning: loose tolerance",)
    assert run.ok


def test_keyboard_interrupt_carries_completed(registry):
    def stop(ctx):
        raise KeyboardInterrupt

    a = registry("tint-a", lambda ctx: _cell("tint-a"))
    b = registry("tint-b", stop)
    with pytest.raises(RunInterrupted) as info:
        run_checks([a, b], show_progress=False)
    assert [o.check.name for o in info.value.completed] == ["tint-a"]
    assert info.value.current == "tint-b"


@pytest.mark.parametrize(
    ("kw", "exc", "match"),
    [
        ({"profile": "medium"}, ValueError, "`profile` must be one of"),
        ({"seed": -1}, ValueError, "`seed` must be a non-negative integer; got -1"),
        ({"seed": 1.5}, TypeError, "`seed` must be an int; got float"),
        ({"z": 0.0}, ValueError, "`z` must be a positive finite number"),
    ],
)
def test_run_checks_validates(kw, exc, match):
    with pytest.raises(exc, match=match):
        run_checks([], **kw)


def test_write_results_atomic(tmp_path, registry, monkeypatch):
    run = run_checks(registry.family("tatom"), show_progress=False)
    path = write_results(run, tmp_path)
    assert json.loads(path.read_text())["seed"] == DEFAULT_SEED
    path.write_text('{"previous": true}')

    def interrupted(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_results(run, tmp_path)
    assert json.loads(path.read_text()) == {"previous": True}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]


def test_atomic_writer_discards_uncommitted(tmp_path):
    with AtomicWriter(tmp_path) as writer:
        writer.stage("a/b.txt", "x")
        assert not (tmp_path / "a" / "b.txt").exists()
    assert list((tmp_path / "a").iterdir()) == []
    with AtomicWriter(tmp_path) as writer:
        writer.stage("results.json", "{}", last=True)
        writer.stage("a/b.txt", "y")
        done = writer.commit()
    assert [p.name for p in done] == ["b.txt", "results.json"]
    assert (tmp_path / "a" / "b.txt").read_text() == "y"


def test_package_versions_keys():
    v = package_versions()
    assert v["numpy"] and v["python"] and isinstance(v["numba_num_threads"], int)


def test_own_rule_is_marked(registry):
    from validation.runner import uses_own_rule

    # "the naive interval under-covers here": passes when the figure is far below 0.95
    cell = _cell("town", figure=0.5, rule="below")
    assert uses_own_rule(cell) and not uses_own_rule(_cell("x"))
    assert cell.state == "breaks as stated" and cell.negative_control.failed_as_expected
    run = run_checks([registry("town", lambda ctx: cell)], show_progress=False)
    assert run.ok
    lines = format_outcome_lines(run.outcomes[0])
    assert lines[0].split()[:3] == ["state", "cell", "figure"]  # a header row
    assert lines[1].startswith("BREAKS") and " below " in lines[1]


def test_cell_selector_runs_its_check(registry):
    registry.family("tcell")
    assert [c.name for c in select_checks(["tcell-coverage/n=5"])] == ["tcell-coverage"]
