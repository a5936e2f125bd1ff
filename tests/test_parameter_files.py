"""Parameter files and strict parameter names: a name no notebook declares stops the run before
anything executes (papermill alone would warn and run with the default)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("run_notebooks", ROOT / "scripts" / "run_notebooks.py")
run_notebooks = importlib.util.module_from_spec(spec)
spec.loader.exec_module(run_notebooks)
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
FILES = sorted((ROOT / "params").glob("*.yaml"))


def _plan(path: Path) -> dict[Path, dict]:
    sections = run_notebooks.load_parameter_file(path, NOTEBOOKS)
    return {nb: run_notebooks.parameters_for(nb, sections, {}) for nb in NOTEBOOKS}


@pytest.mark.parametrize("path", FILES, ids=[f.name for f in FILES])
def test_every_name_in_a_shipped_file_is_declared_by_its_notebooks(path):
    assert run_notebooks.unknown_parameters(_plan(path)) == []


def test_the_gpu_file_has_the_cpu_files_names_and_the_cpu_file_the_defaults():
    cpu, gpu = _plan(ROOT / "params" / "cpu.yaml"), _plan(ROOT / "params" / "gpu.yaml")
    for notebook in NOTEBOOKS:
        assert set(cpu[notebook]) == set(gpu[notebook]), notebook.name
        defaults = run_notebooks.declared_parameters(notebook)
        assert {k: defaults[k] for k in cpu[notebook]} == cpu[notebook], notebook.name


def test_every_notebook_declares_a_device():
    assert all("device" in run_notebooks.declared_parameters(nb) for nb in NOTEBOOKS)


def test_an_unknown_name_stops_the_run_before_anything_executes(tmp_path, capsys):
    params = tmp_path / "typo.yaml"
    params.write_text(yaml.safe_dump({"all": {"device": "cpu"}, "03": {"epoch": 5}}))
    out = tmp_path / "out"
    code = run_notebooks.main(["--params", str(params), "--output", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and not out.exists()  # nothing executed, nothing written
    assert "03_training_attention.ipynb: unknown parameter(s) epoch; it declares: " in err
    assert "epochs" in err.split("03_training_attention.ipynb")[1]  # the names it does declare, to fix the typo
    assert code == run_notebooks.main(["02", "-p", "devise", "cuda", "--output", str(out)])
    assert "02_vit_adapter.ipynb: unknown parameter(s) devise" in capsys.readouterr().err


def test_a_section_that_matches_no_notebook_is_refused(tmp_path, capsys):
    params = tmp_path / "bad.yaml"
    params.write_text("'09':\n  device: cpu\n")
    assert run_notebooks.main(["--params", str(params), "--output", str(tmp_path / "out")]) == 2
    assert "section '09' matches no notebook" in capsys.readouterr().err


def test_sections_merge_all_then_notebook_then_command_line(tmp_path):
    sections = {"all": {"device": "cuda", "seed": 1}, "03": {"seed": 2, "epochs": 5}}
    notebook = ROOT / "notebooks" / "03_training_attention.ipynb"
    merged = run_notebooks.parameters_for(notebook, sections, {"epochs": 7})
    assert merged == {"device": "cuda", "seed": 2, "epochs": 7}
