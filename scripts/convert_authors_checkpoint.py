"""Convert an authors' T-TAME checkpoint (github.com/IDT-ITI/T-TAME) to a ``.ttame`` explainer.

    python scripts/convert_authors_checkpoint.py resnet50_TTAME.ckpt --backbone resnet50 --out resnet50.ttame

The backbone is torchvision's, with the weights the authors used (``pretrained=True``, i.e.
``IMAGENET1K_V1`` for VGG-16, ResNet-50 and ViT-B/16; downloaded the first time). The result
loads with ``TTAME.load(OUT, load_backbone(NAME, weights="IMAGENET1K_V1"))``. The script also
reports whether the backbone tensors stored in their file equal torchvision's (their training
could move a ResNet's BatchNorm running statistics; ours are torchvision's, unchanged).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ttame_lib import load_backbone
from ttame_lib.errors import TTAMEError
from ttame_lib.method.convert import (
    backbone_differences,
    check_hparams,
    convert_authors_checkpoint,
    load_authors_file,
    split_authors_checkpoint,
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path, help="the authors' .ckpt file (fetched with git lfs)")
    parser.add_argument("--backbone", required=True, choices=["vgg16", "resnet50", "vit_b_16"])
    parser.add_argument("--out", type=Path, required=True, help="where to write the .ttame explainer")
    parser.add_argument("--weights", default="IMAGENET1K_V1", help="torchvision weights of the backbone")
    args = parser.parse_args()
    try:
        data = load_authors_file(args.checkpoint)
        parts = split_authors_checkpoint(data)
        check_hparams(parts.hparams, args.backbone)  # before the backbone (maybe a download) is loaded
        backbone = load_backbone(args.backbone, weights=args.weights)
        explainer = convert_authors_checkpoint(data, backbone)
        differing = backbone_differences(parts, backbone, atol=1e-6)
    except TTAMEError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    explainer.save(args.out)
    print(f"wrote {args.out}: {explainer!r}")
    if differing:
        print(
            f"note: {len(differing)} backbone tensors in the file differ from torchvision's {args.weights} "
            f"(e.g. {differing[:3]}); the explainer explains torchvision's classifier."
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
