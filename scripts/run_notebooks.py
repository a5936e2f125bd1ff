"""Execute the tutorial notebooks in order with papermill.

    python scripts/run_notebooks.py                  # all notebooks -> outputs/notebooks/
    python scripts/run_notebooks.py 01 -p device cuda  # only those whose name contains 01, with a parameter
    python scripts/run_notebooks.py --params params/gpu.yaml  # parameters per notebook from a file
    python scripts/run_notebooks.py --inplace        # refresh the committed notebooks' outputs

A parameter file is YAML: an ``all:`` section for every notebook, and sections named by part of
a notebook's file name (``"03":``) for that notebook; ``-p`` on the command line wins over both.
Every name must be declared in the parameters cell of every notebook it is given to: papermill
itself only warns about an unknown name and runs the notebook with its default (so a typo, or
``-p device cuda`` to a notebook without ``device``, would silently run on the CPU), so here the
run stops before executing anything, naming the notebook and the parameters it does declare.

Prints one line per notebook and exits non-zero if any notebook fails.
"""

from __future__ import annotations

import argparse
import ast
import os
import sys
import time
from pathlib import Path
from typing import Any

import nbformat
import papermill
import yaml

# papermill has no front end to draw widgets: interactive views in the notebooks (the explorer)
# draw static figures instead, so the executed notebooks keep their pictures.
os.environ.setdefault("TTAME_STATIC_FIGURES", "1")

ROOT = Path(__file__).resolve().parents[1]


def parse_value(text: str):
    """Command-line parameter values: ints, floats, booleans, None, else strings."""
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False, "none": None}.get(text.lower(), text)


def declared_parameters(notebook: Path) -> dict[str, Any]:
    """Names assigned in a notebook's ``parameters`` cell, with their default values where literal.

    Read with ``ast`` rather than ``papermill.inspect_notebook``, whose line parser skips
    assignments followed by a comment containing a quote.
    """
    for cell in nbformat.read(notebook, as_version=4).cells:
        if cell.cell_type == "code" and "parameters" in cell.metadata.get("tags", []):
            declared: dict[str, Any] = {}
            for node in ast.parse(cell.source).body:
                targets = node.targets if isinstance(node, ast.Assign) else []
                for target in targets:
                    if isinstance(target, ast.Name):
                        try:
                            declared[target.id] = ast.literal_eval(node.value)
                        except ValueError:
                            declared[target.id] = ...  # not a literal: a default computed in the cell
            return declared
    return {}


def _expand(path: Path, value: Any) -> Any:
    """``${NAME}`` in a string value becomes the environment variable NAME (which must be set)."""
    if not isinstance(value, str) or "$" not in value:
        return value
    expanded = os.path.expandvars(value)
    if "$" in expanded:
        raise ValueError(f"{path}: {value!r} uses an environment variable that is not set; export it first")
    return expanded


def load_parameter_file(path: Path, notebooks: list[Path]) -> dict[str, dict[str, Any]]:
    """Sections of a YAML parameter file: ``all`` and one per notebook name fragment (checked to match one).

    String values may name environment variables, e.g. ``data: ${IMAGENET}``.
    """
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict) or not all(isinstance(v, dict) or v is None for v in data.values()):
        raise ValueError(f"{path}: expected sections of name: value pairs, e.g. 'all: {{device: cuda}}'")
    sections = {str(key): {k: _expand(path, v) for k, v in (values or {}).items()} for key, values in data.items()}
    for key in sections:
        if key != "all" and not any(key in nb.name for nb in notebooks):
            names = ", ".join(nb.name for nb in notebooks)
            raise ValueError(f"{path}: section {key!r} matches no notebook ({names})")
    return sections


def parameters_for(notebook: Path, sections: dict[str, dict[str, Any]], cli: dict[str, Any]) -> dict[str, Any]:
    """The ``all`` section, then the notebook's own sections, then the command line."""
    merged = dict(sections.get("all", {}))
    for key, values in sections.items():
        if key != "all" and key in notebook.name:
            merged.update(values)
    merged.update(cli)
    return merged


def unknown_parameters(plan: dict[Path, dict[str, Any]]) -> list[str]:
    """One message per notebook given names its parameters cell does not declare."""
    problems = []
    for notebook, parameters in plan.items():
        declared = declared_parameters(notebook)
        unknown = sorted(set(parameters) - set(declared))
        if unknown:
            problems.append(
                f"{notebook.name}: unknown parameter(s) {', '.join(unknown)}; it declares: "
                f"{', '.join(declared) or '(no parameters cell)'}"
            )
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("select", nargs="*", help="run only notebooks whose file name contains one of these")
    parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"))
    parser.add_argument("--params", type=Path, default=None, help="YAML parameter file with per-notebook sections")
    parser.add_argument("--notebooks", type=Path, default=ROOT / "notebooks")
    parser.add_argument("--output", type=Path, default=ROOT / "outputs" / "notebooks")
    parser.add_argument("--inplace", action="store_true", help="write executed notebooks back into --notebooks")
    parser.add_argument("--kernel", default=None, help="Jupyter kernel name (default: the notebook's own)")
    args = parser.parse_args(argv)

    notebooks = sorted(args.notebooks.glob("[0-9][0-9]_*.ipynb"))
    if args.select:
        notebooks = [nb for nb in notebooks if any(s in nb.name for s in args.select)]
    if not notebooks:
        print(f"no notebooks matched in {args.notebooks}", file=sys.stderr)
        return 2
    cli = {name: parse_value(value) for name, value in args.parameter}
    try:
        sections = load_parameter_file(args.params, notebooks) if args.params else {}
    except (OSError, ValueError, yaml.YAMLError) as err:
        print(f"cannot use the parameter file: {err}", file=sys.stderr)
        return 2
    plan = {notebook: parameters_for(notebook, sections, cli) for notebook in notebooks}
    problems = unknown_parameters(plan)
    if problems:
        print(
            "nothing was run: " + "\n  ".join(["parameters that no notebook cell would read:", *problems]),
            file=sys.stderr,
        )
        return 2
    out_dir = args.notebooks if args.inplace else args.output
    out_dir.mkdir(parents=True, exist_ok=True)
    failures = []
    for index, notebook in enumerate(notebooks, 1):
        target = out_dir / notebook.name
        print(f"[{index}/{len(notebooks)}] {notebook.name} ...", end=" ", flush=True)
        started = time.perf_counter()
        try:
            papermill.execute_notebook(
                str(notebook),
                str(target),
                parameters=plan[notebook],
                cwd=str(notebook.parent),
                kernel_name=args.kernel,
                progress_bar=False,
            )
        except Exception as err:  # noqa: BLE001 - report every failing notebook, then exit non-zero
            print(f"FAILED after {time.perf_counter() - started:.0f}s", flush=True)
            print(f"    {type(err).__name__}: {str(err).strip().splitlines()[-1] if str(err).strip() else ''}")
            print(f"    executed copy with the traceback: {target}")
            failures.append(notebook.name)
            continue
        shown = target.relative_to(ROOT) if target.is_relative_to(ROOT) else target
        print(f"ok in {time.perf_counter() - started:.0f}s -> {shown}", flush=True)
    if failures:
        print(f"{len(failures)} of {len(notebooks)} notebook(s) failed: {', '.join(failures)}")
        return 1
    print(f"all {len(notebooks)} notebook(s) ran")
    return 0


if __name__ == "__main__":
    sys.exit(main())
