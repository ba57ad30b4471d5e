"""The package's structure: imports only point one way (no import circle) and modules stay readable.

The import graph is read from the source with :mod:`ast` (nothing is imported): every ``import`` of a module of
the package counts, at module level and inside functions alike (a function-local import is still a dependency,
only a late one); imports under ``if TYPE_CHECKING:`` are left out (they never run).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = "airflow_provider_hubcomm"
ROOT = Path(__file__).resolve().parent.parent / PACKAGE
MAX_LINES = 400


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, module: str, is_package: bool) -> set[str]:
    """Return the names imported by ``tree`` (absolute, resolved), outside ``if TYPE_CHECKING:`` blocks."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                prefix = ".".join([*base, node.module] if node.module else base)
            else:
                prefix = node.module or ""
            found.add(prefix)
            found.update(f"{prefix}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def import_graph() -> dict[str, set[str]]:
    """Return ``{module: {package modules it imports}}`` for every module of the package."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        names = _imports(ast.parse(path.read_text(encoding="utf-8")), name, path.name == "__init__.py")
        # ``from pkg.mod import name`` depends on ``pkg.mod``; a package's own ``__init__`` is not an edge.
        graph[name] = {n for n in names if n in modules and n != name and not name.startswith(f"{n}.")}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Return the strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def strongconnect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph[node]):
            if succ not in index:
                strongconnect(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            strongconnect(node)
    return found


def test_the_cycle_detector_finds_a_planted_circle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_relative_and_local_imports_are_edges_but_type_checking_ones_are_not() -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "from . import sibling\n"
        "from .other import thing\n"
        "if TYPE_CHECKING:\n"
        "    from pkg.hidden import H\n"
        "def f():\n"
        "    import pkg.late\n"
    )
    names = _imports(ast.parse(source), "pkg.mod", is_package=False)
    assert {"pkg.sibling", "pkg.other", "pkg.late"} <= names
    assert not any(n.startswith("pkg.hidden") for n in names)


def test_the_package_has_no_import_circle() -> None:
    graph = import_graph()
    assert len(graph) > 20, "the graph reader found too few modules"
    assert cycles(graph) == []


def test_the_hook_knows_nothing_of_batch_runs() -> None:
    graph = import_graph()
    hook_side = {m for m in graph if m.startswith(f"{PACKAGE}.hooks")}
    for module in hook_side:
        assert not {d for d in graph[module] if d.startswith((f"{PACKAGE}.batch", f"{PACKAGE}.sync"))}, module


def test_a_dag_file_does_not_load_the_sync_nor_duckdb() -> None:
    """DuckDB and pyarrow are imported when a run needs them, never when a DAG file is parsed."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from airflow_provider_hubcomm.operators import BatchWriteStatusesOperator\n"
        "from airflow_provider_hubcomm.sensors import BatchStatusSensor\n"
        "late = ('duckdb', 'pyarrow', 'airflow_provider_hubcomm.sync')\n"
        "print(sorted(m for m in sys.modules if m.startswith(late)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize("name", sorted(_modules()))
def test_no_module_over_400_lines(name: str) -> None:
    lines = len(_modules()[name].read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{name} has {lines} lines: split it by concept"
