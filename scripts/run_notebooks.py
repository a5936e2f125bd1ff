"""Execute the tutorial notebooks in order with papermill.

    python scripts/run_notebooks.py                  # all notebooks -> outputs/notebooks/
    python scripts/run_notebooks.py 01 -p device cuda  # only those whose name contains 01, with a parameter
    python scripts/run_notebooks.py --inplace        # refresh the committed notebooks' outputs

Prints one line per notebook and exits non-zero if any notebook fails.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import papermill

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("select", nargs="*", help="run only notebooks whose file name contains one of these")
    parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"))
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
    parameters = {name: parse_value(value) for name, value in args.parameter}
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
                parameters=parameters,
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
