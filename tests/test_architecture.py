"""The import graph against ARCHITECTURE.md: every import allowed by its table, no cycles.

Imports are read with `ast` from the source (lazy and TYPE_CHECKING ones included), so a
dependency hidden inside a function counts as much as one at the top.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict, deque
from functools import lru_cache
from itertools import pairwise
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PARTS = ("device_agent", "models", "orchestrator", "dashboard")
_ROW = re.compile(r"^\| `([^`]+)` \| (.*) \|$")
_NAME = re.compile(r"`([^`]+)`")


def allowed_imports() -> dict[str, set[str]]:
    """ARCHITECTURE.md's table: unit → the units it may import (`orchestrator/cli/`: any)."""
    text = (REPO / "ARCHITECTURE.md").read_text()
    rules: dict[str, set[str]] = {}
    for line in text.splitlines():
        m = _ROW.match(line)
        if m and m.group(1) != "unit":
            rules[m.group(1)] = set(_NAME.findall(m.group(2)))
    return rules


def unit_of(module: str, root: Path = REPO) -> str | None:
    """`orchestrator.links.adb` → `orchestrator/links/`; `orchestrator.spec` →
    `orchestrator/spec.py`; `models.build` → `models/`; None outside the repository."""
    parts = module.split(".")
    if parts[0] not in PARTS:
        return None
    if parts[0] != "orchestrator":
        return parts[0] + "/"
    if len(parts) == 1:
        return "orchestrator/__init__.py"
    if (root / "orchestrator" / parts[1]).is_dir():
        return f"orchestrator/{parts[1]}/"
    return f"orchestrator/{parts[1]}.py"


def module_name(path: Path, root: Path = REPO) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, root: Path = REPO) -> list[tuple[int, str]]:
    """(line, module) of every import in the file; `from pkg import sub` names pkg.sub when
    sub is a module, and relative imports are made absolute."""
    me = module_name(path, root)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*up, *([base] if base else [])])
            for a in node.names:
                sub = f"{base}.{a.name}"
                file = root / Path(*sub.split("."))
                is_module = file.is_dir() or file.with_suffix(".py").is_file()
                found.append((node.lineno, sub if is_module else base))
    return found


@lru_cache(maxsize=4)
def edges(root: Path = REPO) -> dict[tuple[str, str], list[str]]:
    """(unit, imported unit) → where ("path:line"), for imports between different units."""
    out: dict[tuple[str, str], list[str]] = defaultdict(list)
    for part in PARTS:
        for path in sorted((root / part).rglob("*.py")):
            here = unit_of(module_name(path, root), root)
            assert here is not None
            for line, module in imported_modules(path, root):
                there = unit_of(module, root)
                if there is not None and there != here:
                    out[(here, there)].append(f"{path.relative_to(root)}:{line}")
    return out


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one unit (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def shortest_cycle(graph: dict[str, set[str]], component: list[str]) -> list[str]:
    """The shortest cycle through a component's units, first unit repeated at the end."""
    best: list[str] = []
    for start in component:
        came: dict[str, str] = {}
        queue = deque([start])
        while queue:
            v = queue.popleft()
            if start in graph.get(v, ()):
                path = [v]
                while path[-1] != start:
                    path.append(came[path[-1]])
                cycle = [*reversed(path), start]
                if not best or len(cycle) < len(best):
                    best = cycle
                break
            for w in sorted(graph.get(v, ())):
                if w in component and w not in came and w != start:
                    came[w] = v
                    queue.append(w)
    return best


def test_every_unit_has_a_row_in_the_table():
    """A new package or top-level module needs its line in ARCHITECTURE.md first."""
    rules = allowed_imports()
    units = {unit_of(module_name(p)) for part in PARTS for p in (REPO / part).rglob("*.py")}
    units.discard("orchestrator/__init__.py")

    assert sorted(units - set(rules)) == []
    assert sorted(set(rules) - units) == []


@pytest.mark.parametrize("unit", sorted(allowed_imports()))
def test_imports_are_the_ones_the_table_allows(unit):
    """Each unit imports only what its row allows (models/ and device_agent/ no host code)."""
    rules = allowed_imports()
    allowed = set(rules) if unit == "orchestrator/cli/" else rules[unit]

    wrong = {f"{there} ({', '.join(where[:3])})"
             for (here, there), where in edges().items()
             if here == unit and there not in allowed}

    assert sorted(wrong) == []


def test_no_import_cycle_between_units():
    """No two units import each other, directly or through others."""
    graph: dict[str, set[str]] = defaultdict(set)
    for here, there in edges():
        graph[here].add(there)

    found = cycles(graph)

    shown = []
    for component in found:
        cycle = shortest_cycle(graph, component)
        shown.append(" → ".join(f"{a} ({', '.join(sorted(set(edges()[(a, b)]))[:2])})"
                                for a, b in pairwise(cycle)) + f" → {cycle[0]}")
    assert found == [], "\n".join(shown)


def test_no_import_cycle_inside_models():
    """models/' modules form no cycle either (config, build, keras_net, train_graph)."""
    graph: dict[str, set[str]] = defaultdict(set)
    for path in (REPO / "models").glob("*.py"):
        for _, module in imported_modules(path):
            if module.startswith("models.") and module != module_name(path):
                graph[module_name(path)].add(module)

    assert cycles(graph) == []


def test_a_lazy_host_import_and_a_cycle_are_caught(tmp_path):
    """On a planted tree: models/ importing host code inside a function is an edge the table
    forbids, and two packages importing each other are a cycle."""
    for name, text in {
        "models/__init__.py": "",
        "models/leak.py": "def f():\n    from orchestrator.errors import BuildError\n",
        "orchestrator/__init__.py": "",
        "orchestrator/errors.py": "",
        "orchestrator/runner/__init__.py": "from orchestrator.links import base\n",
        "orchestrator/links/__init__.py": "",
        "orchestrator/links/base.py": "from ..runner import pipeline\n",
        "orchestrator/runner/pipeline.py": "",
    }.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)

    found = edges(tmp_path)
    graph: dict[str, set[str]] = defaultdict(set)
    for here, there in found:
        graph[here].add(there)

    assert found[("models/", "orchestrator/errors.py")] == ["models/leak.py:2"]
    assert "orchestrator/errors.py" not in allowed_imports()["models/"]
    assert cycles(graph) == [["orchestrator/links/", "orchestrator/runner/"]]
