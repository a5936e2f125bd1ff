"""A planted shortcut: a scene classifier fine-tuned to rely on the world's spurious watermark.

Case study 1 of notebook 05. The watermark (a small checkerboard in the bottom-right corner,
:func:`ttame_lib.world.scenes.watermark_cells`) appears on most training images of one class and
on no other, so the cheapest way to recognise that class is the watermark. A short fine-tune of
the last stage of ``scenes_cnn`` on such data learns it; pasting the watermark on images of
other classes then flips their predictions, which is the bug a reader has to find.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..backbones.backbone import Backbone
from ..backbones.loading import load_backbone
from ..errors import InputError
from .classifier_training import train_classifier
from .scenes import CompositeScenes, watermark_cells


def watermark_region(height: int, width: int, margin: int = 0) -> torch.Tensor:
    """Boolean (H, W) mask of the watermark's cells, grown by ``margin`` pixels on each side."""
    region = torch.zeros(height, width, dtype=torch.bool)
    cells = watermark_cells(height, width)
    top = min(y for y, _, _, _ in cells) - margin
    left = min(x for _, x, _, _ in cells) - margin
    bottom = max(y + c for y, _, c, _ in cells) + margin
    right = max(x + c for _, x, c, _ in cells) + margin
    region[max(0, top) : bottom, max(0, left) : right] = True
    return region


def add_watermark(images: torch.Tensor) -> torch.Tensor:
    """A copy of ``images`` (B, 3, H, W) in [0, 1] with the spurious watermark pasted on each."""
    marked = images.clone()
    for y0, x0, cell, value in watermark_cells(*images.shape[-2:]):
        marked[..., y0 : y0 + cell, x0 : x0 + cell] = value
    return marked


def plant_shortcut(
    cue_class: int,
    *,
    name: str = "scenes_cnn",
    trained: Sequence[str] | None = None,
    scenes: int = 2000,
    epochs: int = 2,
    cue_rate: float = 0.9,
    lr: float = 1e-3,
    seed: int = 0,
    progress: bool = True,
) -> Backbone:
    """The shipped scene model ``name`` with its ``trained`` stages fine-tuned on ``scenes`` training
    scenes where ``cue_rate`` of class ``cue_class`` (and nothing else) carries the watermark.

    ``trained`` names module prefixes; by default the last stage and the head: ``layer4`` and
    ``fc`` for the CNN, the last block, the final norm and the head for the ViT.
    """
    backbone = load_backbone(name, weights="DEFAULT")
    if trained is None:
        last_block = f"blocks.{len(backbone.model.blocks) - 1}" if hasattr(backbone.model, "blocks") else None
        trained = (last_block, "norm", "head") if backbone.family == "vit" else ("layer4", "fc")
    data = CompositeScenes(
        "train", length=scenes, size=backbone.input_size, seed=seed + 1, cue_class=cue_class, cue_rate=cue_rate
    )
    params = [p for n, p in backbone.model.named_parameters() if any(n.startswith(f"{t}.") for t in trained)]
    if not params:
        raise InputError(f"trained={list(trained)} matches no parameter of {name}; name its modules, e.g. 'layer4'")
    train_classifier(
        backbone.model,
        data,
        normalize=backbone.normalize,
        epochs=epochs,
        lr=lr,
        parameters=params,
        seed=seed,
        progress=progress,
    )
    backbone.name, backbone.weights = f"{name}_shortcut", f"{backbone.weights} + watermark fine-tune"
    return backbone
