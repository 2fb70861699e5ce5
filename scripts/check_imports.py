#!/usr/bin/env python3
"""No import cycle between the modules of src/tether, imports inside functions included.

Reads every ``.py`` file under ``src/tether`` with :mod:`ast` (nothing is imported or run),
takes every ``import``/``from ... import`` statement wherever it stands (module level,
inside a function or a method, under ``if TYPE_CHECKING:``), and builds the graph
"module A imports module B". An import names the module it reaches: ``import a.b.c`` and
``from a.b import c`` (when ``a/b/c.py`` exists) are edges to ``a.b.c``; ``from a.b import
Name`` is an edge to ``a.b``. Parent packages run on the way are not edges (as in grimp,
which import-linter uses). Then it fails, naming one cycle of each strongly connected
component, if any module can reach itself again.

Usage: python3 scripts/check_imports.py [--runtime-only] [--packages] [SRC]
  --runtime-only  leave out imports under ``if TYPE_CHECKING:``
  --packages      also print the import graph between tether's top-level packages
  SRC             the source root (default: src next to this script's folder)
Exit status: 0 without cycles, 1 with.
"""

from __future__ import annotations

import argparse
import ast
import itertools
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = "tether"


def module_files(src: Path) -> dict[str, Path]:
    """Every module under src/tether by its dotted name (a package by its ``__init__``)."""
    out: dict[str, Path] = {}
    for path in sorted((src / ROOT).rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _is_type_checking(test: ast.expr) -> bool:
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


def _imports(tree: ast.AST, runtime_only: bool) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement in the tree, at any depth."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
            continue
        if runtime_only and isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def _known(name: str, modules: dict[str, Path]) -> str | None:
    """The module ``name`` reaches: itself, or its nearest existing parent."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def _base(module: str, node: ast.ImportFrom, is_package: bool) -> str:
    """The absolute module a ``from`` import reads from (relative imports resolved)."""
    if not node.level:
        return node.module or ""
    parts = module.split(".")
    if not is_package:
        parts.pop()
    if node.level > 1:
        parts = parts[: len(parts) - (node.level - 1)]
    return ".".join([*parts, node.module] if node.module else parts)


def edges_of(
    module: str, path: Path, modules: dict[str, Path], runtime_only: bool
) -> dict[str, int]:
    """Modules of tether this module imports, each with the line of its first import."""
    tree = ast.parse(path.read_text(), str(path))
    is_package = path.name == "__init__.py"
    out: dict[str, int] = {}
    for node in _imports(tree, runtime_only):
        targets: list[str | None] = []
        if isinstance(node, ast.Import):
            targets = [_known(a.name, modules) for a in node.names]
        else:
            base = _base(module, node, is_package)
            for a in node.names:
                sub = f"{base}.{a.name}"
                targets.append(sub if sub in modules else _known(base, modules))
        for t in targets:
            if t is not None and t != module and t.split(".")[0] == ROOT:
                out.setdefault(t, node.lineno)
    return out


def strongly_connected(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Tarjan's components of more than one module (iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
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
                    comp: list[str] = []
                    while True:
                        m = stack.pop()
                        on_stack.discard(m)
                        comp.append(m)
                        if m == node:
                            break
                    if len(comp) > 1:
                        found.append(sorted(comp))
            elif child not in index:
                index[child] = low[child] = counter
                counter += 1
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph[child]))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return found


def one_cycle(graph: dict[str, dict[str, int]], comp: list[str]) -> list[str]:
    """A shortest cycle through the component's first module (breadth-first)."""
    members = set(comp)
    start = comp[0]
    prev: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt: list[str] = []
        for node in frontier:
            for child in sorted(graph[node]):
                if child not in members:
                    continue
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(prev[path[-1]])
                    return [start, *reversed(path[:-1]), start]
                if child not in prev:
                    prev[child] = node
                    nxt.append(child)
        frontier = nxt
    return comp


def package_of(module: str) -> str:
    return ".".join(module.split(".")[:2])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runtime-only", action="store_true")
    ap.add_argument("--packages", action="store_true")
    ap.add_argument("src", nargs="?", default=str(Path(__file__).resolve().parents[1] / "src"))
    args = ap.parse_args(argv)
    modules = module_files(Path(args.src))
    graph = {m: edges_of(m, p, modules, args.runtime_only) for m, p in modules.items()}
    if args.packages:
        pkg: dict[str, set[str]] = {}
        for m, targets in graph.items():
            for t in targets:
                if package_of(m) != package_of(t):
                    pkg.setdefault(package_of(m), set()).add(package_of(t))
        for p in sorted(pkg):
            print(f"{p} -> {', '.join(sorted(pkg[p]))}")
    comps = strongly_connected(graph)
    n_edges = sum(len(t) for t in graph.values())
    if not comps:
        print(f"check_imports: {len(modules)} modules, {n_edges} imports, no cycle")
        return 0
    for comp in comps:
        cycle = one_cycle(graph, comp)
        steps = " -> ".join(f"{a} (l.{graph[a][b]})" for a, b in itertools.pairwise(cycle))
        print(f"import cycle among {len(comp)} modules: {steps} -> {cycle[-1]}")
        if len(comp) > len(cycle) - 1:
            print(f"  all of them: {', '.join(comp)}")
    print(f"check_imports: {len(comps)} import cycle(s) in {args.src}/{ROOT}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
