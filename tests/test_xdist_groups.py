"""How the tests are handed to the xdist workers (tests/conftest.py, scripts/test.sh)."""

from pathlib import Path

from conftest import SPREAD_FILES

ROOT = Path(__file__).resolve().parents[1]


def test_a_file_is_one_group(request):
    mark = request.node.get_closest_marker("xdist_group")
    assert mark is not None and mark.args == ("tests/test_xdist_groups.py",)


def test_spread_files_exist():
    assert SPREAD_FILES and all((ROOT / path).is_file() for path in SPREAD_FILES)


def test_test_script_distributes_by_group():
    script = (ROOT / "scripts" / "test.sh").read_text()
    assert "--dist loadgroup" in script
