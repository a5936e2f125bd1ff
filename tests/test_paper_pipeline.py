"""The paper-scale entry point (scripts/paper.py) end to end on a tiny image folder built from
shipped photos: training through image folders, the fixed evaluation subset, the paper's
protocol for T-TAME and a baseline, and the report with the published numbers beside."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from ttame_lib import load_backbone
from ttame_lib.world.paper_data import make_loader, paper_subsets, paper_transform

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("paper", ROOT / "scripts" / "paper.py")
paper = importlib.util.module_from_spec(spec)
spec.loader.exec_module(paper)


def test_one_paper_row_trains_evaluates_and_reports(imagenet_like, tmp_path, capsys):
    out = tmp_path / "paper"
    argv = [
        "--data",
        str(imagenet_like),
        "--backbone",
        "resnet18",
        "--weights",
        "none",
        "--epochs",
        "1",
        "--batch-size",
        "4",
        "--eval-images",
        "4",
        "--val-images",
        "2",
        "--baselines",
        "gradcam",
        "--workers",
        "0",
        "--device",
        "cpu",
        "--out",
        str(out),
        "--no-progress",
        "--check",
        "decode",
    ]
    assert paper.main(argv) == 0
    report = json.loads((out / "resnet18.json").read_text())
    assert report["evaluation_images"] == 4 and report["weights"] is None
    assert [r["method"] for r in report["rows"]] == ["ttame", "gradcam"]
    for row in report["rows"]:
        for key, _ in paper.COLUMNS:
            assert 0 <= row[key] <= 100 and row[f"{key}_lo"] <= row[key] <= row[f"{key}_hi"]
        assert "pointing_game" not in row  # no masks on ImageNet: faithfulness only
    assert len(report["history"]) == 1 and "val_loss" in report["history"][0]
    table = (out / "resnet18.md").read_text()
    assert "| ttame |" in table and "| gradcam |" in table
    # A rerun reuses the finished explainer and only evaluates, with the same numbers.
    capsys.readouterr()
    assert paper.main(argv) == 0
    assert "using the trained explainer" in capsys.readouterr().out
    again = json.loads((out / "resnet18.json").read_text())
    assert again["rows"][0]["AD(15%)"] == pytest.approx(report["rows"][0]["AD(15%)"], abs=1e-6)


def test_the_published_row_is_printed_for_the_papers_backbones():
    args = paper.parse_args(["--data", "x", "--backbone", "vgg16"])
    table = paper.markdown(args, load_backbone("resnet18", num_classes=3), [], 2000)
    assert "| T-TAME (paper) | – | – | 73.29 | – | – | 5.60 | 17.74 | – |" in table


def test_subsets_are_disjoint_reproducible_and_checked():
    class Sized:
        def __len__(self):
            return 50

    a, b = paper_subsets(Sized(), 10, 20, seed=3), paper_subsets(Sized(), 10, 20, seed=3)
    assert a == b and not set(a.evaluation) & set(a.validation) and len(a.evaluation) == 10
    assert paper_subsets(Sized(), 10, 20, seed=4) != a
    with pytest.raises(ValueError, match="do not fit in a folder of 50"):
        paper_subsets(Sized(), 40, 20)


def test_paper_preprocessing_per_family(small_vit, small_cnn):
    image = Image.new("RGB", (300, 200), (200, 100, 50))
    cnn = paper_transform(small_cnn, train=True)(image)
    assert cnn.shape == (3, 224, 224) and torch.equal(cnn, paper_transform(small_cnn, train=False)(image))
    torch.manual_seed(0)
    vit_train = paper_transform(small_vit, train=True)  # random resized crop + flip
    assert vit_train(image).shape == (3, *small_vit.input_size)
    loader = make_loader([torch.zeros(3)] * 6, 2, shuffle=True, workers=0)
    assert len(loader) == 3 and not loader.pin_memory or torch.cuda.is_available()


def _train(folder, out, *, processes: int, batch_size: int, extra=()):
    """scripts/paper.py --stage train, in one process or under torchrun with the gloo backend (CPU)."""
    args = [
        "--data",
        str(folder),
        "--backbone",
        "scenes_cnn",
        "--weights",
        "DEFAULT",
        "--epochs",
        "2",
        "--batch-size",
        str(batch_size),
        "--val-images",
        "0",
        "--eval-images",
        "2",
        "--regularize",
        "own",
        "--workers",
        "0",
        "--device",
        "cpu",
        "--stage",
        "train",
        "--out",
        str(out),
        "--no-progress",
        *extra,
    ]
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
    command = [*(launcher if processes > 1 else [sys.executable]), str(ROOT / "scripts" / "paper.py"), *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)


def _weights(out):
    return torch.load(out / "scenes_cnn.ttame", weights_only=True)


def test_torchrun_on_two_processes_trains_what_one_process_trains_and_resumes(imagenet_like, tmp_path):
    single = _train(imagenet_like, tmp_path / "one", processes=1, batch_size=4)
    assert single.returncode == 0, single.stderr[-2000:]
    double = _train(imagenet_like, tmp_path / "two", processes=2, batch_size=2)  # the same global batch of 4
    assert double.returncode == 0, double.stderr[-2000:]
    assert "on 2 process(es)" in double.stdout
    one, two = _weights(tmp_path / "one"), _weights(tmp_path / "two")
    for key, value in one["attention"].items():
        assert torch.allclose(value.float(), two["attention"][key].float(), atol=1e-5, rtol=1e-4), key
    assert torch.equal(one["target_counts"], two["target_counts"])  # counts summed over the processes
    assert one["history"][-1]["loss"] == pytest.approx(two["history"][-1]["loss"], rel=1e-4)

    # Killed right after epoch 1's checkpoint, then started again: the same weights as the run above.
    killed = _train(imagenet_like, tmp_path / "killed", processes=2, batch_size=2, extra=["--stop-after-epoch", "1"])
    assert killed.returncode != 0 and not (tmp_path / "killed" / "scenes_cnn.ttame").exists()
    resumed = _train(imagenet_like, tmp_path / "killed", processes=2, batch_size=2)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    again = _weights(tmp_path / "killed")
    for key, value in two["attention"].items():
        assert torch.allclose(value.float(), again["attention"][key].float(), atol=1e-6), key
