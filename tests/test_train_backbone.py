"""scripts/train_backbone.py: distillation options, and an interrupted run resumes to identical weights."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("train_backbone", ROOT / "scripts" / "train_backbone.py")
train_backbone = importlib.util.module_from_spec(spec)
sys.modules["train_backbone"] = train_backbone  # dataclasses look their module up there
spec.loader.exec_module(train_backbone)

# Tiny settings: two epochs of 64 scenes, with logit and feature distillation from the shipped CNN.
ARGS = ["scenes_vit", "--epochs", "2", "--scenes-per-epoch", "64", "--batch-size", "32", "--eval-scenes", "8"]
ARGS += ["--teacher", "scenes_cnn", "--feature-distill", "blocks.5:layer4", "--feature-weight", "5"]


def run(monkeypatch, args: list[str]) -> None:
    monkeypatch.setattr(sys, "argv", ["train_backbone.py", *args])
    train_backbone.main()


@pytest.fixture
def one_thread():
    """Bit-identical results need the same reduction order in both runs."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_interrupted_training_resumes_to_identical_weights(monkeypatch, tmp_path, one_thread):
    straight, resumed = tmp_path / "straight_run.pth", tmp_path / "resumed_run.pth"
    run(monkeypatch, [*ARGS, "--output", str(straight)])

    real_save = train_backbone.atomic_save

    def save_then_crash(state, path):
        real_save(state, path)
        raise KeyboardInterrupt  # the user stops the run right after epoch 1 is saved

    monkeypatch.setattr(train_backbone, "atomic_save", save_then_crash)
    with pytest.raises(KeyboardInterrupt):
        run(monkeypatch, [*ARGS, "--output", str(resumed)])
    assert not resumed.exists()
    monkeypatch.setattr(train_backbone, "atomic_save", real_save)
    with pytest.raises(SystemExit):  # other options than the interrupted run: refused, with the right command
        run(monkeypatch, [*ARGS, "--lr", "0.01", "--output", str(resumed), "--resume"])
    run(monkeypatch, [*ARGS, "--output", str(resumed), "--resume"])

    a, b = torch.load(straight, weights_only=True), torch.load(resumed, weights_only=True)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    report = (resumed.with_suffix(".json")).read_text()
    assert '"feature_distill": [\n    "blocks.5:layer4"' in report and "--resume" not in report
    assert not (ROOT / "outputs" / "train_backbone" / "resumed_run.resume.pt").exists()


def test_bad_distillation_options_are_refused_with_the_reason(monkeypatch, tmp_path, capsys):
    out = ["--output", str(tmp_path / "never_written.pth")]
    with pytest.raises(SystemExit):
        run(monkeypatch, ["scenes_vit", "--feature-distill", "blocks.5:layer4", *out])
    assert "needs --teacher" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        run(monkeypatch, ["scenes_vit", "--teacher", "scenes_cnn", "--feature-distill", "blocks.5:layer9", *out])
    assert "layer9" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        run(monkeypatch, ["scenes_vit", "--resume", *out])
    assert "nothing to resume" in capsys.readouterr().err
