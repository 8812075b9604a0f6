"""The README's Python examples run as written (keeps the README in step with the code)."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_python_examples():
    assert len(BLOCKS) >= 3


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_example_runs(index, capsys):
    exec(compile(BLOCKS[index], f"README.md[python block {index}]", "exec"), {})


def test_ci_runs_the_readmes_test_command_verbatim():
    """The README opens with two commands; `.ci/run` runs the second, the test command."""
    first = re.search(r"```bash\n(.*?)```", README.read_text(), flags=re.S).group(1)
    report_cmd, test_cmd = first.strip().splitlines()
    assert "validation run" in report_cmd and test_cmd.startswith("bash scripts/setup.sh")
    ci = (README.parent / ".ci" / "run").read_text().strip().splitlines()
    assert ci[-1] == test_cmd
    script = (README.parent / "scripts" / "test.sh").read_text()
    assert '-m "slow or not slow"' in script  # the slow tests run too
