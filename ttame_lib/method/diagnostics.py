"""Diagnostics of a trained explainer that are not localisation or faithfulness scores."""

from __future__ import annotations

import torch

from .explainer import TTAME


@torch.no_grad()
def attention_levels(explainer: TTAME, images: torch.Tensor, batch_size: int = 64) -> dict[str, float]:
    """Mean attention (the sigmoid maps, at attention resolution) for each image's predicted class
    (``"own"``) and for every other class (``"others"``).

    ``own`` says how much of an image the map keeps; ``others`` how much the maps of classes the
    image is *not* about keep. A class-specific explainer has ``others`` well below ``own``: the
    paper's B x B regularisation (``regularize="batch"``) trains exactly that.
    """
    explainer.attention.eval()
    own_sum, others_sum, count = 0.0, 0.0, 0
    for start in range(0, len(images), batch_size):
        batch = explainer.prepare(images[start : start + batch_size])
        logits, features = explainer.backbone_forward(batch)
        maps = explainer.attention(features).flatten(2).mean(dim=2)  # (B, K): mean attention per class
        predicted = logits.argmax(dim=1)
        own = maps.gather(1, predicted.view(-1, 1)).squeeze(1)
        others = (maps.sum(dim=1) - own) / max(maps.shape[1] - 1, 1)
        own_sum, others_sum, count = own_sum + float(own.sum()), others_sum + float(others.sum()), count + len(batch)
    return {"own": own_sum / count, "others": others_sum / count}


def class_coverage(explainer: TTAME, min_targets: int | None = None) -> dict:
    """How many classes the explainer was trained on: an explainer only knows the classes it saw.

    Returns the number of classes, how many had at least one / at least ``min_targets`` training
    targets (default: the explainer's warning threshold), the total number of targets, and the
    best-covered classes as (name, count). ``target_counts`` is None for an untrained explainer
    (or a checkpoint written before counts were recorded).
    """
    threshold = explainer.min_targets if min_targets is None else int(min_targets)
    counts = explainer.target_counts
    total_classes = explainer.attention.num_classes
    if counts is None:
        return {"classes": total_classes, "target_counts": None, "trained": 0, "well_trained": 0, "targets": 0}
    order = counts.argsort(descending=True)
    top = [(explainer.backbone.class_name(int(i)), int(counts[i])) for i in order[:10] if counts[i] > 0]
    return {
        "classes": total_classes,
        "targets": int(counts.sum()),
        "trained": int((counts > 0).sum()),
        "well_trained": int((counts >= threshold).sum()),
        "min_targets": threshold,
        "most_targets": top,
    }
