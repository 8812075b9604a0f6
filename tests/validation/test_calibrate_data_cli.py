"""``python -m validation calibrate MOD:FN --data PATH ...``: exit 0 / 1 / 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from _own_data import heavy_frame

from validation.__main__ import main

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
COLS = ["--unit", "user", "--numerator", "clicks", "--denominator", "views"]


@pytest.fixture(scope="module")
def rows_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("own") / "rows.parquet"
    heavy_frame(2000, seed=5).to_parquet(path, index=False)
    return path


def _run(estimator, rows_file, out, *extra):
    return main(
        [
            "calibrate",
            estimator,
            "--data",
            str(rows_file),
            *COLS,
            "--replicates",
            "600",
            "--seed",
            "3",
            "--no-progress",
            "--out",
            str(out),
            *extra,
        ]
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    ("estimator", "code"), [("estimators:ratio_test", 0), ("_own_data:naive_binomial", 1)]
)
def test_exit_codes_aa_fast(tmp_path, capsys, estimator, code):
    path = tmp_path / "rows.csv"
    heavy_frame(600, seed=8).to_csv(path, index=False)
    argv = [
        "calibrate",
        estimator,
        "--data",
        str(path),
        *COLS,
        "--replicates",
        "200",
        "--check",
        "aa",
        "--seed",
        "3",
        "--no-progress",
        "--out",
        str(tmp_path / "out"),
    ]
    assert main(argv) == code
    assert "data/aa-calibration/false-positive-rate" in capsys.readouterr().out
    assert not (tmp_path / "out" / "coverage_by_n.json").exists()  # no coverage asked for


@pytest.mark.slow
@pytest.mark.parametrize(
    ("estimator", "code", "failing"),
    [
        ("estimators:ratio_test", 0, None),
        ("_own_data:naive_binomial", 1, "data/aa-calibration/false-positive-rate"),
        ("_own_data:summed_se", 1, "data/coverage"),
    ],
)
def test_exit_codes_right_and_wrong(rows_file, tmp_path, capsys, estimator, code, failing):
    assert _run(estimator, rows_file, tmp_path) == code
    doc = json.loads((tmp_path / "results.json").read_text())
    scen = doc["calibration"]["scenarios"][0]
    assert scen["data"]["units"] == 2000 and len(scen["data"]["sha256"]) == 64
    assert "scaling" in scen["effect"]
    out = capsys.readouterr().out
    if failing:
        assert failing in out
    assert "coverage by units per arm on your data" in out
    curve = json.loads((tmp_path / "coverage_by_n.json").read_text())
    assert curve["n_per_arm"][-1] == 1000
    assert "Coverage against units per arm" in (tmp_path / "report.md").read_text()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--unit", "user"], "`--data` needs --numerator"),
        (["--numerator", "nope", "--unit", "user"], "not in `data`"),
        (["--arm", "arm", "--unit", "user", "--numerator", "clicks"], "go together"),
    ],
)
def test_usage_errors_exit_2(rows_file, tmp_path, capsys, argv, message):
    code = main(
        [
            "calibrate",
            "estimators:ratio_test",
            "--data",
            str(rows_file),
            *argv,
            "--out",
            str(tmp_path),
        ]
    )
    assert code == 2 and message in capsys.readouterr().err


def test_data_options_without_data_exit_2(tmp_path, capsys):
    code = main(["calibrate", "estimators:ratio_test", "--unit", "user", "--out", str(tmp_path)])
    assert code == 2 and "need `--data PATH`" in capsys.readouterr().err


@pytest.mark.parametrize("estimator", ["_own_data:tuple_return", "_own_data:keyword_typo"])
def test_first_call_failure_exit_2(rows_file, tmp_path, capsys, estimator):
    assert _run(estimator, rows_file, tmp_path) == 2
    err = capsys.readouterr().err
    assert "failed on its first call" in err
    assert not (tmp_path / "results.json").exists()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("estimator", "code"), [("estimators:ratio_test", 0), ("_own_data:naive_binomial", 1)]
)
def test_contract_subprocess_profile_quick(rows_file, tmp_path, estimator, code):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(HERE)])}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "validation",
            "calibrate",
            estimator,
            "--data",
            str(rows_file),
            *COLS,
            "--profile",
            "quick",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=HERE,
        timeout=300,
    )
    assert proc.returncode == code, proc.stdout[-2000:] + proc.stderr[-2000:]


def test_design_options_reach_the_scenario(rows_file, tmp_path):
    argv = [
        "calibrate",
        "estimators:cuped_test",
        "--data",
        str(rows_file),
        "--unit",
        "user",
        "--numerator",
        "clicks",
        "--covariate",
        "pre",
        "--arm",
        "arm",
        "--control",
        "c",
        "--n-per-arm",
        "50",
        "--lift",
        "0.1",
        "--check",
        "bias",
        "--replicates",
        "20",
        "--no-progress",
        "--out",
        str(tmp_path),
    ]
    assert main(argv) in (0, 1)
    scen = json.loads((tmp_path / "results.json").read_text())["calibration"]["scenarios"][0]
    assert scen["design"] == "bootstrap" and scen["n_control"] == 50
    assert scen["lift"] == 0.1 and scen["columns"]["covariates"] == ["pre"]
    assert scen["columns"]["control"] == "c" and scen["data"]["units"] < 2000
