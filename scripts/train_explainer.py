"""Train a T-TAME explainer on the offline world and ship it under data/explainers/.

    python scripts/train_explainer.py scenes_cnn --size 64 --train-images 6000 --epochs 4
    python scripts/train_explainer.py tf_efficientnet_lite0 --data photos --size 224 --train-images 12800

Targets are the backbone's own predictions (as in the paper), so any classifier works. ``--data
scenes`` trains on composite scenes (the scene backbones' own world); ``--data photos`` on the
real-photo pool (:class:`ttame_lib.world.photo_pool.PhotoPool`), which makes an ImageNet classifier
predict as many different classes as the offline world can; ``--data photos+scenes`` mixes the two
(``--scene-share`` of the images are training-split composites at ``--scale``), so the explainer
also sees small objects away from the centre. The run checkpoints every epoch
(``<out>.run``) and resumes if interrupted (``--keep-epochs`` also keeps each epoch's explainer);
at the end it writes the explainer, and a JSON report
with the training time, the final loss terms, the class coverage (training targets per class) and
the pointing-game hit rate on held-out test composites (unseen backgrounds).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from ttame_lib import TTAME, load_backbone
from ttame_lib.evaluation.localisation import dataset_pointing_game
from ttame_lib.method.diagnostics import class_coverage
from ttame_lib.method.head_init import initialise_from_classifier
from ttame_lib.world.mixture import ImageMixture
from ttame_lib.world.photo_pool import PhotoPool
from ttame_lib.world.scenes import CompositeScenes

ROOT = Path(__file__).resolve().parents[1]


def training_images(args: argparse.Namespace) -> Dataset:
    """The training set ``--data`` names; only the parts it uses are built."""
    scale = {} if args.scale is None else {"scale": tuple(args.scale)}
    parts = {
        "photos": lambda: PhotoPool(length=args.train_images, size=args.size, seed=args.seed),
        "scenes": lambda: CompositeScenes("train", length=args.train_images, size=args.size, seed=args.seed, **scale),
    }
    if args.data in parts:
        return parts[args.data]()
    shares = [1 - args.scene_share, args.scene_share]
    return ImageMixture([parts["photos"](), parts["scenes"]()], shares, length=args.train_images, seed=args.seed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("backbone")
    parser.add_argument("--weights", default="DEFAULT")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument(
        "--data", choices=["scenes", "photos", "photos+scenes"], default="scenes", help="training images (see above)"
    )
    parser.add_argument(
        "--scene-share", type=float, default=0.5, help="share of composite scenes with --data photos+scenes"
    )
    parser.add_argument("--train-images", "--train-scenes", dest="train_images", type=int, default=3200)
    parser.add_argument(
        "--scale", nargs=2, type=float, default=None, metavar=("LOW", "HIGH"), help="object scale of training scenes"
    )
    parser.add_argument("--steps-per-epoch", type=int, default=None, help="batches per epoch (default: the whole set)")
    parser.add_argument("--test-scenes", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="e.g. cuda (the shipped explainers were trained on a CPU)")
    parser.add_argument(
        "--amp", choices=["auto", "off", "fp16", "bf16"], default="auto", help="auto: fp16 on CUDA, float32 on CPU"
    )
    parser.add_argument(
        "--regularize",
        choices=["batch", "own"],
        default="batch",
        help="maps the area and TV terms see: every batch target's map on every image (paper) or each image's own",
    )
    parser.add_argument("--layers", nargs="+", default=None, help="layers to hook (default: the backbone's)")
    parser.add_argument(
        "--init",
        choices=["random", "head"],
        default="random",
        help="fusion start: random (the paper) or the classifier's weights on the last layer (a CAM per class)",
    )
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--keep-epochs",
        action="store_true",
        help="also save the explainer after every epoch as <out>.epochN.ttame (to score a run's trajectory)",
    )
    args = parser.parse_args()
    out = args.out or ROOT / "data" / "explainers" / f"{args.backbone}.ttame"
    torch.manual_seed(args.seed)
    backbone = load_backbone(args.backbone, weights=args.weights, device=args.device)
    explainer = TTAME(backbone, layers=args.layers, seed=args.seed, regularize=args.regularize)
    if args.init == "head":
        initialise_from_classifier(explainer)
    train = training_images(args)
    test = CompositeScenes("test", length=args.test_scenes, size=args.size, seed=args.seed)
    loader = DataLoader(
        train, batch_size=args.batch_size, shuffle=True, generator=torch.Generator().manual_seed(args.seed)
    )
    started = time.perf_counter()
    run_file = out.with_suffix(".run")
    history = explainer.fit(
        loader,
        epochs=args.epochs,
        lr=args.lr,
        steps_per_epoch=args.steps_per_epoch,
        checkpoint=run_file,
        resume=True,
        amp=None if args.amp == "auto" else args.amp,
        on_epoch_end=(lambda ex, record: ex.save(out.with_suffix(f".epoch{record['epoch']}.ttame")))
        if args.keep_epochs
        else None,
    )
    seconds = time.perf_counter() - started
    explainer.save(out)
    run_file.unlink()
    report = {
        "backbone": args.backbone,
        "weights": backbone.weights,
        "layers": explainer.layers,
        "init": args.init,
        "size": args.size,
        "data": args.data,
        "scene_share": args.scene_share if args.data == "photos+scenes" else None,
        "train_images": args.train_images,
        "steps_per_epoch": args.steps_per_epoch,
        "scale": args.scale,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "seed": args.seed,
        "regularize": args.regularize,
        "training_seconds": round(seconds, 1),
        "final_epoch": history[-1],
        "class_coverage": class_coverage(explainer),
        "pointing_game_test": dataset_pointing_game(explainer, test, count=args.test_scenes),
        "test_scenes": args.test_scenes,
        "command": "python scripts/train_explainer.py " + " ".join(sys.argv[1:]),
    }
    out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
