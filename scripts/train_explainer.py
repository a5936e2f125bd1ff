"""Train a T-TAME explainer on composite scenes and ship it under data/explainers/.

    python scripts/train_explainer.py tf_efficientnet_lite0 --weights DEFAULT --size 224

Targets are the backbone's own predictions (as in the paper), so any classifier works,
including ImageNet ones whose labels are not the scenes' classes. The run checkpoints every
epoch (``<out>.run``) and resumes if interrupted; at the end it writes the explainer, and a
JSON report with the training time, the final loss terms and the pointing-game hit rate on
held-out test composites (unseen backgrounds).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from ttame_lib import TTAME, load_backbone
from ttame_lib.metrics import dataset_pointing_game
from ttame_lib.scenes import CompositeScenes

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("backbone")
    parser.add_argument("--weights", default="DEFAULT")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--train-scenes", type=int, default=3200)
    parser.add_argument("--test-scenes", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    out = args.out or ROOT / "data" / "explainers" / f"{args.backbone}.ttame"
    torch.manual_seed(args.seed)
    backbone = load_backbone(args.backbone, weights=args.weights)
    explainer = TTAME(backbone, seed=args.seed)
    train = CompositeScenes("train", length=args.train_scenes, size=args.size, seed=args.seed)
    test = CompositeScenes("test", length=args.test_scenes, size=args.size, seed=args.seed)
    loader = DataLoader(
        train, batch_size=args.batch_size, shuffle=True, generator=torch.Generator().manual_seed(args.seed)
    )
    started = time.perf_counter()
    run_file = out.with_suffix(".run")
    history = explainer.fit(loader, epochs=args.epochs, lr=args.lr, checkpoint=run_file, resume=True)
    seconds = time.perf_counter() - started
    explainer.save(out)
    run_file.unlink()
    report = {
        "backbone": args.backbone,
        "weights": backbone.weights,
        "layers": explainer.layers,
        "size": args.size,
        "train_scenes": args.train_scenes,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "seed": args.seed,
        "training_seconds": round(seconds, 1),
        "final_epoch": history[-1],
        "pointing_game_test": dataset_pointing_game(explainer, test, count=args.test_scenes),
        "test_scenes": args.test_scenes,
        "command": "python scripts/train_explainer.py " + " ".join(sys.argv[1:]),
    }
    out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
