"""DESIGN.md: randomness comes from explicit generators; library code never reseeds the caller's global RNG.

torch modules initialise their weights from the global generator, so where a library function must
seed it (tiny random models, random-feature metric backbones) the seeding happens inside
``torch.random.fork_rng``, which restores the caller's state afterwards.
"""

from __future__ import annotations

import ast
from pathlib import Path

import jointportrait

ROOT = Path(jointportrait.__file__).resolve().parent
GLOBAL_SEEDING = {("torch", "manual_seed"), ("torch", "seed"), ("np.random", "seed"), ("numpy.random", "seed"),
                  ("random", "seed"), ("torch.cuda", "manual_seed"), ("torch.cuda", "manual_seed_all")}


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def _unscoped_global_seeding(tree: ast.AST) -> list[int]:
    """Lines of global seeding calls that are not inside ``with torch.random.fork_rng(...)``."""
    found = []

    def visit(node: ast.AST, forked: bool) -> None:
        if isinstance(node, ast.With):
            forked = forked or any(isinstance(item.context_expr, ast.Call)
                                   and _dotted(item.context_expr.func).endswith("random.fork_rng")
                                   for item in node.items)
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and not forked
                and (_dotted(node.func.value), node.func.attr) in GLOBAL_SEEDING):
            found.append(node.lineno)
        for child in ast.iter_child_nodes(node):
            visit(child, forked)

    visit(tree, False)
    return found


def test_library_code_never_reseeds_the_global_generators():
    offenders = [f"{path.relative_to(ROOT.parent)}:{line}" for path in sorted(ROOT.rglob("*.py"))
                 for line in _unscoped_global_seeding(ast.parse(path.read_text()))]
    assert not offenders, "global seeding outside torch.random.fork_rng:\n" + "\n".join(offenders)


def test_the_check_sees_unscoped_and_scoped_seeding():
    tree = ast.parse("import torch\ntorch.manual_seed(0)\nwith torch.random.fork_rng(devices=[]):\n"
                     "    torch.manual_seed(1)\nnp.random.seed(2)\ntorch.Generator().manual_seed(3)\n")
    assert _unscoped_global_seeding(tree) == [2, 5]
