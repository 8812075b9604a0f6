import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _tmpchecks import register_tmp_checks

from validation import CheckResult, NegativeControl, register
from validation.__main__ import main
from validation.core import unregister
from validation.runner import DEFAULT_SEED, strip_nondeterministic

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent


@pytest.fixture
def tmp_checks():
    names = register_tmp_checks("tcli")
    yield names
    for name in names:
        unregister(name)


def _env(tmp_path, **extra):
    env = dict(os.environ)
    paths = [str(tmp_path), str(HERE), str(ROOT), env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    env["PYTHONWARNINGS"] = "error"
    env.update(extra)
    return env


def _cli(args, tmp_path, *, timeout=120, **env):
    return subprocess.run(
        [sys.executable, "-m", "validation", *args],
        cwd=tmp_path,
        env=_env(tmp_path, **env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_run_writes_report_and_exits_0(tmp_path, tmp_checks, capsys):
    out = tmp_path / "rep"
    rc = main(["run", "--only", "tcli-*", "--out", str(out), "--no-progress"])
    stdout = capsys.readouterr().out
    assert rc == 0, stdout
    for name in (
        "results.json",
        "report.md",
        "report.html",
        "plots/overview.png",
        "plots/tcli-coverage.png",
    ):
        assert (out / name).is_file()
    assert str((out / "report.html").resolve()) in stdout
    assert "HOLDS  tcli-coverage/n=5" in stdout and "fails as expected" in stdout
    assert "exact identity, no control" in stdout and "tcli-coverage took" in stdout
    assert f"seed {DEFAULT_SEED}" in stdout and "family-wise false-failure bound" in stdout
    doc = json.loads((out / "results.json").read_text())
    assert doc["seed"] == DEFAULT_SEED and doc["profile"] == "quick"
    assert doc["command"] == (
        f"python -m validation run --profile quick --seed {DEFAULT_SEED} --only 'tcli-*'"
    )


def test_same_seed_same_results_json(tmp_path, tmp_checks, capsys):
    docs = []
    for sub in ("a", "b"):
        assert (
            main(
                [
                    "run",
                    "--only",
                    "tcli-coverage",
                    "tmpexact",
                    "--seed",
                    "9",
                    "--out",
                    str(tmp_path / sub),
                    "--no-progress",
                ]
            )
            == 0
        )
        docs.append(json.loads((tmp_path / sub / "results.json").read_text()))
    assert strip_nondeterministic(docs[0]) == strip_nondeterministic(docs[1])
    assert docs[0]["timing"]["checks_s"].keys() == {"tcli-coverage", "tcli-exact"}


def test_failures_exit_1_and_are_named(tmp_path, capsys):
    def weak(ctx):
        return CheckResult(
            "tweak/cell",
            "c",
            {},
            0.95,
            0.95,
            0.01,
            True,
            100,
            ctx.seed,
            NegativeControl("naive", 0.951, False),
        )

    def boom(ctx):
        raise ZeroDivisionError("zero-mean denominator in arm 'control'")

    register("tweak", claim="cannot tell")(weak)
    register("tboom", claim="raises")(boom)
    try:
        rc = main(["run", "--only", "tweak", "tboom", "--out", str(tmp_path), "--no-progress"])
    finally:
        unregister("tweak")
        unregister("tboom")
    stdout = capsys.readouterr().out
    assert rc == 1
    assert "FAILED: 2 problem(s)" in stdout
    assert "negative control 'naive' of cell 'tweak/cell' passed" in stdout
    assert "'tboom' raised ZeroDivisionError: zero-mean denominator" in stdout
    assert json.loads((tmp_path / "results.json").read_text())["summary"]["ok"] is False


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["run", "--only", "no-such-check"], "known checks: "),
        (["run", "--seed", "-3"], "must be a non-negative integer"),
        (["run", "--profile", "huge"], "invalid choice"),
        (["run", "--recsys-results", "missing.json"], "`--recsys-results` must be an existing"),
        (["show", "no-such-check"], "no check named 'no-such-check'; known checks:"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_usage_errors_exit_2(tmp_path, tmp_checks, capsys, monkeypatch, args, needle):
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert needle in err
    if "no-such-check" in args:
        assert "tcli-coverage" in err


def test_show_prints_claim_scenario_and_last_figures(tmp_path, tmp_checks, capsys):
    out = tmp_path / "rep"
    assert main(["run", "--only", "tcli-coverage", "--out", str(out), "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["show", "tcli-coverage", "--results", str(out / "results.json")]) == 0
    text = capsys.readouterr().out
    assert "A 95% z-interval covers the mean" in text and "any textbook" in text
    assert "Normal(0, 1) samples of n in {5, 50}" in text  # the docstring states the scenario
    assert "PASS tcli-coverage/n=5" in text and "scenario: n=5, dist=normal" in text


def test_list_in_process(tmp_checks, capsys):
    assert main(["list"]) == 0
    text = capsys.readouterr().out
    assert "tcli-coverage" in text and "exact" in text


@pytest.mark.slow
def test_list_subprocess_with_whatever_is_registered(tmp_path):
    proc = _cli(["list"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "checks" in proc.stdout or "no checks are registered" in proc.stdout


NUMBA_MODULE = """
import numba
import numpy as np

from validation import CheckResult, NegativeControl, register
from validation.mc import proportion_tolerance


@numba.njit(parallel=True, cache=True)  # the 2-thread run loads the 1-thread compile
def _covered_kernel(seeds, n, half):
    out = np.empty(seeds.shape[0])
    for r in numba.prange(seeds.shape[0]):
        np.random.seed(seeds[r])  # one stream per replicate, whatever the thread
        total = 0.0
        for _ in range(n):
            total += np.random.standard_normal()
        out[r] = 1.0 if abs(total / n) <= half else 0.0
    return out


@register("tnum-coverage", claim="z-interval coverage, numba prange kernel")
def _check(ctx):
    n, n_rep = 20, 2000
    seeds = np.array([s.generate_state(1, np.uint32)[0]
                      for s in ctx.seed_sequence("tnum").spawn(n_rep)], dtype=np.int64)
    half = 1.959963984540054 / np.sqrt(n)
    cov = float(_covered_kernel(seeds, n, half).mean())
    naive = float(_covered_kernel(seeds, n, half / 2).mean())
    tol = proportion_tolerance(0.95, n_rep, ctx.z)
    return CheckResult("tnum-coverage", "c", {"n": n}, cov, 0.95, tol, abs(cov - 0.95) <= tol,
                       n_rep, ctx.seed, NegativeControl("half width", naive,
                                                        abs(naive - 0.95) > tol))
"""


@pytest.mark.slow
def test_results_identical_for_1_and_2_numba_threads(tmp_path):
    (tmp_path / "tnum_checks.py").write_text(NUMBA_MODULE)
    docs = []
    for threads in ("1", "2"):
        out = tmp_path / f"t{threads}"
        proc = _cli(
            [
                "run",
                "--import",
                "tnum_checks",
                "--only",
                "tnum-*",
                "--seed",
                "4",
                "--out",
                str(out),
                "--no-progress",
            ],
            tmp_path,
            NUMBA_NUM_THREADS=threads,
            NUMBA_CACHE_DIR=str(tmp_path / "numba-cache"),
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        docs.append(json.loads((out / "results.json").read_text()))
    assert [d["versions"]["numba_num_threads"] for d in docs] == [1, 2]
    assert strip_nondeterministic(docs[0]) == strip_nondeterministic(docs[1])
    assert docs[0]["command"].endswith("--import tnum_checks --only 'tnum-*'")


SLOW_MODULE = """
import os
import time

from validation import CheckResult, NegativeControl, register


@register("tsig-a-fast", claim="finishes at once")
def _fast(ctx):
    return CheckResult("tsig-a-fast", "c", {}, 0.95, 0.95, 0.01, True, 10, ctx.seed,
                       NegativeControl("naive", 0.5, True))


@register("tsig-b-slow", claim="takes a minute")
def _slow(ctx):
    with open(os.environ["TSIG_MARKER"], "w") as fh:
        fh.write("started")
    time.sleep(60)
    return CheckResult("tsig-b-slow", "c", {}, 0.95, 0.95, 0.01, True, 10, ctx.seed,
                       NegativeControl("naive", 0.5, True))
"""


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_leaves_previous_results(tmp_path, signum):
    (tmp_path / "tsig_checks.py").write_text(SLOW_MODULE)
    out = tmp_path / "rep"
    out.mkdir()
    previous = '{"previous": "run"}\n'
    (out / "results.json").write_text(previous)
    marker = tmp_path / "started"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "validation",
            "run",
            "--import",
            "tsig_checks",
            "--only",
            "tsig-*",
            "--out",
            str(out),
            "--no-progress",
        ],
        cwd=tmp_path,
        env=_env(tmp_path, TSIG_MARKER=str(marker)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the slow check never started"
            time.sleep(0.05)
        proc.send_signal(signum)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, stdout + stderr
    assert "tsig-a-fast: ok" in stderr and "running when interrupted: tsig-b-slow" in stderr
    assert "HOLDS  tsig-a-fast" in stdout
    assert (out / "results.json").read_text() == previous
    assert sorted(p.name for p in out.iterdir()) == ["results.json"]


@pytest.mark.parametrize("command", ["list", "run"])
def test_broken_check_module_exits_1(capsys, command, tmp_path):
    args = [command, "--import", "tcli_no_such_module"]
    if command == "run":
        args += ["--out", str(tmp_path)]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "could not import the check modules" in err and "ModuleNotFoundError" in err
    assert not (tmp_path / "results.json").exists()
