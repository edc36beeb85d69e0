"""`flashsale/` has no import circles: a circle makes a module run half-initialised (or twice, as `__main__` and
under its name) depending on which side is imported first. Every import counts, at module level, under
`TYPE_CHECKING` or inside a function: an import moved into a function to dodge a circle still ties the two modules
together. The graph is read from the source with `ast`, so the check imports nothing."""

from __future__ import annotations

import ast
from pathlib import Path

from flashsale.config import PROJ_ROOT

PACKAGE = "flashsale"


def module_files(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, packages under their own name (`flashsale.http` for `flashsale/http/__init__.py`)."""
    modules = {}
    for path in sorted((root / PACKAGE).rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def imported(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package's modules that `module` imports: `from p import name` is an edge to the submodule `p.name` where
    there is one, else to `p` (a name its `__init__` defines or re-exports)."""

    def known(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str | None] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {known(alias.name) for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join([*base, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            found |= {
                known(f"{source}.{alias.name}") if f"{source}.{alias.name}" in modules else known(source)
                for alias in node.names
            }
    return {name for name in found if name and name != module and name.split(".")[0] == PACKAGE}


def import_graph(root: Path = PROJ_ROOT) -> dict[str, set[str]]:
    modules = module_files(root)
    return {module: imported(module, path, modules) for module, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each as one circle through it."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [circle_through(component, graph) for component in components]


def circle_through(component: list[str], graph: dict[str, set[str]]) -> list[str]:
    """One path from the component's first module back to itself, inside the component (breadth first)."""
    start, members = component[0], set(component)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for target in sorted(graph[node] & members):
                if target == start:
                    return [*paths[node], start]
                if target not in paths:
                    paths[target] = [*paths[node], target]
                    following.append(target)
        frontier = following
    return component


def test_the_package_has_no_import_circles():
    found = cycles(import_graph())
    assert not found, "import circles in flashsale/:\n" + "\n".join(" -> ".join(circle) for circle in found)


class TestTheCheck:
    """The check itself, on hand-made graphs and on a small package written for it."""

    def test_a_circle_is_found_and_spelled_out(self):
        graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
        assert cycles(graph) == [["a", "b", "c", "a"]]

    def test_a_tree_has_none(self):
        assert cycles({"a": {"b", "c"}, "b": {"c"}, "c": set()}) == []

    def test_imports_inside_functions_and_through_init_count(self, tmp_path: Path):
        package = tmp_path / PACKAGE / "cli"
        package.mkdir(parents=True)
        (tmp_path / PACKAGE / "__init__.py").write_text("")
        (package / "__init__.py").write_text("from flashsale.cli.main import main\n")
        (package / "main.py").write_text("def main():\n    from . import audit\n")
        (package / "audit.py").write_text("from flashsale.cli import main\nfrom flashsale import cli\n")
        graph = import_graph(tmp_path)
        assert graph["flashsale.cli.main"] == {"flashsale.cli.audit"}
        assert graph["flashsale.cli.audit"] == {"flashsale.cli.main", "flashsale.cli"}
        assert cycles(graph) == [["flashsale.cli", "flashsale.cli.main", "flashsale.cli.audit", "flashsale.cli"]]
