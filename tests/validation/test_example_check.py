"""The <= 30-line check shown in docs/report.md runs as written and holds."""

from pathlib import Path

import pytest

from validation.core import RunContext, get_check, unregister

DOC = Path(__file__).resolve().parents[2] / "docs" / "report.md"


def _example() -> str:
    text = DOC.read_text(encoding="utf-8")
    start = text.index("```python\nfrom validation import CheckResult") + len("```python\n")
    return text[start : text.index("\n```", start)]


def test_documented_example_is_at_most_30_lines():
    assert len(_example().strip().splitlines()) <= 30


@pytest.mark.slow
def test_documented_example_check_holds():
    namespace: dict = {}
    exec(compile(_example(), str(DOC), "exec"), namespace)  # noqa: S102 - the doc's code
    try:
        (cell,) = get_check("aa-fpr").run(RunContext("quick", 1))
        assert cell.ok and cell.rule == "within" and cell.negative_control.failed_as_expected
    finally:
        unregister("aa-fpr")
