"""Train a small classifier from scratch on composite scenes (the offline world's own backbones).

    python scripts/train_backbone.py scenes_cnn --epochs 12
    python scripts/train_backbone.py scenes_vit --epochs 40

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

from ttame_lib.backbones import SCENE_BACKBONES, build_scene_model
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
    args = parser.parse_args()
    spec = SCENE_BACKBONES[args.name]
    torch.manual_seed(args.seed)
    model = build_scene_model(args.name)
    prep = Preprocessing(spec.input_size, spec.input_size[0], spec.mean, spec.std)
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
            loss = F.cross_entropy(model(prep.normalize(images)), labels, label_smoothing=0.1)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            total += float(loss.detach()) * len(labels)
            seen += len(labels)
        history.append({"epoch": epoch + 1, "loss": total / seen, "seconds": round(time.perf_counter() - started, 1)})
        tqdm.write(f"epoch {epoch + 1}: loss {total / seen:.3f} ({history[-1]['seconds']}s)")
    seconds = time.perf_counter() - started
    # Held-out compositions: unseen backgrounds and placements, objects seen in training.
    seen = {f"{c}/{p.name}" for c, files in scenes.instances.items() for p in files}
    compositions = CompositeScenes("test", length=2 * args.eval_scenes, size=spec.input_size, seed=args.seed)
    test = [s for s in (compositions.scene(i) for i in range(len(compositions))) if s.instance in seen]
    test = test[: args.eval_scenes]
    # Held-out instances: objects never seen in training, on unseen backgrounds.
    unseen = CompositeScenes("test", length=args.eval_scenes, size=spec.input_size, seed=args.seed, holdout="instance")
    held_out = [unseen.scene(i) for i in range(len(unseen))]
    report = {
        "name": args.name,
        "architecture": spec.architecture,
        "input_size": list(spec.input_size),
        "parameters": sum(p.numel() for p in model.parameters()),
        "epochs": args.epochs,
        "scenes_per_epoch": args.scenes_per_epoch,
        "training_seconds": round(seconds, 1),
        "accuracy_heldout_compositions": accuracy(model, test, prep.normalize),
        "accuracy_heldout_instances": accuracy(model, held_out, prep.normalize),
        "eval_scenes": [len(test), len(held_out)],
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
