"""The T-TAME training loss (docs/method.md, "Training").

Two scopes for the area and smoothness terms (the cross-entropy always uses each image's own map):

- ``"batch"`` (the paper's code): the maps of *every class predicted in the batch* on *every
  image*, B x B maps. A class's map is pushed towards zero on images of other classes, which is
  what makes maps class-specific.
- ``"own"``: only each image's map for its own target, B maps.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

AREA_EPSILON = 0.0005
BORDER_WEIGHT = 0.3


REGULARIZE_SCOPES = ("batch", "own")


def total_variation(maps: torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
    """TV(A) = [sum dy^2 + sum dx^2 + 0.3 * sum_border A^2] / (2 B) over maps (N, h, w) or (N, k, h, w).

    Sums run over every map given; ``B`` is ``batch_size`` (default: the first dimension), so the
    paper's B x B maps of a batch of B images are divided by 2 B, not 2 B^2. The border term
    counts every pixel of the first/last row and column once (the authors' code counts the four
    corners twice); it pushes attention away from the image frame.
    """
    if maps.ndim not in (3, 4):
        raise ValueError(f"expected maps of shape (B, h, w) or (B, k, h, w); got {tuple(maps.shape)}")
    batch = maps.shape[0] if batch_size is None else batch_size
    dy = (maps[..., 1:, :] - maps[..., :-1, :]).pow(2).sum()
    dx = (maps[..., :, 1:] - maps[..., :, :-1]).pow(2).sum()
    squared = maps.pow(2)
    interior = squared[..., 1:-1, 1:-1].sum() if min(maps.shape[-2:]) > 2 else squared.new_zeros(())
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
    """L = λ3 CE(logits_masked, c) + λ2 mean((A + 0.0005)^λ4) + λ1 TV(A).

    ``regularize`` says which maps A the area and TV terms see: ``"batch"`` (the paper's: every
    batch target's map on every image) or ``"own"`` (each image's own map); see the module doc.
    """

    def __init__(self, weights: LossWeights | None = None, regularize: str = "batch"):
        super().__init__()
        if regularize not in REGULARIZE_SCOPES:
            raise ValueError(f"regularize must be one of {REGULARIZE_SCOPES}; got {regularize!r}")
        self.weights = weights or LossWeights()
        self.regularize = regularize

    def forward(
        self, masked_logits: torch.Tensor, targets: torch.Tensor, maps: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Return the total loss and the unweighted terms ``ce``, ``area``, ``tv`` (detached).

        ``maps`` are the regularised maps at attention resolution: (B, h, w) for ``"own"``,
        (B, B, h, w) for ``"batch"`` (``maps[i, j]`` is target j's map on image i).
        """
        w = self.weights
        batch = masked_logits.shape[0]
        expected = (batch,) if self.regularize == "own" else (batch, batch)
        if tuple(maps.shape[: len(expected)]) != expected or maps.ndim != len(expected) + 2:
            raise ValueError(
                f"regularize={self.regularize!r} expects maps of shape {expected} + (h, w) for a batch of {batch}; "
                f"got {tuple(maps.shape)}"
            )
        ce = F.cross_entropy(masked_logits.float(), targets)
        area = area_loss(maps.float(), w.area_power)
        tv = total_variation(maps.float(), batch)
        total = w.ce * ce + w.area * area + w.tv * tv
        return total, {"ce": ce.detach(), "area": area.detach(), "tv": tv.detach()}
