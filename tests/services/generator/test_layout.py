"""The generator's packages: the worker, the tiny models and the benchmark import each other one way, without cycles."""

from __future__ import annotations

import ast

from support.paths import ROOT

SRC = ROOT / "services" / "generator" / "src"
PACKAGES = ("reelforge_generator", "reelforge_tiny", "reelforge_bench")


def _modules() -> dict[str, ast.Module]:
    found = {}
    for package in PACKAGES:
        for path in (SRC / package).glob("*.py"):
            name = package if path.stem == "__init__" else f"{package}.{path.stem}"
            found[name] = ast.parse(path.read_text())
    return found


def _imports(tree: ast.AST) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_no_import_cycles_and_no_imports_of_our_own_modules_inside_functions() -> None:
    modules = _modules()
    graph = {name: {m for m in _imports(tree) if m in modules and m != name} for name, tree in modules.items()}
    hidden = [
        f"{name}: {m}"
        for name, tree in modules.items()
        for fn in ast.walk(tree)
        if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef)
        for m in _imports(fn)
        if m.startswith(PACKAGES)
    ]
    assert hidden == []
    state: dict[str, int] = {}  # 1: on the path, 2: done

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for child in sorted(graph[name]):
            assert state.get(child) != 1, f"import cycle: {' -> '.join([*path, name, child])}"
            if child not in state:
                visit(child, [*path, name])
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [])

    # One way only: the worker never imports the benchmark, the tiny models never import the worker.
    def imports(package: str) -> set[str]:
        return {m for name in graph if name.startswith(package) for m in graph[name]}

    assert not any(m.startswith("reelforge_bench") for m in imports("reelforge_generator"))
    assert not any(m.startswith("reelforge_generator") for m in imports("reelforge_tiny"))
