"""Contrastive maps: the evidence for the predicted class next to the evidence for another one.

"Why B and not A?" is the question behind most misclassifications. T-TAME answers it from one
forward pass (its attention mechanism produces a map for every class at once, so ``explain``
takes (B, k) classes); any other explainer is called once per class.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import InputError
from ..interface import Explainer


@dataclass
class ContrastiveMaps:
    """Maps (B, H, W) for two classes per image, and the classes themselves."""

    first: torch.Tensor
    second: torch.Tensor
    first_classes: torch.Tensor
    second_classes: torch.Tensor

    def difference(self) -> torch.Tensor:
        """first - second, in [-1, 1]: positive where the evidence favours the first class."""
        return self.first - self.second


def contrastive_maps(
    explainer: Explainer,
    images: torch.Tensor,
    first: torch.Tensor,
    second: torch.Tensor,
) -> ContrastiveMaps:
    """Maps for class ``first[i]`` and class ``second[i]`` of each image (e.g. predicted and true)."""
    first = torch.as_tensor(first, dtype=torch.long).flatten().cpu()
    second = torch.as_tensor(second, dtype=torch.long).flatten().cpu()
    if len(first) != len(images) or len(second) != len(images):
        raise InputError(
            f"first and second need one class per image ({len(images)}); got {len(first)} and {len(second)}"
        )
    if getattr(explainer, "name", None) == "ttame":
        maps = explainer.explain(images, torch.stack([first, second], dim=1))  # one forward for both
        a, b = maps[:, 0], maps[:, 1]
    else:
        a, b = explainer.explain(images, first), explainer.explain(images, second)
    return ContrastiveMaps(a.cpu(), b.cpu(), first, second)
