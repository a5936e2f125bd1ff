"""The multi-branch attention mechanism of T-TAME (docs/method.md, "Attention mechanism")."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class FeatureBranch(nn.Module):
    """1x1 conv (C -> C) -> BatchNorm -> + input (skip) -> ReLU."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, kernel_size=1, bias=True)
        self.bn = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)) + x)


def fused_size(sizes: Sequence[tuple[int, int]], max_size: int) -> tuple[int, int]:
    """The common resolution: the largest feature map's size, capped at ``max_size`` per side."""
    return min(max(h for h, _ in sizes), max_size), min(max(w for _, w in sizes), max_size)


class AttentionMechanism(nn.Module):
    """Branches per feature map, bilinear upsampling to a common size, 1x1 fusion, sigmoid.

    ``forward(maps)`` returns every class map (B, K, h, w); ``forward(maps, classes)`` only
    the requested ones: (B, h, w) for ``classes`` of shape (B,), (B, k, h, w) for (B, k).
    :meth:`fused_logits` is the same before the sigmoid: explanations are made from it.

    Implementation note (why this is not literally "upsample, concatenate, fuse"): bilinear
    upsampling acts on each channel independently and the fusion is a 1x1 convolution, so
    both are linear and commute. We therefore fuse each branch at its *native* resolution
    with its slice of the fusion weights and upsample only the resulting class maps. The
    output is the paper's, up to float rounding (a test checks it against the literal
    formulation), but we never materialise the sum(C_i) x 56 x 56 concatenation; with class
    selection only k maps per branch are ever computed, which keeps ``explain`` close to
    the cost of one backbone forward.
    """

    def __init__(self, channels: Sequence[int], num_classes: int, max_size: int = 56):
        super().__init__()
        if not channels:
            raise ValueError("the attention mechanism needs at least one feature map")
        self.channels = [int(c) for c in channels]
        self.num_classes = int(num_classes)
        self.max_size = int(max_size)
        self.branches = nn.ModuleList(FeatureBranch(c) for c in self.channels)
        self.fuse = nn.Conv2d(sum(self.channels), self.num_classes, kernel_size=1, bias=True)

    def forward(self, feature_maps: Sequence[torch.Tensor], classes: torch.Tensor | None = None) -> torch.Tensor:
        """Attention maps in (0, 1): the sigmoid of :meth:`fused_logits` (used as masks in training)."""
        return torch.sigmoid(self.fused_logits(feature_maps, classes))

    def fused_logits(self, feature_maps: Sequence[torch.Tensor], classes: torch.Tensor | None = None) -> torch.Tensor:
        """The fusion convolution's output (before the sigmoid), shaped as :meth:`forward`'s."""
        if len(feature_maps) != len(self.branches):
            raise ValueError(f"expected {len(self.branches)} feature maps, got {len(feature_maps)}")
        size = fused_size([tuple(f.shape[-2:]) for f in feature_maps], self.max_size)
        weight = self.fuse.weight.flatten(1)  # (K, sum C)
        single = classes is not None and classes.ndim == 1
        if classes is None:
            weight, bias = weight.unsqueeze(0), self.fuse.bias.view(1, -1, 1, 1)  # (1, K, sum C)
        else:
            chosen = classes.unsqueeze(1) if single else classes  # (B, k)
            weight, bias = weight[chosen], self.fuse.bias[chosen][..., None, None]  # (B, k, sum C)
        logits = bias
        start = 0
        for branch, feature in zip(self.branches, feature_maps, strict=True):
            x = branch(feature)
            w = weight[..., start : start + x.shape[1]]
            start += x.shape[1]
            part = torch.einsum("bchw,bkc->bkhw", x, w.expand(x.shape[0], -1, -1))
            if tuple(part.shape[-2:]) != size:
                part = F.interpolate(part, size=size, mode="bilinear", align_corners=False)
            logits = logits + part
        return logits.squeeze(1) if single else logits
