"""The package's shape: no import cycle, layers that only depend downwards, small modules."""

from __future__ import annotations

import ast
from pathlib import Path

import ttame_lib

PACKAGE = Path(ttame_lib.__file__).resolve().parent
# Each layer may import the ones before it, never the ones after.
LAYERS = ["backbones", "method", "evaluation", "debugging", "world", "viz"]
# Modules allowed past ~300 lines, and why.
LONG_MODULES = {
    "method/training.py": "one module owns training: the loss on a batch, the shared epoch loop, resume and fit",
    "evaluation/imputation.py": "two ROAD solvers (direct and batched multigrid) behind one function",
    "evaluation/runner.py": "per-image scores, bootstrap intervals and the results table form one report",
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """ttame_lib modules imported at module level (imports inside functions and TYPE_CHECKING are lazy)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("ttame_lib"):
                continue
            for alias in node.names:
                candidate = f"{target}.{alias.name}"
                found.add(
                    candidate
                    if (PACKAGE.parent / candidate.replace(".", "/")).exists()
                    or (PACKAGE.parent / (candidate.replace(".", "/") + ".py")).exists()
                    else target
                )
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("ttame_lib")}
    return found


def graph() -> dict[str, set[str]]:
    return {module_name(path): imports_of(path) for path in PACKAGE.rglob("*.py")}


def test_there_is_no_import_cycle():
    edges = graph()
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                cycle = trail[trail.index(nxt) :] if nxt in trail else trail
                raise AssertionError(f"import cycle: {' -> '.join([*cycle, nxt])}")
            if nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])


def test_layers_only_import_downwards():
    wrong = []
    for module, targets in graph().items():
        parts = module.split(".")
        if len(parts) < 2 or parts[1] not in LAYERS:
            continue
        rank = LAYERS.index(parts[1])
        for target in targets:
            other = target.split(".")
            if len(other) > 1 and other[1] in LAYERS and LAYERS.index(other[1]) > rank:
                wrong.append(f"{module} imports {target}")
    assert not wrong, "a layer imports a later one:\n" + "\n".join(wrong)


def test_modules_stay_small_or_say_why():
    long = {}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE).as_posix()
        lines = len(path.read_text().splitlines())
        if lines > 320 and rel not in LONG_MODULES:
            long[rel] = lines
    assert not long, f"modules over ~300 lines without a stated reason (add one to LONG_MODULES or split): {long}"


def test_the_public_api_is_where_users_import_it_from():
    for name in ("load_backbone", "Backbone", "TTAME", "make_explainer", "EXPLAINERS", "Explainer", "LossWeights"):
        assert name in ttame_lib.__all__ and hasattr(ttame_lib, name)
    assert callable(ttame_lib.Backbone.from_model)
