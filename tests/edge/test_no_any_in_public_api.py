"""No public function or method of the kiosk takes or returns `Any` (issue 26).

`Any` switches the type checker off wherever the value flows, so a public signature
with it hides mistakes from every caller. Walks the AST of every module in edge/: a
function or method counts as public when its name (and its class's name) does not
start with a single underscore; dunders such as `__init__` are public. Parameter and
return annotations are searched for `Any`, `typing.Any` and string annotations that
spell either.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EDGE = ROOT / "edge"

Function = ast.FunctionDef | ast.AsyncFunctionDef


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _any_names(tree: ast.Module) -> set[str]:
    """Local names bound to typing.Any (`from typing import Any as A` counts too)."""
    names = {"Any"}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module in {"typing", "typing_extensions"}:
            names |= {alias.asname or alias.name for alias in node.names if alias.name == "Any"}
    return names


def mentions_any(annotation: ast.expr | None, any_names: set[str]) -> bool:
    """Whether the annotation names Any anywhere, including inside a string annotation."""
    if annotation is None:
        return False
    for node in ast.walk(annotation):
        if isinstance(node, ast.Name) and node.id in any_names:
            return True
        if isinstance(node, ast.Attribute) and node.attr == "Any":
            return True
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            try:
                inner = ast.parse(node.value, mode="eval").body
            except SyntaxError:
                continue  # a Literal["..."] string, not an annotation
            if mentions_any(inner, any_names):
                return True
    return False


def _public_functions(body: list[ast.stmt]) -> Iterator[Function]:
    """Public functions of a module or class body, and the methods of its public classes."""
    for node in body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and not _is_private(node.name):
            yield node
        elif isinstance(node, ast.ClassDef) and not _is_private(node.name):
            yield from _public_functions(node.body)


def _annotations(function: Function) -> Iterator[ast.expr | None]:
    args = function.args
    for arg in (*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg):
        if arg is not None:
            yield arg.annotation
    yield function.returns


def any_in_public_signatures(path: Path, shown_as: str) -> list[str]:
    """`file:line name` for each public function of `path` whose signature mentions Any."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    any_names = _any_names(tree)
    return [
        f"{shown_as}:{function.lineno} {function.name}"
        for function in _public_functions(tree.body)
        if any(mentions_any(annotation, any_names) for annotation in _annotations(function))
    ]


def test_no_public_edge_signature_takes_or_returns_any():
    found = []
    for path in sorted(EDGE.rglob("*.py")):
        found += any_in_public_signatures(path, path.relative_to(ROOT).as_posix())
    assert not found, "public signatures with Any:\n" + "\n".join(found)


def test_finds_any_in_a_synthetic_module(tmp_path):
    module = tmp_path / "module.py"
    module.write_text(
        "from typing import Any\n"
        "import typing\n"
        "def takes(x: Any) -> int: ...\n"
        "def gives() -> 'dict[str, Any]': ...\n"
        "def qualified(**kw: typing.Any) -> None: ...\n"
        "def _private(x: Any) -> Any: ...\n"
        "class Public:\n"
        "    def __init__(self, *a: Any) -> None: ...\n"
        "    def method(self) -> list[Any]: ...\n"
        "    def _helper(self, x: Any) -> None: ...\n"
        "class _Hidden:\n"
        "    def method(self, x: Any) -> None: ...\n"
        "def clean(x: int, y: 'str') -> 'Literal[\"Any thing\"]': ...\n",
        encoding="utf-8",
    )
    assert any_in_public_signatures(module, "module.py") == [
        "module.py:3 takes",
        "module.py:4 gives",
        "module.py:5 qualified",
        "module.py:8 __init__",
        "module.py:9 method",
    ]
