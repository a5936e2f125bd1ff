"""The training and validation scripts run end to end on the offline world (tiny sizes)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str) -> str:
    done = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_train_on_photos_and_scenes_then_validate(tmp_path):
    out = tmp_path / "mixed.ttame"
    _run(
        "scripts/train_explainer.py", "scenes_cnn", "--size", "64", "--data", "photos+scenes",
        "--scene-share", "0.5", "--train-images", "16", "--epochs", "1", "--batch-size", "8",
        "--test-scenes", "4", "--out", str(out), "--keep-epochs",
    )  # fmt: skip
    report = json.loads(out.with_suffix(".json").read_text())
    assert report["data"] == "photos+scenes" and report["scene_share"] == 0.5
    assert report["class_coverage"]["targets"] == 16
    assert not out.with_suffix(".run").exists()  # the resumable run file is removed once saved
    assert (tmp_path / "mixed.epoch1.ttame").exists()  # --keep-epochs
    printed = _run(
        "scripts/validate_explainers.py", "scenes_cnn", str(out), "gradcam:layer2", "centre", "--scenes", "6"
    )
    rows = [line for line in printed.splitlines() if line.startswith("  ")]
    assert [row.split(":")[0].strip() for row in rows] == [str(out), "gradcam", "centre"]
    assert all("PG " in row and "AD(15%)" in row for row in rows)


def test_validation_refuses_the_benchmark_seed():
    done = subprocess.run(
        [sys.executable, "scripts/validate_explainers.py", "scenes_cnn", "centre", "--seed", "0"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 2 and "benchmark's own scenes" in done.stderr


def test_benchmark_compares_each_method_with_ttame_scene_by_scene(tmp_path):
    _run(
        "benchmarks/evaluate.py", "--backbones", "scenes_cnn", "--methods", "ttame", "gradcam", "centre",
        "--scenes", "8", "--val-scenes", "4", "--resamples", "50", "--road-images", "0", "--out", str(tmp_path),
    )  # fmt: skip
    rows = {r["method"]: r for r in json.loads((tmp_path / "evaluation.json").read_text())["results"]}
    assert "minus_ttame" not in rows["ttame"]
    for method in ("gradcam", "centre"):
        for key in ("AD(15%)", "pointing_game"):
            mean, low, high = rows[method]["minus_ttame"][key]
            assert low <= mean <= high
            assert mean == pytest.approx(rows[method][key] - rows["ttame"][key], abs=1e-2)  # mean of differences
    assert "Each method minus T-TAME on the same scenes" in (tmp_path / "evaluation.md").read_text()
