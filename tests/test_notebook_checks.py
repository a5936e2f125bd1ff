"""The tolerant notebook check: decimals within the stated tolerance pass, real changes fail."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from tests.nbval_tolerance import Tolerance, align_numbers, decimals_in, parse_tolerance

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def test_decimals_within_tolerance_are_accepted_and_others_kept():
    tol = Tolerance(abs=0.03)
    ref = "pointing game, shipped     : 0.67\nAD(15%) 45.24"
    assert align_numbers(ref, "pointing game, shipped     : 0.68\nAD(15%) 45.25", tol) == ref
    changed = "pointing game, shipped     : 0.80\nAD(15%) 45.24"
    assert align_numbers(ref, changed, tol) == changed  # left as is: the exact comparison then fails


def test_integers_text_and_names_with_digits_stay_exact():
    tol = Tolerance(abs=10.0)
    ref = "layer3.5 -> (1, 512, 28, 28) vit_b_16 blocks.2 tf_efficientnet_lite0 0.5"
    assert decimals_in(ref) == ["0.5"]
    for actual in (
        "layer3.5 -> (1, 512, 28, 29) vit_b_16 blocks.2 tf_efficientnet_lite0 0.5",  # a shape changed
        "layer3.6 -> (1, 512, 28, 28) vit_b_16 blocks.2 tf_efficientnet_lite0 0.5",  # a name changed
        "layer3.5 -> (1, 512, 28, 28) vit_b_16 blocks.2 tf_efficientnet_lite0 0.5 extra",
    ):
        assert align_numbers(ref, actual, tol) != ref


def test_relative_tolerance_and_nan():
    tol = Tolerance(rel=0.05)
    assert align_numbers("took 100.0 ms", "took 104.9 ms", tol) == "took 100.0 ms"
    assert align_numbers("took 100.0 ms", "took 106.0 ms", tol) == "took 106.0 ms"
    assert not Tolerance(abs=1.0).accepts(float("nan"), 0.0)


def test_parse_tolerance_reads_the_marker_and_rejects_typos():
    assert parse_tolerance("# NBVAL_CHECK_OUTPUT\n# NBVAL_TOLERANCE abs=0.02\nprint(1)") == Tolerance(abs=0.02)
    assert parse_tolerance("# NBVAL_TOLERANCE abs=0.1 rel=0.01") == Tolerance(abs=0.1, rel=0.01)
    assert parse_tolerance("# NBVAL_TOLERANCE abs=2.5  (one scene = 2.1 %)") == Tolerance(abs=2.5)
    assert parse_tolerance("# NBVAL_CHECK_OUTPUT\nprint(1)") is None
    with pytest.raises(ValueError, match="abs=NUMBER"):
        parse_tolerance("# NBVAL_TOLERANCE 0.02")


def _checked_cells():
    for path in NOTEBOOKS:
        for index, cell in enumerate(nbformat.read(path, as_version=4).cells):
            if cell.cell_type == "code" and "# NBVAL_CHECK_OUTPUT" in cell.source:
                yield path.name, index, cell


def _printed_text(cell) -> str:
    parts = []
    for output in cell.outputs:
        parts.append(output.get("text", ""))
        parts.extend(v for k, v in (output.get("data") or {}).items() if k.startswith("text/plain"))
    return "".join(parts)


@pytest.mark.parametrize("name", [p.name for p in NOTEBOOKS])
def test_every_checked_cell_that_prints_decimals_states_its_tolerance(name):
    missing = [
        f"{nb} cell {i}: {decimals_in(_printed_text(cell))[:4]}"
        for nb, i, cell in _checked_cells()
        if nb == name and decimals_in(_printed_text(cell)) and parse_tolerance(cell.source) is None
    ]
    assert not missing, "checked cells print decimals but state no '# NBVAL_TOLERANCE abs=...':\n" + "\n".join(missing)


def test_tolerances_only_appear_in_checked_cells():
    for path in NOTEBOOKS:
        for index, cell in enumerate(nbformat.read(path, as_version=4).cells):
            if parse_tolerance(cell.source) is not None:
                assert "# NBVAL_CHECK_OUTPUT" in cell.source, (
                    f"{path.name} cell {index}: tolerance on an unchecked cell"
                )


def _notebook(tmp_path: Path, source: str, committed_output: str) -> Path:
    cell = nbformat.v4.new_code_cell(source, execution_count=1)
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=committed_output)]
    nb = nbformat.v4.new_notebook(cells=[cell])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / "check.ipynb"
    nbformat.write(nb, path)
    return path


def _nbval(path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "tests.nbval_tolerance",
         "--nbval-lax", "--nbval-current-env", "--rootdir", str(path.parent), str(path)],
        cwd=path.parent, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


SOURCE = "# NBVAL_CHECK_OUTPUT\n# NBVAL_TOLERANCE abs=0.03\nprint(f'pointing game {0.67:.2f} over {200} scenes')"


@pytest.mark.parametrize(
    ("source", "committed", "passes"),
    [
        (SOURCE, "pointing game 0.68 over 200 scenes\n", True),  # another CPU: within the tolerance
        (SOURCE, "pointing game 0.72 over 200 scenes\n", False),  # a real change of the result
        (SOURCE, "pointing game 0.67 over 201 scenes\n", False),  # integers are exact
        (SOURCE.replace("# NBVAL_TOLERANCE abs=0.03\n", ""), "pointing game 0.68 over 200 scenes\n", False),
    ],
    ids=["drift-within-tolerance", "changed-result", "changed-integer", "no-tolerance-is-exact"],
)
def test_nbval_run_with_the_plugin(tmp_path, source, committed, passes):
    result = _nbval(_notebook(tmp_path, source, committed))
    assert (result.returncode == 0) == passes, result.stdout[-3000:] + result.stderr[-2000:]
    if not passes:
        assert "Cell outputs differ" in result.stdout


def test_committed_notebooks_parse():
    for path in NOTEBOOKS:
        json.loads(path.read_text())
