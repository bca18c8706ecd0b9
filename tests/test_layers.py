"""The package's layers only look down: no module imports from a layer above its own.

The order is the one the README's development section gives; a new top-level module or
package must be placed in it (the test fails until it is).
"""

from __future__ import annotations

import ast
from pathlib import Path

import kdegen

LAYERS = [
    ("errors", "files", "registry", "config"),  # foundations
    ("data", "kernels", "distributed", "images", "objectives"),  # primitives
    ("nets", "priors", "stats"),  # networks and distributions
    ("reversal", "codebank", "latent", "novelty", "analysis"),  # latent-space tools
    ("evaluation",),  # metrics and embeddings: judge samples, know no method
    ("methods",),  # what trains
    ("runs",),  # run directories, the training loop, start / resume / load / report
    ("experiments",),  # the seeds' tables and figures
    ("cli", "__main__"),  # the command line
]
ROOT = Path(kdegen.__file__).parent
RANK = {name: i for i, names in enumerate(LAYERS) for name in names}


def _layer_of(module: str) -> str:
    """``kdegen.runs.training`` -> ``runs``; the package itself -> ``kdegen``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "kdegen"


def _imports(path: Path) -> list[str]:
    """Every kdegen module ``path`` imports, at the top or inside functions."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("kdegen"):
            if node.module == "kdegen":
                found += [f"kdegen.{a.name}" for a in node.names]
            else:
                found.append(node.module)
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.startswith("kdegen")]
    return found


def test_every_module_has_a_layer() -> None:
    modules = {p.stem for p in ROOT.glob("*.py") if p.stem != "__init__"}
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")}
    unplaced = sorted((modules | packages) - set(RANK))
    assert not unplaced, f"place these in LAYERS (and the README's layer list): {unplaced}"


def test_no_module_imports_from_a_layer_above() -> None:
    upward = []
    for path in sorted(ROOT.rglob("*.py")):
        own = path.relative_to(ROOT).parts[0].removesuffix(".py")
        if own == "__init__":
            continue
        for module in _imports(path):
            other = _layer_of(module)
            if other in RANK and RANK[other] > RANK[own]:
                upward.append(f"{path.relative_to(ROOT)} imports {module}")
    assert not upward, "imports that look up a layer:\n" + "\n".join(upward)
