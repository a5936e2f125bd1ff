"""The T-TAME training loss (METHOD.md, "Training")."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

AREA_EPSILON = 0.0005
BORDER_WEIGHT = 0.3


def total_variation(maps: torch.Tensor) -> torch.Tensor:
    """TV(A) = [sum dy^2 + sum dx^2 + 0.3 * sum_border A^2] / (2 B) for maps (B, h, w).

    The border term counts every pixel of the first/last row and column once; it pushes
    attention away from the image frame.
    """
    if maps.ndim != 3:
        raise ValueError(f"expected maps of shape (B, h, w); got {tuple(maps.shape)}")
    batch = maps.shape[0]
    dy = (maps[:, 1:, :] - maps[:, :-1, :]).pow(2).sum()
    dx = (maps[:, :, 1:] - maps[:, :, :-1]).pow(2).sum()
    squared = maps.pow(2)
    interior = squared[:, 1:-1, 1:-1].sum() if min(maps.shape[-2:]) > 2 else squared.new_zeros(())
    border = squared.sum() - interior
    return (dy + dx + BORDER_WEIGHT * border) / (2 * batch)


def area_loss(maps: torch.Tensor, power: float) -> torch.Tensor:
    """mean((A + 0.0005) ** power): small power rewards maps that are mostly near zero."""
    return (maps + AREA_EPSILON).pow(power).mean()


@dataclass(frozen=True)
class LossWeights:
    """λ1 smoothness (TV), λ2 area, λ3 cross-entropy, λ4 area power; defaults are the paper's."""

    tv: float = 0.01
    area: float = 2.0
    ce: float = 1.5
    area_power: float = 0.3

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


class TTAMELoss(nn.Module):
    """L = λ3 CE(logits_masked, c) + λ2 mean((A_c + 0.0005)^λ4) + λ1 TV(A_c)."""

    def __init__(self, weights: LossWeights | None = None):
        super().__init__()
        self.weights = weights or LossWeights()

    def forward(
        self, masked_logits: torch.Tensor, targets: torch.Tensor, maps: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Return the total loss and the unweighted terms ``ce``, ``area``, ``tv`` (detached)."""
        w = self.weights
        ce = F.cross_entropy(masked_logits.float(), targets)
        area = area_loss(maps.float(), w.area_power)
        tv = total_variation(maps.float())
        total = w.ce * ce + w.area * area + w.tv * tv
        return total, {"ce": ce.detach(), "area": area.detach(), "tv": tv.detach()}
