import base64
import json
import re

import pytest
from _tmpchecks import register_tmp_checks

from validation import CheckResult, NegativeControl, register
from validation.core import get_check, unregister
from validation.report import (
    figure_png,
    load_recsys_results,
    render_check_plot,
    write_report,
)
from validation.runner import run_checks

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _line_plot(results):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4, 3))
    ax = fig.subplots()
    ax.plot([r.extra["n"] for r in results], [r.figure for r in results], "o-")
    return fig


def _raising_plot(results):
    raise ValueError("no series called 'coverage' in extra")


@pytest.fixture
def names():
    out: list[str] = []
    yield out
    for name in out:
        unregister(name)


def _run(names, prefix, **kw):
    names.extend(register_tmp_checks(prefix, **kw))
    return run_checks(
        [get_check(n) for n in names if n.startswith(prefix)],
        seed=1,
        show_progress=False,
        command="python -m validation run --seed 1",
    )


def test_write_report_files_and_embedded_plots(tmp_path, names):
    run = _run(names, "trep", plot=_line_plot)
    paths = write_report(run, tmp_path / "out")
    for p in (paths.results_json, paths.markdown, paths.html):
        assert p.is_file() and p.is_absolute()
    assert {p.name for p in paths.plots} == {"overview.png", "trep-coverage.png", "trep-exact.png"}
    for p in paths.plots:
        assert p.read_bytes().startswith(PNG_MAGIC)
    md = paths.markdown.read_text()
    assert "**Verdict: PASS**" in md and "![trep-coverage](plots/trep-coverage.png)" in md
    assert "python -m validation run --seed 1" in md and "| seed | 1 |" in md
    html = paths.html.read_text()
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(images) == 3
    assert all(base64.b64decode(i).startswith(PNG_MAGIC) for i in images)
    assert "plots/" not in html  # self-contained: no links to files
    doc = json.loads(paths.results_json.read_text())
    assert doc["summary"]["n_cells"] == 3
    assert not [p for p in paths.results_json.parent.rglob("*.tmp")]


def test_raising_plot_is_reported_not_fatal(tmp_path, names):
    run = _run(names, "trpl", plot=_raising_plot)
    outcome = run.outcomes[0]
    plot = render_check_plot(outcome)
    assert plot.png is None and "no series called 'coverage'" in plot.error
    paths = write_report(run, tmp_path)
    assert paths.plot_errors == ("trpl-coverage: ValueError: no series called 'coverage' in extra",)
    assert "Plot failed:" in paths.html.read_text()
    assert "Plot failed:" in paths.markdown.read_text()
    assert run.ok  # a broken plot does not change the verdict


def test_plot_must_return_a_figure(names):
    run = _run(names, "trnf", plot=lambda results: "not a figure")
    plot = render_check_plot(run.outcomes[0])
    assert "must return a matplotlib Figure; got str" in plot.error
    with pytest.raises(TypeError, match="must return a matplotlib Figure"):
        figure_png(42)


def test_failures_and_escaping_in_report(tmp_path, names):
    def bad(ctx):
        return CheckResult(
            "tresc/<script>",
            "c",
            {"a": "x|y"},
            0.5,
            0.95,
            0.01,
            False,
            10,
            1,
            NegativeControl("naive", 0.95, False),
        )

    def boom(ctx):
        raise RuntimeError("simulator exploded")

    register("tresc", claim="<script>alert(1)</script> holds | always")(bad)
    register("tresc-raise", claim="raises")(boom)
    names.extend(["tresc", "tresc-raise"])
    run = run_checks([get_check("tresc"), get_check("tresc-raise")], show_progress=False)
    paths = write_report(run, tmp_path)
    html = paths.html.read_text()
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "Verdict: FAIL" in html and 'class="fail"' in html
    assert "RuntimeError: simulator exploded" in html
    md = paths.markdown.read_text()
    assert "x\\|y" in md  # a pipe inside a table cell is escaped
    assert "## Problems" in md and "PASSED (suite failure)" in md


def _recsys_doc():
    return {
        "config": {"epochs": 1, "seeds": 3},
        "data_fingerprint": "abc123",
        "methods": {
            "sampled": {
                "recall@100": {
                    "mean": 0.027,
                    "sd": 0.002,
                    "ci_low": 0.022,
                    "ci_high": 0.032,
                    "n": 3,
                }
            },
            "mixed": {
                "recall@100": {"mean": 0.036, "sd": 0.001, "ci": [0.033, 0.039]},
                "ndcg@10": 0.01,
            },
        },
    }


def test_recsys_results_in_report(tmp_path, names):
    rec = tmp_path / "recsys" / "results.json"
    rec.parent.mkdir()
    rec.write_text(json.dumps(_recsys_doc()))
    comparison = load_recsys_results(rec)
    assert comparison.message is None
    rows = {(r.method, r.metric): r for r in comparison.rows}
    assert rows["sampled", "recall@100"].ci_high == 0.032 and rows["sampled", "recall@100"].n == 3
    assert rows["mixed", "recall@100"].ci_low == 0.033 and rows["mixed", "ndcg@10"].sd is None
    assert comparison.details["data_fingerprint"] == "abc123"
    # a PNG beside the results is embedded too
    from matplotlib.figure import Figure

    (rec.parent / "recall_per_epoch.png").write_bytes(figure_png(Figure(figsize=(2, 2))))
    run = _run(names, "trrs")
    paths = write_report(run, tmp_path / "out", recsys_results=rec)
    md = paths.markdown.read_text()
    assert "## Recsys comparison" in md and "| mixed | recall@100 | 0.036 |" in md
    assert "plots/recsys.png" in md and "recall\\_per\\_epoch.png" in md
    assert json.loads(paths.results_json.read_text())["recsys_comparison"]["rows"]


@pytest.mark.parametrize(
    ("content", "rows", "message"),
    [
        ('[{"method": "a", "metric": "r@10", "mean": 0.1, "sd": 0.01}]', 1, None),
        ('{"results": {"a": {"metrics": {"r@10": {"mean": 0.1, "std": 0.02}}}}}', 1, None),
        ('{"a": {"r@10": {"mean": 0.1}}}', 1, None),
        ("{not json", 0, "is not valid JSON"),
        ('{"accuracy": [1, 2], "runs": 3}', 0, "could not find per-method metrics"),
        ("42", 0, "top-level keys: int"),
    ],
)
def test_recsys_results_defensive(tmp_path, content, rows, message):
    path = tmp_path / "results.json"
    path.write_text(content)
    comparison = load_recsys_results(path)
    assert len(comparison.rows) == rows
    if message is None:
        assert comparison.message is None
    else:
        assert message in comparison.message


def test_unreadable_recsys_results_is_reported_in_report(tmp_path, names):
    path = tmp_path / "results.json"
    path.write_text('{"unexpected": {"layout": true}}')
    run = _run(names, "trbad")
    paths = write_report(run, tmp_path / "out", recsys_results=path)
    html = paths.html.read_text()
    assert "could not find per-method metrics" in html
    assert load_recsys_results(tmp_path / "missing.json").message.startswith("could not read")


def test_own_rule_marked_in_report(tmp_path, names):
    def under(ctx):
        return CheckResult(
            "town/heavy",
            "naive CI under-covers",
            {"p": [1 / 3, 2 / 3]},
            0.5,
            0.95,
            0.01,
            True,
            10,
            1,
            NegativeControl("exact", 0.95),
            rule="below",
        )

    register("town", claim="under-covers")(under)
    names.append("town")
    paths = write_report(run_checks([get_check("town")], show_progress=False), tmp_path)
    md = paths.markdown.read_text()
    assert "breaks as stated (rule below)" in md and "p=[0.3333, 0.6667]" in md
    assert md.index("## Findings") < md.index("## Summary") and "[Findings](#findings)" in md
    assert 'id="findings"' in paths.html.read_text()
    assert "p=[0.3333, 0.6667]" in paths.html.read_text()


def test_recsys_compare_layout(tmp_path):
    # the layout `python -m recsys compare` writes (recsys/compare.py): per method a
    # "metrics" map of summaries over seeds with the per-seed values, plus "ordering"
    doc = {
        "config": {"n_seeds": 2},
        "methods": {
            "mixed": {
                "metrics": {
                    "recall@100": {
                        "mean": 0.6,
                        "sd": 0.01,
                        "ci_low": 0.5,
                        "ci_high": 0.7,
                        "per_seed": [0.59, 0.61],
                    },
                    "ndcg@10": {
                        "mean": 0.1,
                        "sd": float("nan"),
                        "ci_low": float("nan"),
                        "ci_high": float("nan"),
                        "per_seed": [0.1],
                    },
                },
                "per_epoch": {"recall@100": [[0.6]]},
                "examples_per_second": [1000.0],
            }
        },
        "paired": {},
        "ordering": {"metric": "recall@100", "holds_in_means": False},
    }
    path = tmp_path / "results.json"
    path.write_text(json.dumps(doc))  # NaN is written as the JSON extension NaN
    comparison = load_recsys_results(path)
    assert comparison.message is None and len(comparison.rows) == 2
    assert comparison.rows[0].n == 2 and comparison.details["ordering"]["holds_in_means"] is False
    # NaN figures of a one-seed metric stay out of the strict-JSON results file
    paths = write_report(run_checks([], show_progress=False), tmp_path / "o", recsys_results=path)
    rows = json.loads(paths.results_json.read_text(), parse_constant=pytest.fail)
    assert rows["recsys_comparison"]["rows"][1]["sd"] is None
    assert "Verdict: FAIL" in paths.html.read_text()  # an empty run is not a pass
