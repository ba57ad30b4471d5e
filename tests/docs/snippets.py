"""Extract the fenced code blocks of README.md and docs/**/*.md, and what a test needs to know about each.

A Python block may opt out of being run with an HTML comment on the line right before its fence::

    <!-- snippet: skip (why it cannot run) -->

The reason in brackets is required.
"""

from __future__ import annotations

import ast
import builtins
import re
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: Markdown files whose Python snippets must run.
DOC_FILES = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])
PYTHON_LANGS = {"python", "py", "python3"}

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})\s*(?P<lang>[\w+-]*)[^\n]*$")
_MARKER = re.compile(r"^\s*<!--\s*snippet:\s*(?P<verb>[\w-]+)\s*(?:\((?P<reason>[^)]*)\))?\s*-->\s*$")


@dataclass(frozen=True)
class Snippet:
    """One fenced code block of a Markdown file."""

    path: Path
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    marker: str | None = None  # the verb of a `<!-- snippet: ... -->` comment right before the fence
    marker_reason: str | None = None

    @property
    def id(self) -> str:
        """A short test id: the file relative to the repository and the fence's line."""
        return f"{self.path.relative_to(ROOT)}:{self.line}"

    @property
    def skip_reason(self) -> str | None:
        """The reason given by a skip marker, or ``None`` when the snippet must run."""
        return (self.marker_reason or "").strip() if self.marker == "skip" else None


def extract(path: Path) -> list[Snippet]:
    """Return every fenced code block of ``path``, dedented by its fence's indentation."""
    lines = path.read_text(encoding="utf-8").splitlines()
    snippets: list[Snippet] = []
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        indent, fence, lang = match["indent"], match["fence"], match["lang"].lower()
        body: list[str] = []
        j = i + 1
        while j < len(lines) and not lines[j].strip().startswith(fence):
            line = lines[j]
            body.append(line[len(indent) :] if line.startswith(indent) else line.lstrip())
            j += 1
        marker = reason = None
        k = i - 1
        while k >= 0 and not lines[k].strip():
            k -= 1
        if k >= 0 and (found := _MARKER.match(lines[k])):
            marker, reason = found["verb"], found["reason"]
        snippets.append(Snippet(path, i + 1, lang, "\n".join(body) + "\n", marker, reason))
        i = j + 1
    return snippets


def stray_markers(path: Path) -> list[int]:
    """Return the lines of snippet markers in ``path`` that are not right before a fence."""
    lines = path.read_text(encoding="utf-8").splitlines()
    stray = []
    for number, line in enumerate(lines):
        if not _MARKER.match(line):
            continue
        nxt = number + 1
        while nxt < len(lines) and not lines[nxt].strip():
            nxt += 1
        if nxt >= len(lines) or not _FENCE.match(lines[nxt]):
            stray.append(number + 1)
    return stray


def python_snippets() -> list[Snippet]:
    """Return every Python block of the documentation files, in file order."""
    return [s for path in DOC_FILES for s in extract(path) if s.lang in PYTHON_LANGS]


@dataclass
class Shape:
    """What a snippet's source says about itself (found with :mod:`ast`, before it runs)."""

    defines_dag: bool = False
    test_functions: list[str] = field(default_factory=list)
    free_names: set[str] = field(default_factory=set)
    task_ids: set[str] = field(default_factory=set)  # literal task_id="..." of calls outside functions
    edges: list[tuple[ast.expr, ast.expr]] = field(default_factory=list)  # (upstream, downstream) from >> / <<


class _Scanner(ast.NodeVisitor):
    def __init__(self, shape: Shape) -> None:
        self.shape = shape
        self.bound: set[str] = set()
        self.loaded: set[str] = set()
        self.depth = 0  # inside a function or class body

    def visit_Name(self, node: ast.Name) -> None:
        (self.loaded if isinstance(node.ctx, ast.Load) else self.bound).add(node.id)

    def visit_Import(self, node: ast.Import | ast.ImportFrom) -> None:
        for alias in node.names:
            self.bound.add((alias.asname or alias.name).split(".")[0])

    visit_ImportFrom = visit_Import

    def _scope(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> None:
        self.bound.add(node.name)
        if self.depth == 0 and node.name.startswith("test_") and not isinstance(node, ast.ClassDef):
            self.shape.test_functions.append(node.name)
        for decorator in node.decorator_list:
            target = decorator.func if isinstance(decorator, ast.Call) else decorator
            if isinstance(target, ast.Name) and target.id == "dag":
                self.shape.defines_dag = True
            self.visit(decorator)
        if not isinstance(node, ast.ClassDef):
            for arg in [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs]:
                self.bound.add(arg.arg)
            for extra in (node.args.vararg, node.args.kwarg):
                if extra:
                    self.bound.add(extra.arg)
        self.depth += 1
        for child in node.body:
            self.visit(child)
        self.depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _scope

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
        if name == "DAG":
            self.shape.defines_dag = True
        if self.depth == 0:
            for keyword in node.keywords:
                if keyword.arg == "task_id" and isinstance(keyword.value, ast.Constant):
                    self.shape.task_ids.add(str(keyword.value.value))
        self.generic_visit(node)

    def visit_BinOp(self, node: ast.BinOp) -> None:
        if self.depth == 0 and isinstance(node.op, ast.RShift | ast.LShift):
            left = _result_of(node.left)
            pair = (left, node.right) if isinstance(node.op, ast.RShift) else (node.right, left)
            self.shape.edges.append(pair)
        self.generic_visit(node)

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.name:
            self.bound.add(node.name)
        self.generic_visit(node)


def _result_of(node: ast.expr) -> ast.expr:
    """``a >> b`` evaluates to ``b``: the operand a chained ``>>`` continues from."""
    while isinstance(node, ast.BinOp) and isinstance(node.op, ast.RShift | ast.LShift):
        node = node.right
    return node


def shape_of(code: str) -> Shape:
    """Scan a snippet's source: does it build a DAG, define tests, use names it does not define?"""
    shape = Shape()
    scanner = _Scanner(shape)
    scanner.visit(ast.parse(code))
    shape.free_names = scanner.loaded - scanner.bound - set(dir(builtins))
    return shape
