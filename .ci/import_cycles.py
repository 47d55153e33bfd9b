"""Print the import cycles between leadflow's packages; exit 1 if there is one.

A package is events/ or one services/<name>/ folder. Every import counts, wherever it is
written (module top, inside a function, under TYPE_CHECKING): each is a dependency a reader
and a refactoring must follow. Usage: python .ci/import_cycles.py [--graph]
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def package_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] == "events":
        return "events"
    if parts[0] == "services" and len(parts) > 1:
        return f"services.{parts[1]}"
    return None


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> list[tuple[str, int]]:
    """(absolute module imported, line) for every import in the file."""
    here = module_name(path)
    is_package = path.name == "__init__.py"
    found: list[tuple[str, int]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here.split(".")
                base = base if is_package else base[:-1]
                base = base[:len(base) - (node.level - 1)]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            found.append((module, node.lineno))
            # `from services import clock` names a package, not a module of `services`
            found += [(f"{module}.{alias.name}", node.lineno) for alias in node.names]
    return found


def edges() -> dict[tuple[str, str], list[str]]:
    """(from package, to package) -> where, as 'file:line'."""
    found: dict[tuple[str, str], list[str]] = defaultdict(list)
    for folder in ("events", "services"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            source = package_of(module_name(path))
            for module, line in imports_of(path):
                target = package_of(module)
                if source and target and target != source:
                    where = f"{path.relative_to(ROOT)}:{line}"
                    if where not in found[(source, target)]:
                        found[(source, target)].append(where)
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one package (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
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
            visit(node)
    return found


def main(argv: list[str]) -> int:
    found = edges()
    graph: dict[str, set[str]] = defaultdict(set)
    for source, target in found:
        graph[source].add(target)
    if "--graph" in argv:
        for source in sorted(graph):
            print(f"{source} -> {', '.join(sorted(graph[source]))}")
    bad = cycles(graph)
    for component in bad:
        print(f"import cycle between {', '.join(component)}:")
        for (source, target), places in sorted(found.items()):
            if source in component and target in component:
                print(f"  {source} -> {target}: {', '.join(places[:3])}"
                      + (f" (+{len(places) - 3} more)" if len(places) > 3 else ""))
    if not bad:
        packages = set(graph) | {t for targets in graph.values() for t in targets}
        print(f"no import cycle between the {len(packages)} packages")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
