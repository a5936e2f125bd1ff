"""One paper row: train T-TAME on an ImageNet-style folder, evaluate it and the baselines with the
paper's protocol, and write a table with the paper's published numbers beside the measured ones.

    python scripts/paper.py --data /path/to/imagenet --backbone resnet50 --device cuda
    make paper DATA=/path/to/imagenet BACKBONE=resnet50

``--data`` holds ``train/`` and ``val/``, one subfolder per class (ImageNet's synsets; the
validation images sorted into class folders, as most ImageNet copies are). The defaults are the
paper's: torchvision ``IMAGENET1K_V1`` weights (VGG-16, ResNet-50, ViT-B/16), 8 epochs, batch 32,
one-cycle SGD peaking at 1e-3, mixed precision on CUDA (``--amp fp16`` by default, or
``bf16``); evaluation on 2,000 validation images
(another 2,000 validate during training), AD / IC with 100 / 50 / 15 % of the pixels kept and
ROAD MoRF / LeRF at 10-90 %, for T-TAME and every baseline on the same images. Each mean comes
with a 95 % bootstrap interval over images.

Training checkpoints after every epoch and resumes (``<out>/<backbone>.run.ttame``); a finished
explainer (``<out>/<backbone>.ttame``) is reused, so a rerun only evaluates. Results:
``<out>/<backbone>.json`` and ``<out>/<backbone>.md``.

Several GPUs: the same script under ``torchrun --nproc_per_node N scripts/paper.py ...`` trains
with DistributedDataParallel (``--batch-size`` is then per process: 32 / N keeps the paper's batch);
rank 0 writes the checkpoints and evaluates.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from ttame_lib import TTAME, load_backbone, make_explainer
from ttame_lib.evaluation import FAITHFULNESS_COLUMNS, ROAD_LEVELS, format_cell, score_explainer
from ttame_lib.method import distributed
from ttame_lib.world.paper_data import image_folder, make_loader, paper_subsets

ROOT = Path(__file__).resolve().parents[1]
PAPER_WEIGHTS = {"vgg16": "IMAGENET1K_V1", "resnet50": "IMAGENET1K_V1", "vit_b_16": "IMAGENET1K_V1"}
# The paper's published numbers (ImageNet, 2,000 validation images; docs/method.md), in %.
PUBLISHED = {
    "vgg16": {"AD(15%)": 73.29, "IC(15%)": 5.60, "ROAD-MORF(mean)": 17.74},
    "resnet50": {"AD(15%)": 78.58, "IC(15%)": 4.90},
    "vit_b_16": {"ROAD-MORF(mean)": 26.48},
}
COLUMNS = FAITHFULNESS_COLUMNS  # AD / IC at 100, 50, 15 % and the ROAD means
BASELINES = ("gradcam", "gradcam++", "scorecam", "ablationcam", "rise", "centre", "uniform")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="folder with train/ and val/ (class subfolders)")
    parser.add_argument("--backbone", default="resnet50")
    parser.add_argument("--weights", default=None, help="default: IMAGENET1K_V1 for the paper's backbones; 'none'")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=32, help="per process under torchrun")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--steps-per-epoch", type=int, default=None, help="cap on batches per epoch")
    parser.add_argument("--eval-images", type=int, default=2000)
    parser.add_argument("--val-images", type=int, default=2000)
    parser.add_argument("--baselines", nargs="*", default=list(BASELINES))
    parser.add_argument("--rise-masks", type=int, default=4000)
    parser.add_argument("--eval-batch-size", type=int, default=16)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--workers", type=int, default=None, help="DataLoader workers (default: CPUs, at most 8)")
    parser.add_argument("--check", choices=["decode", "header"], default="header", help="how to check train images")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--amp",
        choices=["auto", "off", "fp16", "bf16"],
        default="auto",
        help="training precision: auto = fp16 with a gradient scaler on CUDA, float32 on CPU; bf16 = bfloat16 "
        "autocast (CUDA or CPU); off = float32. Evaluation always runs in float32, as the paper's",
    )
    parser.add_argument("--regularize", choices=["batch", "own"], default="batch", help="the loss's map scope")
    parser.add_argument("--stage", choices=["all", "train"], default="all", help="'train': stop after training")
    parser.add_argument("--stop-after-epoch", type=int, default=None, help=argparse.SUPPRESS)  # tests: a kill
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "paper")
    parser.add_argument("--no-progress", dest="progress", action="store_false")
    return parser.parse_args(argv)


def train(args: argparse.Namespace, backbone, val_folder, validation: list[int]) -> TTAME:
    final = args.out / f"{args.backbone}.ttame"
    if final.exists():
        print(f"using the trained explainer {final} (delete it to retrain)")
        return TTAME.load(final, backbone)
    train_folder = image_folder(args.data / "train", backbone, train=True, check=args.check)
    print(f"training on {len(train_folder)} images of {len(train_folder.classes)} classes")
    explainer = TTAME(backbone, seed=args.seed, regularize=args.regularize)
    loader = make_loader(train_folder, args.batch_size, shuffle=True, seed=args.seed, workers=args.workers, shard=True)
    val_loader = (
        make_loader(val_folder, args.batch_size, shuffle=False, workers=args.workers, indices=validation, shard=True)
        if validation
        else None
    )

    def stop_after(explainer: TTAME, record: dict) -> None:
        if record["epoch"] == args.stop_after_epoch:  # as if the job were killed right after this checkpoint
            raise SystemExit(3)

    started = time.perf_counter()
    explainer.fit(
        loader,
        args.epochs,
        val_loader=val_loader,
        lr=args.lr,
        steps_per_epoch=args.steps_per_epoch,
        checkpoint=args.out / f"{args.backbone}.run.ttame",
        resume=True,
        amp=None if args.amp == "auto" else args.amp,
        progress=args.progress and distributed.is_main(),
        on_epoch_end=stop_after if args.stop_after_epoch else None,
    )
    if distributed.is_main():
        print(f"trained in {time.perf_counter() - started:.0f} s on {distributed.world_size()} process(es)")
        explainer.save(final)
    distributed.barrier()
    return explainer


def evaluate(args: argparse.Namespace, backbone, explainer: TTAME, val_folder, evaluation: list[int]) -> list[dict]:
    images = torch.stack([val_folder[i][0] for i in evaluation])
    rows = []
    settings = {"rise": {"n_masks": args.rise_masks, "seed": args.seed}}
    methods = [("ttame", explainer), *[(m, None) for m in args.baselines if m != "ttame"]]
    for name, ready in methods:
        method = ready or make_explainer(backbone, name, **settings.get(name, {}))
        scores = score_explainer(
            method,
            backbone,
            images,
            None,
            batch_size=args.eval_batch_size,
            road_levels=ROAD_LEVELS,
            seed=args.seed,
            progress=args.progress,
            desc=name,
        )
        rows.append({"method": name, **scores.summary(seed=args.seed)})
        print(f"{name:12s} " + "  ".join(f"{label} {format_cell(rows[-1], key)}" for key, label in COLUMNS))
        if ready is None:
            method.close()
    return rows


def markdown(args: argparse.Namespace, backbone, rows: list[dict], images: int) -> str:
    published = PUBLISHED.get(args.backbone, {})
    lines = [
        f"# {args.backbone} ({backbone.weights}), {images} validation images",
        "",
        "Mean over images in %, with the 95 % bootstrap interval; ↓ lower is better, ↑ higher is better.",
        "",
        "| method | " + " | ".join(label for _, label in COLUMNS) + " |",
        "|---" * (len(COLUMNS) + 1) + "|",
    ]
    if published:
        cells = [f"{published[key]:.2f}" if key in published else "–" for key, _ in COLUMNS]
        lines.append("| T-TAME (paper) | " + " | ".join(cells) + " |")
    for row in rows:
        lines.append(
            f"| {row['method']} | " + " | ".join(format_cell(row, k, intervals=True) for k, _ in COLUMNS) + " |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    weights = args.weights or PAPER_WEIGHTS.get(args.backbone, "DEFAULT")
    weights = None if str(weights).lower() == "none" else weights
    torch.manual_seed(args.seed)
    if distributed.init_distributed() and args.device.startswith("cuda"):
        args.device = f"cuda:{torch.cuda.current_device()}"  # one GPU per process
    backbone = load_backbone(args.backbone, weights=weights, device=args.device)
    args.out.mkdir(parents=True, exist_ok=True)
    val_folder = image_folder(args.data / "val", backbone, train=False)
    subsets = paper_subsets(val_folder, args.eval_images, args.val_images, seed=args.seed)
    explainer = train(args, backbone, val_folder, subsets.validation)
    if args.stage == "train" or not distributed.is_main():  # rank 0 evaluates
        return 0
    rows = evaluate(args, backbone, explainer, val_folder, subsets.evaluation)
    report = {
        "backbone": args.backbone,
        "weights": backbone.weights,
        "evaluation_images": len(subsets.evaluation),
        "training_precision": args.amp,
        "published": PUBLISHED.get(args.backbone, {}),
        "history": explainer.history,
        "rows": rows,
    }
    (args.out / f"{args.backbone}.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / f"{args.backbone}.md").write_text(markdown(args, backbone, rows, len(subsets.evaluation)))
    print(f"wrote {args.out / args.backbone}.json and .md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
