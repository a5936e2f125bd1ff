"""Train a small classifier from scratch on composite scenes (the offline world's own backbones).

    python scripts/train_backbone.py scenes_cnn --epochs 40 --lr 3e-3
    python scripts/train_backbone.py scenes_vit --epochs 30 --lr 1e-3 --teacher scenes_cnn \
        --feature-distill blocks.2:layer2 blocks.4:layer3 blocks.5:layer4 --feature-weight 50

Each epoch draws fresh compositions (the scene seed changes per epoch), so the network sees
new placements and backgrounds every time and can only overfit to the object instances. The
weights and a JSON report (accuracy on held-out compositions with unseen backgrounds, and on
held-out object instances) go to data/backbones/ (or --output). The state after every epoch
is saved atomically under outputs/train_backbone/; an interrupted run continues with --resume.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from ttame_lib import load_backbone
from ttame_lib.backbones.preprocessing import Preprocessing
from ttame_lib.errors import TTAMEError
from ttame_lib.method.checkpoint import atomic_save
from ttame_lib.method.training import Optimisation, run_epochs
from ttame_lib.world.distillation import FeatureDistillation, logit_distillation, parse_layer_pairs
from ttame_lib.world.scene_backbones import SCENE_BACKBONES, build_scene_model
from ttame_lib.world.scenes import CompositeScenes

ROOT = Path(__file__).resolve().parents[1]


@torch.no_grad()
def accuracy(model, scenes, normalize, batch_size=128) -> float:
    """Top-1 accuracy over a list of Scene records."""
    model.eval()
    correct = 0
    for start in range(0, len(scenes), batch_size):
        chunk = scenes[start : start + batch_size]
        images = torch.stack([s.image for s in chunk])
        labels = torch.tensor([s.label for s in chunk])
        correct += int((model(normalize(images)).argmax(1) == labels).sum())
    return correct / len(scenes)


def heldout_accuracies(model, name: str, eval_scenes: int, seed: int) -> dict:
    """Accuracy on held-out compositions (seen objects, unseen backgrounds) and on held-out instances."""
    spec = SCENE_BACKBONES[name]
    prep = Preprocessing(spec.input_size, spec.input_size[0], spec.mean, spec.std)
    training_objects = CompositeScenes("train", length=1, size=spec.input_size, holdout="instance").instances
    seen = {f"{c}/{p.name}" for c, files in training_objects.items() for p in files}
    compositions = CompositeScenes("test", length=2 * eval_scenes, size=spec.input_size, seed=seed)
    test = [s for s in (compositions.scene(i) for i in range(len(compositions))) if s.instance in seen]
    test = test[:eval_scenes]
    unseen = CompositeScenes("test", length=eval_scenes, size=spec.input_size, seed=seed, holdout="instance")
    held_out = [unseen.scene(i) for i in range(len(unseen))]
    return {
        "accuracy_heldout_compositions": accuracy(model, test, prep.normalize),
        "accuracy_heldout_instances": accuracy(model, held_out, prep.normalize),
        "eval_scenes": [len(test), len(held_out)],
    }


def evaluate_stored(name: str, eval_scenes: int, seed: int) -> None:
    """Re-measure the committed (half-precision) weights and record it in the JSON report."""
    spec = SCENE_BACKBONES[name]
    model = build_scene_model(name)
    state = torch.load(ROOT / spec.weights_file, map_location="cpu", weights_only=True)
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    result = heldout_accuracies(model, name, eval_scenes, seed)
    report_file = (ROOT / spec.weights_file).with_suffix(".json")
    report = json.loads(report_file.read_text())
    report["stored_weights_check"] = result
    report_file.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(result, indent=2))


def parse_args() -> tuple[argparse.ArgumentParser, argparse.Namespace]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", choices=sorted(SCENE_BACKBONES))
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--scenes-per-epoch", type=int, default=4000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--weight-decay", type=float, default=0.05)
    parser.add_argument("--eval-scenes", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--teacher",
        choices=sorted(SCENE_BACKBONES),
        help="also distil from this trained scene backbone: half the loss on the labels, half on the teacher's "
        "softened probabilities (temperature 2), which gives a ViT far more signal per scene than one label",
    )
    parser.add_argument(
        "--feature-distill",
        nargs="+",
        default=[],
        metavar="STUDENT_LAYER:TEACHER_LAYER",
        help="with --teacher: also regress these teacher feature maps from these student layers (1x1 projection, "
        "average-pooled to the teacher's grid), e.g. blocks.2:layer2 blocks.5:layer4",
    )
    parser.add_argument("--feature-weight", type=float, default=1.0, help="weight of the feature-distillation loss")
    parser.add_argument(
        "--output",
        type=Path,
        help="where to write the weights (and the .json report beside them); default: the committed file in "
        "data/backbones/, which load_backbone(NAME, weights='DEFAULT') reads",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue from the state saved after the last finished epoch (outputs/train_backbone/NAME.resume.pt); "
        "the other options must be the ones that run started with",
    )
    parser.add_argument(
        "--evaluate-only", action="store_true", help="re-measure the committed weights instead of training"
    )
    return parser, parser.parse_args()


@dataclass
class Run:
    """A scene classifier being trained: the model, what it learns from, and its progress."""

    args: argparse.Namespace
    model: torch.nn.Module
    prep: Preprocessing
    teacher: object | None = None
    distiller: FeatureDistillation | None = None
    history: list[dict] = field(default_factory=list)

    def loss(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """Label cross-entropy, plus logit and feature distillation from the teacher when asked for."""
        feature_loss = None
        if self.distiller is not None:
            logits, teacher_logits, feature_loss = self.distiller(
                self.prep.normalize(images), self.teacher.normalize(images)
            )
        else:
            logits = self.model(self.prep.normalize(images))
            teacher_logits = self.teacher(images) if self.teacher is not None else None
        loss = F.cross_entropy(logits, labels, label_smoothing=0.1)
        if teacher_logits is not None:
            loss = 0.5 * loss + 0.5 * logit_distillation(logits, teacher_logits)
        if feature_loss is not None:
            loss = loss + self.args.feature_weight * feature_loss
        terms = {"loss": float(loss.detach())}
        if feature_loss is not None:
            terms["feature_loss"] = float(feature_loss.detach())
        return loss, terms

    def loader(self, epoch: int) -> DataLoader:
        """Fresh compositions every epoch; every 5th object instance is never seen (the few-shot test)."""
        spec = SCENE_BACKBONES[self.args.name]
        scenes = CompositeScenes(
            "train", length=self.args.scenes_per_epoch, size=spec.input_size, seed=1000 + epoch, holdout="instance"
        )
        return DataLoader(
            scenes,
            batch_size=self.args.batch_size,
            shuffle=True,
            drop_last=True,
            generator=torch.Generator().manual_seed(self.args.seed + epoch),
        )


def build_run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Run:
    """The untrained model, and the teacher and feature distiller if asked for."""
    spec = SCENE_BACKBONES[args.name]
    torch.manual_seed(args.seed)
    run = Run(
        args, build_scene_model(args.name), Preprocessing(spec.input_size, spec.input_size[0], spec.mean, spec.std)
    )
    if args.teacher:
        run.teacher = load_backbone(args.teacher, weights="DEFAULT")
        if run.teacher.input_size != spec.input_size:
            parser.error(
                f"the teacher {args.teacher} takes {run.teacher.input_size} inputs, the student {spec.input_size}"
            )
    if args.feature_distill:
        if run.teacher is None:
            parser.error("--feature-distill needs --teacher")
        try:
            pairs = parse_layer_pairs(args.feature_distill)
            run.distiller = FeatureDistillation(run.model, run.teacher.model, pairs, spec.input_size)
        except TTAMEError as err:  # a typo in a layer name: the message lists the valid ones
            parser.error(f"--feature-distill: {err}")
    return run


def resume_run(
    parser: argparse.ArgumentParser, run: Run, resume_file: Path, settings: dict, optimisation: Optimisation
) -> tuple[int, float]:
    """Load the state saved after the last finished epoch; returns (finished epochs, seconds spent)."""
    if not resume_file.is_file():
        parser.error(f"--resume: nothing to resume, {resume_file} does not exist; start without --resume")
    state = torch.load(resume_file, map_location="cpu", weights_only=True)
    if state["settings"] != settings:
        changed = sorted(k for k in settings if state["settings"].get(k) != settings[k])
        parser.error(
            f"--resume: {resume_file} was written with other options ({', '.join(changed)}); "
            f"run again with: {state['command']}"
        )
    run.model.load_state_dict(state["model"])
    if run.distiller is not None:
        run.distiller.projections.load_state_dict(state["projections"])
    first_epoch = optimisation.load_state_dict(state["training"])
    run.history = state["history"]
    print(f"resuming after epoch {first_epoch} of {run.args.epochs}")
    return first_epoch, state["seconds"]


def train(parser: argparse.ArgumentParser, run: Run, resume_file: Path, command: str) -> float:
    """The shared training loop (ttame_lib.method.training.run_epochs); returns the training seconds."""
    args = run.args
    settings = {k: v for k, v in vars(args).items() if k not in ("resume", "evaluate_only", "eval_scenes", "output")}
    trainable = list(run.model.parameters()) + (list(run.distiller.projections.parameters()) if run.distiller else [])
    steps_per_epoch = args.scenes_per_epoch // args.batch_size
    optimisation = Optimisation(
        torch.optim.AdamW(trainable, lr=args.lr, weight_decay=args.weight_decay), args.epochs * steps_per_epoch, args.lr
    )
    first_epoch, earlier_seconds = 0, 0.0
    if args.resume:
        first_epoch, earlier_seconds = resume_run(parser, run, resume_file, settings, optimisation)
    started = time.perf_counter() - earlier_seconds

    def train_step(batch: tuple) -> tuple[torch.Tensor, dict[str, float], int]:
        images, labels, _ = batch
        loss, terms = run.loss(images, labels)
        return loss, terms, len(labels)

    def after_epoch(epoch: int, record: dict[str, float]) -> None:
        record["seconds"] = round(time.perf_counter() - started, 1)
        record.pop("lr")
        run.history.append(record)
        tqdm.write(f"epoch {epoch + 1}: loss {record['loss']:.3f} ({record['seconds']}s)")
        # Every epoch's state is kept (atomically), so an interrupted run loses at most one epoch: --resume.
        atomic_save(
            {
                "settings": settings,
                "command": command,
                "seconds": time.perf_counter() - started,
                "history": run.history,
                "model": run.model.state_dict(),
                "projections": run.distiller.projections.state_dict() if run.distiller is not None else {},
                "training": optimisation.state_dict(epoch + 1),
            },
            resume_file,
        )

    run_epochs(
        epochs=args.epochs,
        start_epoch=first_epoch,
        steps_per_epoch=steps_per_epoch,
        loader=run.loader,
        train_step=train_step,
        optimisation=optimisation,
        before_epoch=lambda epoch: run.model.train(),
        after_epoch=after_epoch,
    )
    return time.perf_counter() - started


def write_outputs(run: Run, out: Path, seconds: float, command: str) -> None:
    """Half-precision weights and the JSON report with held-out accuracies."""
    args, spec = run.args, SCENE_BACKBONES[run.args.name]
    report = {
        "name": args.name,
        "architecture": spec.architecture,
        "input_size": list(spec.input_size),
        "parameters": sum(p.numel() for p in run.model.parameters()),
        "epochs": args.epochs,
        "scenes_per_epoch": args.scenes_per_epoch,
        "teacher": args.teacher,
        "feature_distill": args.feature_distill,
        "feature_weight": args.feature_weight if args.feature_distill else None,
        "training_seconds": round(seconds, 1),
        **heldout_accuracies(run.model, args.name, args.eval_scenes, args.seed),
        "history": run.history,
        "command": command,
    }
    # Half precision halves the committed file; loading casts back to float32.
    atomic_save({k: v.half() if v.is_floating_point() else v for k, v in run.model.state_dict().items()}, out)
    out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "history"}, indent=2))


def main() -> None:
    parser, args = parse_args()
    if args.evaluate_only:
        evaluate_stored(args.name, args.eval_scenes, args.seed)
        return
    run = build_run(parser, args)
    out = args.output if args.output is not None else ROOT / SCENE_BACKBONES[args.name].weights_file
    resume_file = ROOT / "outputs" / "train_backbone" / f"{out.stem}.resume.pt"
    command = "python scripts/train_backbone.py " + " ".join(a for a in sys.argv[1:] if a != "--resume")
    seconds = train(parser, run, resume_file, command)
    if run.distiller is not None:
        run.distiller.close()
    write_outputs(run, out, seconds, command)
    resume_file.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
