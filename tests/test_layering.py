"""The package's layering: no import cycles, steps apart from the Optic, small modules.

Read from the source with ``ast``, so the checks see every import, including those
inside functions (an import deferred to break a cycle is still a cycle).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "lensify"

# Modules allowed past 600 lines, each with the reason it stays whole.
LONG_MODULES: dict[str, str] = {}
MAX_LINES = 600


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _type_checking_only(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _imported(name: str, path: Path) -> set[str]:
    """The lensify modules that module ``name`` imports, anywhere in its body."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    skip: set[int] = set()
    tree = ast.parse(path.read_text("utf8"))
    for node in ast.walk(tree):
        if _type_checking_only(node):
            skip.update(id(n) for n in ast.walk(node))
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                full = f"{base}.{alias.name}"
                found.add(full if full in MODULES else base)
    return {m for m in found if m in MODULES and m != name}


GRAPH = {name: _imported(name, path) for name, path in MODULES.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_import_graph_is_read() -> None:
    assert "lensify._tree" in GRAPH["lensify._records"]
    assert "lensify.wrappers" in GRAPH["lensify"]


def test_cycles_are_found() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_two_modules_import_each_other() -> None:
    assert _cycles(GRAPH) == []


def test_optic_steps_know_nothing_of_the_optic() -> None:
    assert "lensify.optics._optic" not in GRAPH.get("lensify.optics._steps", set())


def test_no_module_is_over_600_lines_without_a_reason() -> None:
    long = {
        name: n
        for name, path in MODULES.items()
        if (n := len(path.read_text("utf8").splitlines())) > MAX_LINES and name not in LONG_MODULES
    }
    assert long == {}


def _private_outside(module: str, package: str) -> bool:
    """True if ``module`` is private (``lensify._x``, ``lensify.x._y``) and not part of
    ``package``, whose own private modules it may use."""
    inside = module == package or module.startswith(package + ".")
    return not inside and any(p.startswith("_") for p in module.split("."))


def test_private_modules_are_found() -> None:
    assert _private_outside("lensify._tree", "lensify.testing")
    assert _private_outside("lensify.optics._steps", "lensify.testing")
    assert not _private_outside("lensify.testing._leaves", "lensify.testing")
    assert not _private_outside("lensify.pytree", "lensify.testing")
    assert not _private_outside("lensify.optics", "lensify.testing")


def test_testing_imports_no_private_module() -> None:
    # lensify.testing is written as a user of lensify would write it: the public names
    # and the documented internal surface lensify.pytree, never a private module.
    found = {
        name: private
        for name, imported in GRAPH.items()
        if name.startswith("lensify.testing")
        and (private := sorted(m for m in imported if _private_outside(m, "lensify.testing")))
    }
    assert found == {}


def test_records_know_nothing_of_wrappers_or_optics() -> None:
    low = ["lensify._tree", "lensify._fields", "lensify._functions", "lensify._records"]
    for name in low:
        assert GRAPH[name] <= set(low), f"{name} imports {GRAPH[name] - set(low)}"


def _private_uses(name: str, path: Path) -> list[str]:
    """The private names (``_x``) module ``name`` takes from other lensify modules:
    imported by name, or read as an attribute of an imported lensify module."""
    tree = ast.parse(path.read_text("utf8"))
    modules: dict[str, str] = {}
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("lensify"):
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                if full in MODULES:
                    modules[alias.asname or alias.name] = full
                elif alias.name.startswith("_") and not alias.name.startswith("__"):
                    found.append(f"from {node.module} import {alias.name}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("lensify"):
                    modules[alias.asname or alias.name] = alias.name
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in modules
            and modules[node.value.id] != name
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
        ):
            found.append(f"{node.value.id}.{node.attr} (line {node.lineno})")
    return found


def test_private_names_are_found(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text(
        "from lensify.wrappers import _hidden, unwrap\n"
        "from lensify import _records\n"
        "_records._layout(int)\n"
        "_records.record_fields(int)\n"
    )
    assert _private_uses("lensify.m", source) == [
        "from lensify.wrappers import _hidden",
        "_records._layout (line 3)",
    ]


def test_no_module_takes_a_private_name_from_another() -> None:
    # Each module's internal API is its names without a leading underscore.
    found = {name: uses for name, path in MODULES.items() if (uses := _private_uses(name, path))}
    assert found == {}
