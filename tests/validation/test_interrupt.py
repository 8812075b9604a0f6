"""Ctrl-C at any moment of ``python -m validation``: exit 130, one line, no traceback.

Also the light package import that makes it possible (nothing heavy is imported before
the handler), and ``validation.calibrate`` staying the function whichever of the
function and the submodule is imported first.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("numba", "scipy", "torch", "matplotlib", "sim")
PREVIOUS = '{"previous": "run"}\n'

# A check that announces it started, then sleeps: a run that is still busy after seconds.
SLOW_MODULE = """
import os, time
from validation import CheckResult, NegativeControl, register

@register("tint-slow", claim="sleeps", reference="test", group="test")
def _slow(ctx):
    with open(os.environ["TINT_MARKER"], "w") as fh:
        fh.write("started")
    time.sleep(120)
    return CheckResult("tint-slow", "c", {}, 0.95, 0.95, 0.01, True, 10, ctx.seed,
                       NegativeControl("naive", 0.5, True))
"""


def _python(code: str, timeout: float = 120) -> str:
    """Run ``code`` in a fresh interpreter (the repository importable); its stdout."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def _heavy_after(statement: str) -> list[str]:
    code = f"import sys\n{statement}\nprint(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    return _python(code).split()


def test_import_validation_imports_nothing_heavy():
    assert _heavy_after("import validation") == []


def test_the_cli_module_imports_nothing_heavy_before_main():
    # what runs before ``main`` installs the handler: the package and the module body
    assert _heavy_after("import validation.__main__") == []


@pytest.mark.slow  # each imports validation.calibrate (SciPy, Numba) in a fresh process
@pytest.mark.parametrize(
    "first",
    [
        "import validation.calibrate",
        "from validation.calibrate import Calibration",
        "import validation; validation.calibrate",
        "from validation import calibrate",
        "import validation; validation.Calibration",
    ],
)
def test_calibrate_is_the_function_whatever_comes_first(first):
    code = f"""{first}
import inspect, sys
import validation
from validation import calibrate
from validation.calibrate import Calibration, CalibrationScenario
module = sys.modules["validation.calibrate"]
assert inspect.isfunction(validation.calibrate), validation.calibrate
assert validation.calibrate is calibrate is module.calibrate
assert inspect.ismodule(module) and module.Calibration is Calibration
assert validation.Calibration is Calibration
assert validation.CalibrationScenario is CalibrationScenario
print("ok")
"""
    assert _python(code).strip() == "ok"


@pytest.mark.slow
def test_calibrate_is_called_after_the_submodule_was_imported():
    # the function runs (its own argument check answers), not "module is not callable"
    code = """
from validation.calibrate import Calibration
import validation
import estimators
try:
    validation.calibrate(estimators.ratio_test, ["small-n"], n_replicates=1)
except ValueError as exc:
    print(exc)
"""
    assert "`n_replicates` must be >= 2; got 1" in _python(code)


@pytest.mark.slow  # the star import loads every public name
def test_public_names_dir_and_star_import():
    code = """
import validation
names = set(validation.__all__)
assert names <= set(dir(validation)), names - set(dir(validation))
ns = {}
exec("from validation import *", ns)
assert names <= set(ns), names - set(ns)
assert callable(ns["calibrate"]) and ns["Z_FAMILY"] > 0
try:
    validation.no_such_name
except AttributeError as exc:
    assert "no_such_name" in str(exc)
else:
    raise AssertionError("no AttributeError")
print(len(names))
"""
    assert int(_python(code)) == 15


@pytest.mark.slow
def test_the_registry_does_not_depend_on_import_order():
    # the checks registered by the runner's imports, with and without validation.calibrate
    # imported first (the old package imported it eagerly)
    listing = (
        "from validation.core import iter_checks\n"
        "import sys\n"
        "print(' '.join(c.name for c in iter_checks()))\n"
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('validation.'))))\n"
    )
    plain = _python(listing).splitlines()
    eager = _python("import validation.calibrate\n" + listing).splitlines()
    assert plain[0] == eager[0] and len(plain[0].split()) >= 10
    assert "validation.calibrate" not in plain[1].split()  # the runner does not need it


# --- signals -------------------------------------------------------------------------


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(tmp_path), str(ROOT)) if p)
    env.update(extra)
    return env


def _handler_installed(pid: int) -> bool:
    """Whether process ``pid`` catches SIGTERM (only our handler does; Linux /proc)."""
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("SigCgt:"):
                return bool(int(line.split()[1], 16) & (1 << (signal.SIGTERM - 1)))
    return False


def _interrupt(args, tmp_path, *, when, signum=signal.SIGINT, **env):
    """Start ``python -m validation ARGS``, signal it at ``when``; (returncode, stderr).

    ``when`` is a delay in seconds after the launch, "handler" (as soon as the process
    catches SIGTERM: the earliest moment the command can keep its promise) or "check"
    (once the slow check wrote its marker).
    """
    marker = tmp_path / "started"
    proc = subprocess.Popen(
        [sys.executable, "-m", "validation", *args],
        cwd=tmp_path,
        env=_env(tmp_path, TINT_MARKER=str(marker), **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 90
        if when == "handler":
            while not _handler_installed(proc.pid):
                assert proc.poll() is None, proc.communicate()
                assert time.monotonic() < deadline, "the handler was never installed"
                time.sleep(0.002)
        elif when == "check":
            while not marker.exists():
                assert proc.poll() is None, proc.communicate()
                assert time.monotonic() < deadline, "the slow check never started"
                time.sleep(0.05)
        else:
            time.sleep(when)
        assert proc.poll() is None, ("finished before the signal", proc.communicate())
        proc.send_signal(signum)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return proc.returncode, stdout, stderr


needs_proc = pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="Linux /proc")


def _run_args(out: Path) -> list[str]:
    return ["run", "--import", "tint_checks", "--only", "tint-*", "--out", str(out)]


@needs_proc
@pytest.mark.slow
@pytest.mark.parametrize("when", ["handler", 0.3, 1.0, 2.0, 4.0, "check"])
def test_sigint_at_any_moment_of_run_exits_130(tmp_path, when):
    (tmp_path / "tint_checks.py").write_text(SLOW_MODULE)
    out = tmp_path / "rep"
    out.mkdir()
    (out / "results.json").write_text(PREVIOUS)
    rc, stdout, stderr = _interrupt(_run_args(out) + ["--no-progress"], tmp_path, when=when)
    assert rc == 130, (rc, stdout, stderr)
    assert "Traceback" not in stderr and "interrupted" in stderr, stderr
    assert (out / "results.json").read_text() == PREVIOUS
    assert sorted(p.name for p in out.iterdir()) == ["results.json"]
    if when == "check":
        assert "running when interrupted: tint-slow" in stderr, stderr


@needs_proc
@pytest.mark.slow
@pytest.mark.parametrize("when", ["handler", 1.0])
def test_sigterm_early_exits_130(tmp_path, when):
    (tmp_path / "tint_checks.py").write_text(SLOW_MODULE)
    out = tmp_path / "rep"
    out.mkdir()
    (out / "results.json").write_text(PREVIOUS)
    rc, stdout, stderr = _interrupt(_run_args(out), tmp_path, when=when, signum=signal.SIGTERM)
    assert rc == 130, (rc, stdout, stderr)
    assert "Traceback" not in stderr, stderr
    assert (out / "results.json").read_text() == PREVIOUS


@needs_proc
@pytest.mark.slow
@pytest.mark.parametrize(
    "args",
    [
        ["list"],
        ["show", "aa-calibration"],
        ["calibrate", "estimators:ratio_test", "--out", "cal"],
        ["mutants", "--only", "sample-size-21pct-small", "--out", "mut"],
    ],
    ids=lambda a: a[0],
)
def test_sigint_while_the_other_subcommands_start_exits_130(tmp_path, args):
    rc, stdout, stderr = _interrupt(args, tmp_path, when="handler")
    assert rc == 130, (rc, stdout, stderr)
    assert "Traceback" not in stderr, stderr
    assert stderr.strip().splitlines()[-1].endswith("interrupted; nothing was written.")
    assert not (tmp_path / "cal").exists() and not (tmp_path / "mut").exists()


def test_ignored_sigint_stays_ignored(tmp_path):
    # a background job of a shell script inherits SIGINT ignored: keep it so
    code = (
        "import signal, sys\n"
        "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
        "from validation.interrupt import interrupts_raised\n"
        "with interrupts_raised():\n"
        "    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN\n"
        "    assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL\n"
        "assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL\n"
        "print('ok')\n"
    )
    assert _python(code).strip() == "ok"


@pytest.mark.slow  # imports the mutation harness
def test_mutants_json_is_written_atomically(tmp_path, monkeypatch):
    # an interrupt while mutants.json is staged leaves the previous file as it was
    from validation import __main__ as cli
    from validation import cli_common, mutants, runner_io

    out = tmp_path / "mut"
    out.mkdir()
    (out / "mutants.json").write_text(PREVIOUS)

    class Outcome:
        killed, killed_by, kill, elapsed_s = True, ("cell",), "fail", 0.0

    monkeypatch.setattr(mutants, "run_mutant", lambda m, **kw: Outcome())
    monkeypatch.setattr(cli_common, "load_checks", lambda imports: True)  # checks not run

    def interrupted_commit(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(runner_io.AtomicWriter, "commit", interrupted_commit)
    name = mutants.select_mutants(None)[0].name
    assert cli.main(["mutants", "--only", name, "--out", str(out)]) == 130
    assert (out / "mutants.json").read_text() == PREVIOUS
    assert sorted(p.name for p in out.iterdir()) == ["mutants.json"]


@pytest.mark.slow  # imports the runner (SciPy) in-process
def test_an_interrupt_an_import_turned_into_an_error_exits_130(monkeypatch, capsys):
    # measured: NumPy's C import, interrupted, reports "PyCapsule_Import could not import
    # module 'datetime'" (an ImportError): the run must still end as interrupted
    import validation.core
    from validation import __main__ as cli

    def interrupted_import():
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
        except BaseException as exc:
            raise ImportError("PyCapsule_Import could not import module 'datetime'") from exc

    monkeypatch.setattr(validation.core, "load_builtin_checks", interrupted_import)
    before = signal.getsignal(signal.SIGINT)
    assert cli.main(["list"]) == 130
    err = capsys.readouterr().err
    assert "could not import" not in err and "Traceback" not in err, err
    assert err.strip().endswith("interrupted; nothing was written.")
    assert signal.getsignal(signal.SIGINT) is before


@pytest.mark.slow  # runs two small checks in-process
@pytest.mark.parametrize("moved", [False, True])
def test_an_interrupt_while_writing_says_which_report_is_there(
    tmp_path, monkeypatch, capsys, moved
):
    # the moves into place hold the signals back: an interrupt lands before them (the
    # previous report stays) or after them all (the new one is complete); say which
    from _tmpchecks import register_tmp_checks  # tests/validation is on the path

    import validation.report
    from validation import __main__ as cli
    from validation.core import unregister
    from validation.interrupt import Interrupted

    out = tmp_path / "rep"
    out.mkdir()
    (out / "results.json").write_text(PREVIOUS)

    def write_then_interrupt(run, out_dir, **kwargs):
        if moved:
            new = out / "new.json"
            new.write_text("{}")
            os.replace(new, out / "results.json")
        raise Interrupted(signal.SIGINT)

    monkeypatch.setattr(validation.report, "write_report", write_then_interrupt)
    names = register_tmp_checks("tintw")
    try:
        rc = cli.main(["run", "--only", "tintw-*", "--out", str(out), "--no-progress"])
    finally:
        for name in names:
            unregister(name)
    err = capsys.readouterr().err
    assert rc == 130 and "Traceback" not in err
    if moved:
        assert "is the new one" in err, err
    else:
        assert "was not replaced" in err and (out / "results.json").read_text() == PREVIOUS
