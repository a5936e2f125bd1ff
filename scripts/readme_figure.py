"""Draw docs/pipeline.png for the README: one T-TAME forward on a real photo, step by step.

    python scripts/readme_figure.py [--backbone resnet50] [--weights DEFAULT]

With the offline default (random-init backbone, untrained attention) the figure shows the
mechanics (hooked maps at three depths and the map that ``explain`` returns), not a
meaningful explanation; pass ``--weights DEFAULT`` and a trained checkpoint for a real one.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import skimage.data
import torch

from ttame_lib import TTAME, load_backbone
from ttame_lib.viz.plotting import overlay, to_numpy_image

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backbone", default="resnet50")
    parser.add_argument("--weights", default=None)
    parser.add_argument("--checkpoint", type=Path, default=None, help="a trained T-TAME checkpoint")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "pipeline.png")
    args = parser.parse_args()
    backbone = load_backbone(args.backbone, weights=args.weights)
    explainer = TTAME.load(args.checkpoint, backbone) if args.checkpoint else TTAME(backbone)
    image = backbone.preprocess(skimage.data.chelsea())
    with torch.no_grad():
        _, maps = explainer.backbone_forward(image.unsqueeze(0))
    saliency, logits = explainer.explain(image.unsqueeze(0), return_logits=True)
    trained = "trained" if args.checkpoint else "untrained"
    fig, axes = plt.subplots(1, 5, figsize=(16, 3.6))
    axes[0].imshow(to_numpy_image(image))
    axes[0].set_title("input (224x224)")
    for ax, name, fmap in zip(axes[1:4], explainer.layers, maps):
        ax.imshow(fmap[0].abs().mean(0), cmap="magma")
        ax.set_title(f"{name}: {tuple(fmap.shape[1:])}\nmean |activation|", fontsize=9)
    predicted = backbone.class_name(int(logits.argmax())).split(",")[0]
    overlay(image, saliency[0], axes[4], title=f"explain(): {predicted}\n({trained} attention)")
    for ax in axes:
        ax.axis("off")
    weights = args.weights or "random-init"
    fig.suptitle(f"T-TAME on {args.backbone} ({weights} weights): hooked feature maps -> attention -> explanation")
    fig.tight_layout(rect=(0, 0, 1, 0.9))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=80)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
