"""Compare trained explainers of one scene backbone: pointing game on two held-out splits and class-specificity.

    python scripts/compare_explainers.py scenes_cnn runs/cnn_batch.ttame runs/cnn_own.ttame

For each checkpoint: the pointing game on 200 held-out composites at the scenes' default object
scale (0.4-0.8 of the side) and at the benchmark's (0.3-0.6, where a centre prior scores far
less), and the mean attention of the predicted class's map and of every other class's map
(``ttame_lib.method.diagnostics.attention_levels``). The README's loss-scope table comes from this.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from ttame_lib import TTAME, load_backbone
from ttame_lib.evaluation.localisation import dataset_pointing_game
from ttame_lib.method.diagnostics import attention_levels
from ttame_lib.world.scenes import CompositeScenes

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from evaluate import BENCH_SCALE  # noqa: E402 - the benchmark's split is defined there


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("backbone", choices=["scenes_cnn", "scenes_vit"])
    parser.add_argument("checkpoints", nargs="+", type=Path)
    parser.add_argument("--scenes", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    backbone = load_backbone(args.backbone, weights="DEFAULT")
    default = CompositeScenes("test", length=args.scenes, size=64, seed=args.seed)
    bench = CompositeScenes("test", length=args.scenes, size=64, seed=args.seed, scale=BENCH_SCALE)
    images = torch.stack([default[i][0] for i in range(len(default))])
    for path in args.checkpoints:
        explainer = TTAME.load(path, backbone)
        levels = attention_levels(explainer, images)
        print(
            f"{path}: regularize={explainer.loss_fn.regularize}  "
            f"pointing game {dataset_pointing_game(explainer, default, args.scenes):.3f} (scale 0.4-0.8), "
            f"{dataset_pointing_game(explainer, bench, args.scenes):.3f} (scale {BENCH_SCALE[0]}-{BENCH_SCALE[1]})  "
            f"mean attention: predicted class {levels['own']:.2f}, other classes {levels['others']:.2f}",
            flush=True,
        )
        explainer.close()


if __name__ == "__main__":
    main()
