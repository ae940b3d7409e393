"""The import graph of course_lib has no circle.

Every module is parsed with ``ast`` (nothing is imported), and every import of another
course_lib module counts, at module level or inside a function: an import deferred into a
function still makes the two modules depend on each other. Leaf modules (``files``,
``config``) carry what several others need, so that no two modules need each other.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "course_lib"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, name: str, modules: set[str]) -> dict[str, int]:
    """The course_lib modules ``path`` imports (absolute or relative, anywhere in the file),
    each with the line of its first import. ``from pkg import sub`` counts as importing
    ``pkg.sub`` when that is a module, else ``pkg``."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: dict[str, int] = {}
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            targets = [f"{module}.{a.name}" if f"{module}.{a.name}" in modules else module
                       for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:    # `import course_lib.x.y` of a name
                target = target.rpartition(".")[0]
            if target and target != name:
                found.setdefault(target, node.lineno)
    return found


def import_graph() -> dict[str, dict[str, int]]:
    """module -> {imported module: line}, for every module of course_lib.

    An import of a package that contains the module (``from course_lib.exercises import
    Case`` in ``course_lib/exercises/ch1.py``) is left out: Python runs a package's
    ``__init__`` before any module in it, whatever the module imports, so that edge is the
    folder layout, not a choice. ``test_no_package_imports_back_at_module_level`` checks
    the case where it would matter."""
    paths = {module_name(p): p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts}
    graph = {}
    for name, path in paths.items():
        edges = imports_of(path, name, set(paths))
        graph[name] = {m: line for m, line in edges.items()
                       if not name.startswith(m + ".")}
    return graph


def find_cycle(graph: dict[str, dict[str, int]]) -> list[str] | None:
    """A list of modules [a, b, ..., a] that import one another in a circle, or None."""
    state: dict[str, int] = {}            # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, {})):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def describe(cycle: list[str], graph: dict[str, dict[str, int]]) -> str:
    return " -> ".join(f"{a} (line {graph[a][b]})" for a, b in zip(cycle, cycle[1:])) \
        + f" -> {cycle[-1]}"


def test_the_import_graph_of_course_lib_has_no_cycle():
    graph = import_graph()
    assert len(graph) > 30 and "course_lib.files" in graph
    cycle = find_cycle(graph)
    assert cycle is None, "course_lib modules import each other in a circle: " + \
        describe(cycle, graph)


def test_the_file_helpers_and_the_config_are_leaves():
    graph = import_graph()
    assert graph["course_lib.files"] == {} and graph["course_lib.config"] == {}
    for name in ("course_lib.checkpoint", "course_lib.tokenizer", "course_lib.rag.store"):
        assert "course_lib.models" not in graph[name] and "course_lib.files" in graph[name]
    assert "course_lib.models" not in graph["course_lib.plots.parallel"] and \
        "course_lib.distributed" not in graph["course_lib.plots.parallel"]


def test_no_package_imports_back_at_module_level():
    # A package whose __init__ imports a submodule at module level, while that submodule
    # imports names from the package, breaks when either is imported first. (A registry that
    # loads its submodules inside a function, as course_lib.exercises does, is fine.)
    paths = {module_name(p): p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts}
    modules = set(paths)
    for package, init in paths.items():
        if init.name != "__init__.py":
            continue
        top = ast.Module(body=ast.parse(init.read_text(encoding="utf-8")).body,
                         type_ignores=[])
        at_top = set()
        for node in top.body:
            if isinstance(node, ast.ImportFrom) and not node.level and node.module:
                at_top |= {f"{node.module}.{a.name}" for a in node.names} | {node.module}
            elif isinstance(node, ast.ImportFrom) and node.level == 1:
                at_top |= {f"{package}.{node.module or a.name}" for a in node.names}
            elif isinstance(node, ast.Import):
                at_top |= {a.name for a in node.names}
        for sub in sorted(m for m in at_top & modules if m.startswith(package + ".")):
            assert package not in imports_of(paths[sub], sub, modules), \
                f"{package} imports {sub} at module level, and {sub} imports {package}"


@pytest.mark.parametrize("source, expected", [
    ({"a": {"b": 1}, "b": {"c": 2}, "c": {"a": 3}}, ["a", "b", "c", "a"]),
    ({"a": {"b": 1}, "b": {"c": 2}, "c": {}}, None),
    ({"a": {"a2": 1}, "a2": {}, "b": {"b": 4}}, ["b", "b"]),
])
def test_find_cycle_names_the_circle(source, expected):
    assert find_cycle(source) == expected
