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
def test_every_name_in_a_shipped_file_is_declared_by_its_notebooks(path, monkeypatch):
    monkeypatch.setenv("IMAGENET", "/data/imagenet")  # params/imagenet-gpu.yaml reads it
    assert run_notebooks.unknown_parameters(_plan(path)) == []


def test_an_unset_environment_variable_in_a_parameter_file_stops_the_run(tmp_path, monkeypatch):
    monkeypatch.delenv("IMAGENET", raising=False)
    with pytest.raises(ValueError, match=r"imagenet-gpu.yaml: '\$\{IMAGENET\}' uses an environment variable"):
        _plan(ROOT / "params" / "imagenet-gpu.yaml")


# CPU-sized values for every size in params/imagenet-gpu.yaml: the same names, a tiny folder, random weights.
TINY = {
    "03": {"cnn_name": "resnet18", "cnn_weights": None, "vit_name": "vit_tiny_patch16_224", "vit_weights": None,
           "train_images": 12, "test_images": 6, "epochs": 1, "batch_size": 4, "ablation_images": 8,
           "ablation_epochs": 1},
    "04": {"backbone_name": "scenes_cnn", "weights": "DEFAULT", "checkpoint": None, "n_images": 4, "n_val_images": 2,
           "methods": ["ttame", "gradcam", "rise", "centre"], "rise_masks": 20},
}  # fmt: skip


def test_the_imagenet_file_runs_notebooks_03_and_04_on_an_image_folder(imagenet_like, tmp_path, monkeypatch):
    monkeypatch.setenv("IMAGENET", str(imagenet_like))
    shipped = yaml.safe_load((ROOT / "params" / "imagenet-gpu.yaml").read_text())
    swapped = {"all": {"device": "cpu"}}
    for section, values in TINY.items():
        assert set(values) | {"data"} == set(shipped[section]), section  # only values change, never names
        swapped[section] = {**values, "data": shipped[section]["data"]}
    params = tmp_path / "tiny.yaml"
    params.write_text(yaml.safe_dump(swapped))
    out = tmp_path / "out"
    assert run_notebooks.main(["--params", str(params), "03", "04", "--output", str(out)]) == 0
    text = {nb.name[:2]: nb.read_text() for nb in out.glob("*.ipynb")}
    assert f"evaluation images of {imagenet_like}" in text["03"] and "AD(15 %)" in text["03"]
    assert "no object masks in an image folder" in text["04"]
    assert "pointing game" not in text["04"].split("| method")[1][:300]  # the results table has no localisation


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
