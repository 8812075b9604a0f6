"""Ctrl-C under ``python -m estimators analyze``: exit 130, one line, no traceback."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from estimators import __main__ as cli

ROOT = Path(__file__).resolve().parents[2]
ARGS = ["analyze", "x.csv", "--unit", "u", "--arm", "a", "--metric", "m"]


def _interrupt_me():
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(5)  # the handler raises here
    raise AssertionError("no interrupt arrived")


def test_sigint_during_the_analysis_exits_130(monkeypatch, capsys):
    before = signal.getsignal(signal.SIGINT)
    monkeypatch.setattr(cli, "_analyze", lambda args: _interrupt_me())
    assert cli.main(ARGS) == 130
    err = capsys.readouterr().err
    assert err.strip() == "python -m estimators: interrupted." and "Traceback" not in err
    assert signal.getsignal(signal.SIGINT) is before


def test_an_interrupt_turned_into_an_error_still_exits_130(monkeypatch, capsys):
    # DuckDB or an extension's import may report the interrupt as an error of its own
    def swallowing(args):
        try:
            _interrupt_me()
        except BaseException as exc:
            raise RuntimeError("query interrupted") from exc

    monkeypatch.setattr(cli, "_analyze", swallowing)
    assert cli.main(ARGS) == 130
    assert "interrupted" in capsys.readouterr().err


def test_usage_errors_still_exit_2(capsys):
    assert cli.main([*ARGS[:1], "no-such-file.csv", *ARGS[2:]]) == 2
    assert "is not a file" in capsys.readouterr().err


def _catches_sigterm(pid: int) -> bool:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("SigCgt:"):
                return bool(int(line.split()[1], 16) & (1 << (signal.SIGTERM - 1)))
    return False


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="Linux /proc")
def test_sigint_once_the_command_runs_exits_130(tmp_path):
    data = tmp_path / "exp.csv"
    data.write_text("u,a,m\n" + "".join(f"{i},{'ab'[i % 2]},{i % 3}\n" for i in range(200)))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "estimators",
            "analyze",
            str(data),
            "--unit",
            "u",
            "--arm",
            "a",
            "--metric",
            "m",
        ],
        cwd=tmp_path,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 90
        while not _catches_sigterm(proc.pid):  # the command's handler is installed
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.002)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, (proc.returncode, stdout, stderr)
    assert "Traceback" not in stderr and "interrupted" in stderr, stderr


def _python(code: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_import_estimators_imports_no_scipy():
    # python -m estimators imports the package before its handler: keep that short
    out = _python("import sys, estimators\nprint('scipy' in sys.modules, 'duckdb' in sys.modules)")
    assert out.split() == ["False", "False"]


@pytest.mark.slow
@pytest.mark.parametrize("first", ["import estimators.power", "from estimators import power"])
def test_power_is_the_function_whatever_comes_first(first):
    code = f"""{first}
import inspect, sys
import estimators
from estimators.power import sample_size
assert inspect.isfunction(estimators.power), estimators.power
assert estimators.power is sys.modules["estimators.power"].power
assert estimators.sample_size is sample_size
assert set(estimators.__all__) <= set(dir(estimators))
print("ok")
"""
    assert _python(code).strip() == "ok"
