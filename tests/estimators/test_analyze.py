"""python -m estimators analyze: CSV, Parquet and DuckDB files to every arm vs control."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest
from _sources_data import event_rows

from estimators import cuped_test, ratio_test, srm_test
from estimators.__main__ import main
from estimators.sources import adjust_pvalues

duckdb = pytest.importorskip("duckdb", reason="the `sql` extra (duckdb) is not installed")
pytest.importorskip("pyarrow", reason="the `sql` extra (pyarrow) is not installed")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    events, units = event_rows(seed=21, n_units=600)
    d = tmp_path_factory.mktemp("analyze")
    events.to_parquet(d / "ev.parquet", index=False)
    events.to_csv(d / "ev.csv", index=False)
    con = duckdb.connect(str(d / "ev.duckdb"))
    con.register("frame", events)
    con.execute("CREATE TABLE events AS SELECT * FROM frame")
    con.close()
    return d, units


def _json(capsys, argv):
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


BASE = ["--unit", "user_id", "--arm", "variant", "--control", "control"]


def test_parquet_json_matches_ratio_test(files, capsys):
    d, units = files
    out = _json(
        capsys,
        ["analyze", str(d / "ev.parquet"), *BASE, "--metric", "clicks/views", "--format", "json"],
    )
    assert out["control"] == "control" and out["adjust"] == "holm"
    rows = {r["arm"]: r for r in out["results"]}
    assert sorted(rows) == ["t2", "treatment"]
    c = units["control"]
    for arm, r in rows.items():
        t = units[arm]
        ref = ratio_test(t["clicks"], t["views"], c["clicks"], c["views"])
        rel = ratio_test(t["clicks"], t["views"], c["clicks"], c["views"], relative=True)
        assert r["estimate"] == pytest.approx(ref.estimate, rel=1e-12)
        assert r["std_error"] == pytest.approx(ref.std_error, rel=1e-12)
        assert r["pvalue"] == pytest.approx(ref.pvalue, rel=1e-10)
        assert r["relative_ci_low"] == pytest.approx(rel.ci_low, rel=1e-12)
    adj = adjust_pvalues([rows["t2"]["pvalue"], rows["treatment"]["pvalue"]], "holm")
    assert [rows["t2"]["pvalue_adjusted"], rows["treatment"]["pvalue_adjusted"]] == pytest.approx(
        adj
    )
    counts = [units[a]["clicks"].size for a in ("control", "t2", "treatment")]
    assert out["srm"]["pvalue"] == pytest.approx(srm_test(counts).pvalue, rel=1e-12)


def test_csv_and_duckdb_give_the_same_table(files, capsys):
    d, _ = files
    args = [*BASE, "--metric", "clicks/views", "--metric", "revenue", "--adjust", "bh"]
    assert main(["analyze", str(d / "ev.csv"), *args]) == 0
    csv_out = capsys.readouterr().out
    assert main(["analyze", str(d / "ev.duckdb"), "--table", "events", *args]) == 0
    db_out = capsys.readouterr().out
    assert csv_out == db_out
    assert "clicks/views" in csv_out and "revenue" in csv_out and "p_adj: bh" in csv_out
    q = "SELECT * FROM events WHERE variant <> 't2'"
    out = _json(capsys, ["analyze", str(d / "ev.duckdb"), "--query", q, *args, "--format", "json"])
    assert {r["arm"] for r in out["results"]} == {"treatment"}


def test_cuped_with_ratio_covariate(files, capsys):
    d, units = files
    out = _json(
        capsys,
        [
            "analyze",
            str(d / "ev.parquet"),
            *BASE,
            "--metric",
            "clicks/views",
            "--covariate",
            "pre_clicks/pre_views",
            "--format",
            "json",
        ],
    )
    r = next(x for x in out["results"] if x["arm"] == "treatment")
    t, c = units["treatment"], units["control"]
    y = np.r_[t["clicks"], c["clicks"]]
    den = np.r_[t["views"], c["views"]]
    X = np.column_stack(
        [np.r_[t["pre_clicks"], c["pre_clicks"]], np.r_[t["pre_views"], c["pre_views"]]]
    )
    arm = np.r_[np.ones(t["clicks"].size), np.zeros(c["clicks"].size)]
    ref = cuped_test(y, arm, X, den=den, covariate_ratios=[(0, 1)])
    assert r["estimate"] == pytest.approx(ref.estimate, rel=1e-10)
    assert r["std_error"] == pytest.approx(ref.std_error, rel=1e-10)
    assert r["method"].startswith("cuped")


def test_srm_warning_below_0001(tmp_path, capsys):
    import pandas as pd

    n_c, n_t = 1000, 1300
    frame = pd.DataFrame(
        {
            "user_id": np.arange(n_c + n_t),
            "variant": ["control"] * n_c + ["treatment"] * n_t,
            "clicks": np.arange(n_c + n_t) % 3,
            "views": 3,
        }
    )
    frame.to_parquet(tmp_path / "srm.parquet")
    assert main(["analyze", str(tmp_path / "srm.parquet"), *BASE, "--metric", "clicks/views"]) == 0
    cap = capsys.readouterr()
    assert "WARNING: sample-ratio mismatch" in cap.out
    assert srm_test([n_c, n_t]).pvalue < 0.001


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--metric", "clicks/nope"], r"--metric: column 'nope' is not in"),
        (["--metric", "clicks", "--covariate", "pre"], r"--covariate: column 'pre' is not in"),
        (["--metric", "clicks", "--control", "ctrl"], r"--control: control label 'ctrl' is not an"),
        (["--metric", "a/b/c"], r"a metric must be NUM or NUM/DEN"),
        (["--metric", "clicks", "--table", "x"], r"--table and --query apply to DuckDB"),
    ],
)
def test_usage_errors_exit_2(files, extra, message, capsys):
    d, _ = files
    argv = ["analyze", str(d / "ev.parquet"), "--unit", "user_id", "--arm", "variant", *extra]
    if "--control" not in extra:
        argv += ["--control", "control"]
    assert main(argv) == 2
    assert re.search(message, capsys.readouterr().err)


@pytest.mark.slow  # a fresh interpreter importing numpy, scipy and duckdb: ~8 s here
def test_exit_2_from_the_command_line_without_traceback(files):
    d, _ = files
    argv = ["analyze", str(d / "ev.parquet"), *BASE, "--metric", "clicks/nope"]
    proc = subprocess.run(
        [sys.executable, "-m", "estimators", *argv], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "--metric: column 'nope' is not in" in proc.stderr


def test_missing_unit_column_and_file(files, tmp_path, capsys):
    d, _ = files
    assert (
        main(
            [
                "analyze",
                str(d / "ev.parquet"),
                "--unit",
                "uid",
                "--arm",
                "variant",
                "--metric",
                "clicks",
            ]
        )
        == 2
    )
    assert "--unit: column 'uid' is not in" in capsys.readouterr().err
    assert main(["analyze", str(tmp_path / "none.parquet"), *BASE, "--metric", "clicks"]) == 2
    assert "is not a file" in capsys.readouterr().err
    assert main(["analyze", str(d / "ev.duckdb"), *BASE, "--metric", "clicks"]) == 2
    assert "give exactly one of --table, --query" in capsys.readouterr().err


def test_progress_bar_on_request(files, capsys):
    d, _ = files
    assert (
        main(["analyze", str(d / "ev.parquet"), *BASE, "--metric", "clicks", "--progress", "on"])
        == 0
    )
    assert "metrics" in capsys.readouterr().err


def test_adjust_pvalues_reference():
    statsmodels = pytest.importorskip("statsmodels.stats.multitest")
    p = np.array([0.001, 0.04, 0.03, 0.2, 0.011])
    for ours, theirs in (("holm", "holm"), ("bh", "fdr_bh")):
        ref = statsmodels.multipletests(p, method=theirs)[1]
        np.testing.assert_allclose(adjust_pvalues(p, ours), ref, rtol=1e-14)
    np.testing.assert_array_equal(adjust_pvalues(p, "none"), p)
    with pytest.raises(ValueError, match=r"`adjust` must be one of"):
        adjust_pvalues(p, "bonf")


@pytest.mark.slow  # a fresh interpreter, as above
def test_a_reader_that_closes_the_pipe_early_is_not_an_error(files):
    d, _ = files
    argv = ["analyze", str(d / "ev.parquet"), *BASE, "--metric", "clicks/views", "--format", "json"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "estimators", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        bufsize=0,
    )
    proc.stdout.close()  # like `| head` exiting before the output comes: the write gets EPIPE
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert b"Traceback" not in err
