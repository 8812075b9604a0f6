"""The four packages import one way only (STYLE.md, "Layout and data flow")."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("sim", "estimators", "recsys", "validation")
# package -> packages of ours it may import
ALLOWED = {
    "sim": set(),
    "estimators": set(),
    "recsys": {"sim"},
    "validation": {"sim", "estimators", "recsys"},
}
# third-party packages a package must not import
FORBIDDEN_THIRD_PARTY = {"sim": {"torch"}, "estimators": {"torch", "numba"}}


def _imported_top_levels(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", PACKAGES)
def test_imports_point_one_way(package):
    offenders = []
    for path in sorted((ROOT / package).rglob("*.py")):
        imported = _imported_top_levels(path)
        ours = (imported & set(PACKAGES)) - {package}
        bad = (ours - ALLOWED[package]) | (imported & FORBIDDEN_THIRD_PARTY.get(package, set()))
        if bad:
            offenders.append(f"{path.relative_to(ROOT)} imports {sorted(bad)}")
    assert not offenders, "\n".join(offenders)


@pytest.mark.parametrize("package", PACKAGES)
def test_package_imports(package):
    __import__(package)
