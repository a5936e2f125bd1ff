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
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from ttame_lib.backbones import SCENE_BACKBONES, build_scene_model, load_backbone
from ttame_lib.checkpoint import atomic_save
from ttame_lib.distillation import FeatureDistillation, logit_distillation, parse_layer_pairs
from ttame_lib.errors import TTAMEError
from ttame_lib.preprocessing import Preprocessing
from ttame_lib.scenes import CompositeScenes

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


def main() -> None:
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
    args = parser.parse_args()
    if args.evaluate_only:
        evaluate_stored(args.name, args.eval_scenes, args.seed)
        return
    spec = SCENE_BACKBONES[args.name]
    torch.manual_seed(args.seed)
    model = build_scene_model(args.name)
    prep = Preprocessing(spec.input_size, spec.input_size[0], spec.mean, spec.std)
    teacher = None
    if args.teacher:
        teacher = load_backbone(args.teacher, weights="DEFAULT")
        if teacher.input_size != spec.input_size:
            parser.error(f"the teacher {args.teacher} takes {teacher.input_size} inputs, the student {spec.input_size}")
    distiller = None
    if args.feature_distill:
        if teacher is None:
            parser.error("--feature-distill needs --teacher")
        try:
            pairs = parse_layer_pairs(args.feature_distill)
            distiller = FeatureDistillation(model, teacher.model, pairs, spec.input_size)
        except TTAMEError as err:  # a typo in a layer name: the message lists the valid ones
            parser.error(f"--feature-distill: {err}")
    trainable = list(model.parameters()) + (list(distiller.projections.parameters()) if distiller else [])
    optimizer = torch.optim.AdamW(trainable, lr=args.lr, weight_decay=args.weight_decay)
    steps = args.epochs * (args.scenes_per_epoch // args.batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.lr, total_steps=steps)
    out = args.output if args.output is not None else ROOT / spec.weights_file
    resume_file = ROOT / "outputs" / "train_backbone" / f"{out.stem}.resume.pt"
    command = "python scripts/train_backbone.py " + " ".join(a for a in sys.argv[1:] if a != "--resume")
    ignored = ("resume", "evaluate_only", "eval_scenes", "output")
    settings = {k: v for k, v in vars(args).items() if k not in ignored}
    history: list[dict] = []
    first_epoch, earlier_seconds = 0, 0.0
    if args.resume:
        if not resume_file.is_file():
            parser.error(f"--resume: nothing to resume, {resume_file} does not exist; start without --resume")
        state = torch.load(resume_file, map_location="cpu", weights_only=True)
        if state["settings"] != settings:
            changed = sorted(k for k in settings if state["settings"].get(k) != settings[k])
            parser.error(
                f"--resume: {resume_file} was written with other options ({', '.join(changed)}); "
                f"run again with: {state['command']}"
            )
        model.load_state_dict(state["model"])
        if distiller is not None:
            distiller.projections.load_state_dict(state["projections"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        history, first_epoch, earlier_seconds = state["history"], state["epoch"], state["seconds"]
        print(f"resuming after epoch {first_epoch} of {args.epochs}")
    started = time.perf_counter() - earlier_seconds
    for epoch in range(first_epoch, args.epochs):
        model.train()
        # holdout="instance": every 5th object instance is never seen in training (the few-shot test).
        scenes = CompositeScenes(
            "train", length=args.scenes_per_epoch, size=spec.input_size, seed=1000 + epoch, holdout="instance"
        )
        loader = DataLoader(
            scenes,
            batch_size=args.batch_size,
            shuffle=True,
            drop_last=True,
            generator=torch.Generator().manual_seed(args.seed + epoch),
        )
        total, seen, feature_total = 0.0, 0, 0.0
        for images, labels, _ in tqdm(loader, desc=f"epoch {epoch + 1}/{args.epochs}", leave=False):
            feature_loss = None
            if distiller is not None:
                logits, teacher_logits, feature_loss = distiller(prep.normalize(images), teacher.normalize(images))
            else:
                logits = model(prep.normalize(images))
                teacher_logits = teacher(images) if teacher is not None else None
            loss = F.cross_entropy(logits, labels, label_smoothing=0.1)
            if teacher_logits is not None:
                loss = 0.5 * loss + 0.5 * logit_distillation(logits, teacher_logits)
            if feature_loss is not None:
                loss = loss + args.feature_weight * feature_loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            total += float(loss.detach()) * len(labels)
            feature_total += float(feature_loss.detach()) * len(labels) if feature_loss is not None else 0.0
            seen += len(labels)
        history.append({"epoch": epoch + 1, "loss": total / seen, "seconds": round(time.perf_counter() - started, 1)})
        if distiller is not None:
            history[-1]["feature_loss"] = feature_total / seen
        tqdm.write(f"epoch {epoch + 1}: loss {total / seen:.3f} ({history[-1]['seconds']}s)")
        # Every epoch's state is kept (atomically), so an interrupted run loses at most one epoch: --resume.
        atomic_save(
            {
                "settings": settings,
                "command": command,
                "epoch": epoch + 1,
                "seconds": time.perf_counter() - started,
                "history": history,
                "model": model.state_dict(),
                "projections": distiller.projections.state_dict() if distiller is not None else {},
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
            },
            resume_file,
        )
    seconds = time.perf_counter() - started
    if distiller is not None:
        distiller.remove()
    scores = heldout_accuracies(model, args.name, args.eval_scenes, args.seed)
    report = {
        "name": args.name,
        "architecture": spec.architecture,
        "input_size": list(spec.input_size),
        "parameters": sum(p.numel() for p in model.parameters()),
        "epochs": args.epochs,
        "scenes_per_epoch": args.scenes_per_epoch,
        "teacher": args.teacher,
        "feature_distill": args.feature_distill,
        "feature_weight": args.feature_weight if args.feature_distill else None,
        "training_seconds": round(seconds, 1),
        **scores,
        "history": history,
        "command": command,
    }
    # Half precision halves the committed file; loading casts back to float32.
    atomic_save({k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}, out)
    out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    resume_file.unlink(missing_ok=True)
    print(json.dumps({k: v for k, v in report.items() if k != "history"}, indent=2))


if __name__ == "__main__":
    main()
