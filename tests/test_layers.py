"""The package import graph follows the declared layers: arrows point one way only.

Every import in every .py file of the packages counts, at any depth (inside
functions too: a lazy import is still a dependency). `gaitcontract` is the ground
everything stands on; `demobroker` (the demos' embedded MQTT broker) is a leaf beside it
that the kiosk and the central side may both use. `central` is the central server; of the
other packages it imports only those two, and only the benchmarks may import it. The kiosk
(`edge`) never imports gaitmil's training modules: only the network and its
checkpoint format, for the PyTorch reference runner. Export checks engines with the
kiosk's runner contract (`edge.runners`, `edge.errors`) and nothing else of the kiosk.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# lowest first: a package may import only the packages before it
LAYERS = ("gaitcontract", "gaitsim", "gaitmil", "edge", "export", "calibration", "benchmarks")
ALLOWED: dict[str, frozenset[str]] = {
    package: frozenset(LAYERS[:index]) for index, package in enumerate(LAYERS)
}
ALLOWED["central"] = frozenset({"gaitcontract"})
ALLOWED["benchmarks"] = ALLOWED["benchmarks"] | {"central"}
# the demos' embedded MQTT broker (amqtt): a leaf that imports none of ours, shared by the kiosk
# and the central side, which may not import each other
ALLOWED["demobroker"] = frozenset()
for _user in (*LAYERS[LAYERS.index("edge") :], "central"):
    ALLOWED[_user] = ALLOWED[_user] | {"demobroker"}
PACKAGES = tuple(ALLOWED)
# (importer, imported) -> the only modules of `imported` it may use, each with its submodules
ONLY: dict[tuple[str, str], frozenset[str]] = {
    ("edge", "gaitmil"): frozenset({"gaitmil.model", "gaitmil.checkpoint"}),
    # export checks engines with the kiosk's runners and nothing else of the kiosk: never its
    # service, wiring, settings, sources, publishing or model store (the bundle, model folder
    # and check set formats are gaitcontract's)
    ("export", "edge"): frozenset({"edge.runners", "edge.errors"}),
}


def within(module: str, allowed: frozenset[str]) -> bool:
    """True when `module` is one of `allowed` or inside one of them (a.b.c is inside a.b)."""
    return any(module == prefix or module.startswith(prefix + ".") for prefix in allowed)


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


def layer_violations(package: str, path: Path) -> list[str]:
    """Each import in `path` (a file of `package`) that the layers forbid, with why."""
    found = []
    for line, top, module in imported_packages(path):
        if top != package and top not in ALLOWED[package]:
            found.append(
                f"{path}:{line}: imports {module} "
                f"({package} may import only {sorted(ALLOWED[package]) or 'no other package'})"
            )
        elif (package, top) in ONLY and not within(module, ONLY[package, top]):
            found.append(
                f"{path}:{line}: imports {module} "
                f"(of {top}, {package} may import only {sorted(ONLY[package, top])})"
            )
    return found


@pytest.mark.parametrize("package", PACKAGES)
def test_imports_follow_the_layers(package):
    violations = []
    for path in sorted((ROOT / package).rglob("*.py")):
        violations += layer_violations(package, path)
    assert not violations, "import against the layer order:\n" + "\n".join(violations)


def test_the_kiosk_and_central_never_import_training_modules(tmp_path):
    path = tmp_path / "runner.py"
    path.write_text("from gaitmil.model import GaitMIL\nfrom gaitmil.train import train\n")
    found = layer_violations("edge", path)
    assert len(found) == 1 and "gaitmil.train" in found[0]
    assert len(layer_violations("central", path)) == 2


def test_export_uses_only_the_kiosks_runner_contract(tmp_path):
    path = tmp_path / "engine.py"
    path.write_text(
        "from edge.runners.trt_plan import same_tensorrt_release\n"
        "import edge.runners\n"
        "from edge.errors import RunnerError\n"
        "def f():\n"
        "    from edge.model_store.gate import run_gate\n"
        "    from edge import wiring\n"
        "    import edge.runnersx\n"
    )
    found = layer_violations("export", path)
    assert [line.split(": imports ")[1].split(" ")[0] for line in found] == [
        "edge.model_store.gate",
        "edge",
        "edge.runnersx",
    ]
    assert "export may import only ['edge.errors', 'edge.runners']" in found[0]


def test_the_checker_sees_lazy_imports(tmp_path):
    path = tmp_path / "lazy.py"
    path.write_text(
        "def f():\n    from calibration.quantize import quantize\n    import export.audit\n"
    )
    assert [(top, module) for _, top, module in imported_packages(path)] == [
        ("calibration", "calibration.quantize"),
        ("export", "export.audit"),
    ]


def module_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports (at any depth), by dotted name."""
    modules = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            modules[name.removesuffix(".__init__")] = path
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                # `from pkg import mod` imports pkg.mod when that is a module
                targets = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            else:
                continue
            graph[name].update(t for t in targets if t in modules and t != name)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    group = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        group.append(member)
                        if member == node:
                            break
                    if len(group) > 1:
                        found.append(sorted(group))
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph[child]))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return found


def test_no_module_imports_itself_through_others():
    # e.g. edge.settings <-> edge.screening.threshold once: each module's arrows must end somewhere
    assert cycles(module_graph()) == []


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
