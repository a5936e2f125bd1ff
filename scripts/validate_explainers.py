"""Score candidate explainers of one backbone on validation composites, to choose a recipe.

    python scripts/validate_explainers.py tf_efficientnet_lite0 data/explainers/tf_efficientnet_lite0.ttame \\
        runs/lite_mixed.ttame cam-start:blocks.2,blocks.4,bn2 gradcam:blocks.6 centre

Candidates: a T-TAME checkpoint; ``cam-start`` or ``cam-start:L1,L2,L3`` (an untrained T-TAME on
the backbone's default layers or those, started from its classifier: one class activation map per
class); ``METHOD`` or
``METHOD:LAYER`` for any baseline of ``make_explainer`` (``gradcam:blocks.6``, ``centre``).

Validation scenes are the test split's held-out backgrounds with another seed than the
benchmark's (default 777), at the benchmark's object scale: never the benchmark's scenes. For
each candidate: pointing game for the predicted class, AD(15 %), and, for ImageNet classifiers,
the pointing game for the class the backbone gives the object seen alone (``PG obj``; see
``ttame_lib.evaluation.localisation.object_classes``), how class-specific the maps are (on scenes
where that class is not the top-1: same peak, correlation of the two maps) and the mean map value on the four
scikit-image photos of notebook 00 (the top-1 class). Values in %, pointing games with 95 %
bootstrap intervals. The README's recipe tables come from this script.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import torch

from ttame_lib import TTAME, load_backbone, make_explainer
from ttame_lib.evaluation.faithfulness import confidence_drop
from ttame_lib.evaluation.localisation import object_classes
from ttame_lib.method.head_init import initialise_from_classifier
from ttame_lib.world.scene_backbones import SCENE_BACKBONES
from ttame_lib.world.scenes import CompositeScenes
from ttame_lib.world.shipped import SHIPPED_EXPLAINERS

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from evaluate import (  # noqa: E402 - the benchmark's split and helpers are defined there
    BENCH_SCALE,
    explain_in_batches,
    pointing_game_interval,
    predictions,
)

PHOTOS = ("coffee", "chelsea", "astronaut", "rocket")


def build(candidate: str, backbone):
    """The explainer a candidate name stands for."""
    method, _, layer = candidate.partition(":")
    if method == "cam-start":
        explainer = TTAME(backbone, layers=layer.split(",") if layer else None, seed=0)
        initialise_from_classifier(explainer)
        return explainer
    if Path(candidate).suffix == ".ttame":
        return TTAME.load(candidate, backbone)
    return make_explainer(backbone, method, **({"layer": layer} if layer else {}))


def pointing(maps: torch.Tensor, masks: torch.Tensor, seed: int) -> str:
    value, low, high = pointing_game_interval(maps, masks, resamples=2000, seed=seed)
    return f"{value:.1f} [{low:.1f}, {high:.1f}]"


def class_specificity(top1_maps: torch.Tensor, object_maps: torch.Tensor, differ: torch.Tensor) -> str:
    """On scenes whose object class is not the top-1 class: how often the two maps peak at the same
    pixel, and their mean Pearson correlation (1: the map does not depend on the class)."""
    a, b = top1_maps[differ].flatten(1).double(), object_maps[differ].flatten(1).double()
    same_peak = int((a.argmax(1) == b.argmax(1)).sum())
    a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
    correlation = (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)).clamp_min(1e-12)
    return f"same peak {same_peak}/{int(differ.sum())}, correlation {float(correlation.mean()):.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("backbone", choices=list(SHIPPED_EXPLAINERS))
    parser.add_argument("candidates", nargs="+")
    parser.add_argument("--scenes", type=int, default=200)
    parser.add_argument("--seed", type=int, default=777, help="validation seed (the benchmark's is 0)")
    parser.add_argument("--batch-size", type=int, default=25)
    args = parser.parse_args()
    if args.seed == 0:
        parser.error("--seed 0 draws the benchmark's own scenes; choose recipes on another seed")
    torch.set_grad_enabled(False)
    backbone = load_backbone(args.backbone, weights="DEFAULT")
    size = SHIPPED_EXPLAINERS[args.backbone]
    scenes = CompositeScenes("test", length=args.scenes, size=size, seed=args.seed, scale=BENCH_SCALE)
    images = torch.stack([scenes[i][0] for i in range(args.scenes)])
    masks = torch.stack([scenes[i][2] for i in range(args.scenes)]).reshape(args.scenes, size, size)
    imagenet = args.backbone not in SCENE_BACKBONES
    objects, photos = None, None
    if imagenet:
        import skimage.data  # the notebook's photos; scikit-image is a dependency

        objects = object_classes(backbone, images, masks, batch_size=args.batch_size)
        top1 = predictions(backbone, images, args.batch_size)
        print(f"top-1 is the object's class in {100 * float((objects == top1).float().mean()):.1f} % of the scenes")
        photos = torch.stack([backbone.preprocess(getattr(skimage.data, name)()) for name in PHOTOS])
    print(f"{args.scenes} validation scenes ({args.backbone}, seed {args.seed}, scale {BENCH_SCALE}):", flush=True)
    for candidate in args.candidates:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # coverage warnings: every candidate meets the same classes
            explainer = build(candidate, backbone)
            maps = explain_in_batches(explainer, images, None, args.batch_size)
            ad = confidence_drop(backbone, images, maps, percents=(15,)).summary()["AD(15%)"]
            line = f"  {candidate}: PG {pointing(maps, masks, args.seed)}  AD(15%) {ad:.1f}"
            if imagenet:
                object_maps = explain_in_batches(explainer, images, objects, args.batch_size)
                means = [round(float(m.mean()), 2) for m in explainer.explain(photos)]
                line += f"  PG obj {pointing(object_maps, masks, args.seed)}  photo map means {means}"
                line += "  " + class_specificity(maps, object_maps, objects != top1)
        print(line, flush=True)
        if hasattr(explainer, "close"):
            explainer.close()


if __name__ == "__main__":
    main()
