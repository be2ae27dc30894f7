"""The layers only import downward: no import cycle in src/plinth, and nothing but `server/`
and `cli/` (the composition roots) imports `server/` or `cli/`.

The graph is read from the source with `ast`, not by importing it, so an import inside a
function counts as much as one at the top of a module: it still ties the two modules together,
only later. An import under `if TYPE_CHECKING:` counts too. It costs nothing at run time, but a
constructor typed against a higher layer's class is still that layer reaching up (the way out
is a small Protocol, a port, declared by the layer that needs it). `from a import b` is an edge
to the module `a.b` when that is a module, else to `a`; an edge to a package is an edge to its
`__init__.py` only (not to every module of the package).

See ARCHITECTURE.md for the layers and how to add things without reaching up.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
COMPOSITION = {"server", "cli"}


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in sorted((SRC / "plinth").rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imported(module: str, path: Path, modules: dict[str, Path]) -> Iterator[str]:
    """Every plinth module that `module` imports, anywhere in its source."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package
                for _ in range(node.level - 1):
                    anchor = anchor.rpartition(".")[0]
                base = f"{anchor}.{base}" if base else anchor
            names = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                for alias in node.names
            ]
        for name in names:
            while name and name not in modules:  # `import plinth.a.b.C`: the module part
                name = name.rpartition(".")[0]
            if name.startswith("plinth") and name != module:
                yield name


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {m: set(_imported(m, path, modules)) for m, path in modules.items()}


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
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
    return found


def test_the_graph_is_read() -> None:
    """A sanity check on the reader itself: known edges are there."""
    graph = _graph()
    assert "plinth.server.platform" in graph["plinth.server.app"]
    assert "plinth.metadata.service" in graph["plinth.server.platform"]
    assert len(graph) > 150


def test_no_import_cycles() -> None:
    cycles = _cycles(_graph())
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_only_the_composition_roots_import_server_and_cli() -> None:
    upward = sorted(
        f"{module} imports {target}"
        for module, targets in _graph().items()
        if _layer(module) not in COMPOSITION
        for target in targets
        if _layer(target) in COMPOSITION
    )
    assert not upward, "a layer reaches up into server/ or cli/:\n" + "\n".join(upward)
