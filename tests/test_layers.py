"""The package import graph follows the declared layers: arrows point one way only.

Every import in every .py file of the packages counts, at any depth (inside
functions too: a lazy import is still a dependency). `central` is the
central server; it imports none of the kiosk packages, and only the
benchmarks may import it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# lowest first: a package may import only the packages before it
LAYERS = ("gaitmil", "gaitsim", "edge", "export", "calibration", "benchmarks")
ALLOWED: dict[str, frozenset[str]] = {
    package: frozenset(LAYERS[:index]) for index, package in enumerate(LAYERS)
}
ALLOWED["central"] = frozenset()
ALLOWED["benchmarks"] = ALLOWED["benchmarks"] | {"central"}
PACKAGES = tuple(ALLOWED)


def imported_packages(path: Path) -> list[tuple[int, str, str]]:
    """(line, top-level package, module as written) for each absolute import of a package."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules = [node.module]
        else:
            continue  # relative imports stay inside their own package
        for module in modules:
            top = module.split(".")[0]
            if top in ALLOWED:
                found.append((node.lineno, top, module))
    return found


def test_every_package_is_declared():
    on_disk = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"tests"}
    assert on_disk <= set(PACKAGES), f"packages without a layer: {sorted(on_disk - set(PACKAGES))}"


@pytest.mark.parametrize("package", PACKAGES)
def test_imports_follow_the_layers(package):
    violations = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for line, top, module in imported_packages(path):
            if top != package and top not in ALLOWED[package]:
                violations.append(
                    f"{path.relative_to(ROOT)}:{line}: imports {module} "
                    f"({package} may import only {sorted(ALLOWED[package]) or 'no other package'})"
                )
    assert not violations, "import against the layer order:\n" + "\n".join(violations)


def test_the_checker_sees_lazy_imports(tmp_path):
    path = tmp_path / "lazy.py"
    path.write_text(
        "def f():\n    from calibration.quantize import quantize\n    import export.audit\n"
    )
    assert [(top, module) for _, top, module in imported_packages(path)] == [
        ("calibration", "calibration.quantize"),
        ("export", "export.audit"),
    ]
