"""The <= 30-line check shown in docs/report.md is the real check's source, and holds."""

import inspect
from pathlib import Path

from validation import ab_checks
from validation.core import RunContext

DOC = Path(__file__).resolve().parents[2] / "docs" / "report.md"


def _example() -> str:
    text = DOC.read_text(encoding="utf-8")
    start = text.index("```python\ndef check_deng2018_table2(") + len("```python\n")
    return text[start : text.index("\n```", start)]


def test_documented_example_is_the_real_check_in_at_most_30_lines():
    source = inspect.getsource(ab_checks.check_deng2018_table2)
    function = source[source.index("def check_deng2018_table2(") :].rstrip()
    assert _example() == function  # the doc cannot drift from the code
    assert len(function.splitlines()) <= 30


def test_documented_example_reads_simulate_statistic_claim():
    body = _example()
    order = [body.index(s) for s in ("simulate_moments", "ratio_test_from_moments", "CheckResult(")]
    assert order == sorted(order)
    cell = ab_checks.check_deng2018_table2(RunContext("quick", 1))
    assert cell.ok and cell.rule == "within" and cell.negative_control.failed_as_expected
