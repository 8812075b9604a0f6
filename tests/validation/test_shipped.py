"""Checks see a wrong public function however and whenever it is swapped in."""

import importlib
import subprocess
import sys
import textwrap

import pytest

import estimators
from validation import power_checks
from validation.core import RunContext, get_check
from validation.shipped import Shipped, resolve

POWER = importlib.import_module("estimators.power")  # `estimators.power` is the function


def _small(orig):
    def wrong(*args, **kwargs):
        import dataclasses

        res = orig(*args, **kwargs)
        return dataclasses.replace(res, n_control=int(res.n_control * 0.79))

    return wrong


def _roundtrip_ok() -> bool:
    cells = get_check("power-mde-roundtrip").run(RunContext("quick", 1))
    return all(c.ok for c in cells)


def test_resolve_returns_the_original_when_nothing_is_swapped():
    assert resolve("estimators.power", "sample_size") is POWER.sample_size
    assert Shipped("estimators.power", "sample_size").target is estimators.sample_size


@pytest.mark.parametrize("where", ["package", "submodule"])
def test_swap_after_import_is_seen(monkeypatch, where):
    assert _roundtrip_ok()
    owner = estimators if where == "package" else POWER
    monkeypatch.setattr(owner, "sample_size", _small(POWER.sample_size))
    assert power_checks.sample_size.target is owner.sample_size
    assert not _roundtrip_ok()


_BEFORE_IMPORT = """
import dataclasses, sys
import estimators, importlib
orig = importlib.import_module("estimators.power").sample_size
def wrong(*a, **k):
    r = orig(*a, **k)
    return dataclasses.replace(r, n_control=int(r.n_control * 0.79))
setattr(sys.modules[{owner!r}], "sample_size", wrong)
assert "validation" not in sys.modules
from validation.__main__ import main
sys.exit(main(["run", "--only", "power-mde-roundtrip", "--out", {out!r}, "--no-progress"]))
"""


@pytest.mark.slow
@pytest.mark.parametrize("owner", ["estimators", "estimators.power"])
def test_swap_before_import_makes_the_run_exit_1(tmp_path, owner):
    code = textwrap.dedent(_BEFORE_IMPORT.format(owner=owner, out=str(tmp_path / "r")))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "power-at-n" in proc.stdout
