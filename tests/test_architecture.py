"""The import structure of the package (docs/ARCHITECTURE.md): layers only import downward, no cycles.

Every ``import`` of the package counts, at module level or inside a function. The layer
order below is the documented one; a new module must be placed in it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import jointportrait

ROOT = Path(jointportrait.__file__).resolve().parent
PACKAGE = "jointportrait"

# Bottom to top. A module may import modules of its own layer or of a lower one.
LAYERS: list[tuple[str, ...]] = [
    ("errors",),
    ("depth_codec", "alignment", "io", "model_files", "geometry", "appearance"),
    ("render", "face_models", "latent_codec", "conditioning", "faces"),
    ("data", "models"),
    ("objective", "pipelines"),
    ("loading", "applications", "evaluation", "tracking"),
    ("training",),
    ("demo", "serve", "reproduce"),
    ("cli",),
]


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in ROOT.rglob("*.py")}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The package's modules that ``name`` imports (``from a import b`` -> ``a.b`` when that is a module)."""
    tree = ast.parse(path.read_text())
    is_package = path.name == "__init__.py"
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")[: len(name.split(".")) - node.level + (1 if is_package else 0)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            targets = [f"{module}.{a.name}" if f"{module}.{a.name}" in known else module for a in node.names]
        else:
            continue
        out |= {t for t in targets if t == PACKAGE or t.startswith(PACKAGE + ".")}
    return out & known


def _layer(name: str) -> int:
    """Layer index of a module (its first component under the package); the package root is on top."""
    if name == PACKAGE:
        return len(LAYERS)
    head = name.split(".")[1].removesuffix(".py")
    for i, layer in enumerate(LAYERS):
        if head in layer:
            return i
    raise AssertionError(f"{name} is in no layer: add it to LAYERS and to docs/ARCHITECTURE.md")


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(name, path, known) - {name} for name, path in modules.items()}


def test_every_module_has_a_layer():
    for name in _modules():
        _layer(name)


def test_no_module_imports_from_a_higher_layer():
    upward = sorted(f"{a} -> {b}" for a, targets in _graph().items() for b in targets
                    if _layer(b) > _layer(a))
    assert not upward, "imports that run up the layers:\n" + "\n".join(upward)


def test_no_two_modules_import_each_other():
    graph = _graph()
    # package __init__ files only re-export their own submodules: an edge into a package from inside it
    # is not a cycle of the design
    def edges(a: str) -> set[str]:
        return {b for b in graph[a] if not (a.startswith(b + ".") and b in graph and
                                            Path(_modules()[b]).name == "__init__.py")}

    index, low, stack, on_stack, cycles = {}, {}, [], set(), []
    counter = [0]

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in edges(v):
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
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert not cycles, "modules that import each other:\n" + "\n".join(" <-> ".join(c) for c in cycles)
