"""docs/data.md: its Python and command-line examples run as written."""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import pytest

from estimators.__main__ import main

DOC = Path(__file__).resolve().parents[2] / "docs" / "data.md"
TEXT = DOC.read_text()
PYTHON = re.findall(r"```python\n(.*?)```", TEXT, flags=re.S)
BASH = re.findall(r"```bash\n(.*?)```", TEXT, flags=re.S)

pytest.importorskip("duckdb", reason="the `sql` extra (duckdb) is not installed")
pytest.importorskip("polars", reason="the `sql` extra (polars) is not installed")


def _run(blocks, namespace):
    for i, block in enumerate(blocks):
        exec(compile(block, f"docs/data.md[python block {i}]", "exec"), namespace)


def _is_spark(block):
    return block.startswith("# spark")


def test_doc_has_examples():
    assert len(PYTHON) >= 6 and sum(map(_is_spark, PYTHON)) == 1 and BASH


def test_python_examples_run(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    _run([b for b in PYTHON if not _is_spark(b)], {})
    assert "WITH _units AS" in capsys.readouterr().out


def test_command_line_examples_run(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    _run(PYTHON[:1], {})
    for line in BASH[0].strip().splitlines():
        argv = shlex.split(line)
        assert argv[:3] == ["python", "-m", "estimators"]
        assert main(argv[3:]) == 0, line
        assert "clicks/views" in capsys.readouterr().out


@pytest.mark.slow
def test_spark_example_runs(tmp_path, monkeypatch):
    pytest.importorskip("pyspark", reason="the `spark` extra (pyspark) is not installed")
    if shutil.which("java") is None:
        pytest.skip("no Java runtime on PATH: Spark cannot start")
    monkeypatch.chdir(tmp_path)
    ns: dict = {}
    spark_block = next(b for b in PYTHON if _is_spark(b))
    _run(PYTHON[:1], ns)  # makes events.parquet; the Spark block imports what it uses
    try:
        _run([spark_block], ns)
    finally:
        ns["spark"].stop() if "spark" in ns else None
