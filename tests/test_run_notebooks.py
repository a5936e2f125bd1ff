"""The notebook runner executes notebooks in order, reports each, and fails if any fails."""

import importlib.util
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("run_notebooks", ROOT / "scripts" / "run_notebooks.py")
run_notebooks = importlib.util.module_from_spec(spec)
spec.loader.exec_module(run_notebooks)


def write_notebook(path: Path, *sources: str, parameters: str | None = None) -> None:
    cells = []
    if parameters is not None:
        cell = nbformat.v4.new_code_cell(parameters)
        cell.metadata["tags"] = ["parameters"]
        cells.append(cell)
    cells += [nbformat.v4.new_code_cell(s) for s in sources]
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


def test_runner_reports_each_notebook_and_fails_on_error(tmp_path, capsys):
    write_notebook(tmp_path / "01_ok.ipynb", "print(value * 2)", parameters="value = 1")
    write_notebook(tmp_path / "02_bad.ipynb", "raise RuntimeError('broken on purpose')", parameters="value = 0")
    out = tmp_path / "out"
    code = run_notebooks.main(["--notebooks", str(tmp_path), "--output", str(out), "-p", "value", "21"])
    printed = capsys.readouterr().out
    assert code == 1
    assert "[1/2] 01_ok.ipynb ... ok" in printed
    assert "[2/2] 02_bad.ipynb ... FAILED" in printed and "broken on purpose" in printed
    executed = nbformat.read(out / "01_ok.ipynb", as_version=4)
    assert any("42" in o.get("text", "") for c in executed.cells for o in c.get("outputs", []))


def test_selection_and_parameter_parsing(tmp_path, capsys):
    assert run_notebooks.main(["--notebooks", str(tmp_path), "nothing"]) == 2
    assert [run_notebooks.parse_value(v) for v in ("3", "0.5", "true", "None", "cuda")] == [3, 0.5, True, None, "cuda"]
