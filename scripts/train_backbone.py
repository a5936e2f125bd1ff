"""Train a small classifier from scratch on composite scenes (the offline world's own backbones).

    python scripts/train_backbone.py scenes_cnn --epochs 40 --lr 3e-3
    python scripts/train_backbone.py scenes_vit --epochs 40 --lr 1e-3 [--teacher scenes_cnn]

Each epoch draws fresh compositions (the scene seed changes per epoch), so the network sees
new placements and backgrounds every time and can only overfit to the object instances. The
weights and a JSON report (accuracy on held-out compositions with unseen backgrounds, and on
held-out object instances) go to data/backbones/.
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
from ttame_lib.preprocessing import Preprocessing
from ttame_lib.scenes import CompositeScenes

ROOT = Path(__file__).resolve().parents[1]
DISTILL_T = 2.0  # distillation temperature (Hinton et al. 2015)


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
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    steps = args.epochs * (args.scenes_per_epoch // args.batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.lr, total_steps=steps)
    started = time.perf_counter()
    history = []
    for epoch in range(args.epochs):
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
        total, seen = 0.0, 0
        for images, labels, _ in tqdm(loader, desc=f"epoch {epoch + 1}/{args.epochs}", leave=False):
            logits = model(prep.normalize(images))
            loss = F.cross_entropy(logits, labels, label_smoothing=0.1)
            if teacher is not None:
                target = F.log_softmax(teacher(images) / DISTILL_T, dim=1)
                student = F.log_softmax(logits / DISTILL_T, dim=1)
                distill = F.kl_div(student, target, log_target=True, reduction="batchmean")
                loss = 0.5 * loss + 0.5 * DISTILL_T**2 * distill
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            total += float(loss.detach()) * len(labels)
            seen += len(labels)
        history.append({"epoch": epoch + 1, "loss": total / seen, "seconds": round(time.perf_counter() - started, 1)})
        tqdm.write(f"epoch {epoch + 1}: loss {total / seen:.3f} ({history[-1]['seconds']}s)")
    seconds = time.perf_counter() - started
    scores = heldout_accuracies(model, args.name, args.eval_scenes, args.seed)
    report = {
        "name": args.name,
        "architecture": spec.architecture,
        "input_size": list(spec.input_size),
        "parameters": sum(p.numel() for p in model.parameters()),
        "epochs": args.epochs,
        "scenes_per_epoch": args.scenes_per_epoch,
        "teacher": args.teacher,
        "training_seconds": round(seconds, 1),
        **scores,
        "history": history,
        "command": "python scripts/train_backbone.py " + " ".join(sys.argv[1:]),
    }
    out = ROOT / spec.weights_file
    out.parent.mkdir(parents=True, exist_ok=True)
    # Half precision halves the committed file; loading casts back to float32.
    torch.save({k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}, out)
    out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "history"}, indent=2))


if __name__ == "__main__":
    main()
