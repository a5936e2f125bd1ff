"""Model-agnostic reference rows: a centre prior and a uniform map.

They look at neither the image nor the class, so any method that does not beat them has not
shown that it explains anything.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ...backbones.backbone import Backbone
from ...errors import InputError
from ...interface import ExplainerBase
from .common import check_request


class CentrePrior(ExplainerBase):
    """An isotropic Gaussian at the image centre: the "objects sit in the middle" prior.

    ``sigma`` is the standard deviation as a fraction of the shorter image side. The map is
    max-normalised (its peak, at the centre, is 1) and is the same for every image and class;
    ``images`` and ``classes`` are still validated so bad input fails as with every baseline.
    A method that does not beat this row on the localisation metrics has only found the centre.
    """

    def __init__(self, backbone: Backbone, sigma: float = 0.25):
        if not (isinstance(sigma, (int, float)) and math.isfinite(sigma) and sigma > 0):
            raise InputError(f"sigma must be a positive fraction of the shorter image side (e.g. 0.25); got {sigma!r}")
        self.backbone, self.sigma, self.name = backbone, float(sigma), "centre"

    def explain(self, images: torch.Tensor, classes: Any = None) -> torch.Tensor:
        """(B, H, W) copies of the centred Gaussian, in (0, 1] with 1 at the centre."""
        images = check_request(self.backbone, images, classes)
        height, width = images.shape[-2:]
        # Pixel centres relative to the image centre: for an even side the peak is shared by the
        # two middle pixels, which are equally far from it.
        ys = torch.arange(height, device=images.device, dtype=torch.float32) - (height - 1) / 2
        xs = torch.arange(width, device=images.device, dtype=torch.float32) - (width - 1) / 2
        std = self.sigma * min(height, width)
        gauss = torch.exp(-(ys[:, None] ** 2 + xs[None, :] ** 2) / (2 * std**2))
        return (gauss / gauss.max()).expand(images.shape[0], -1, -1).contiguous()

    def close(self) -> None:
        """Nothing to release (no hooks); here for the common interface."""


class UniformMap(ExplainerBase):
    """All ones: a map that ranks no pixel above another (the floor every explanation must beat).

    What the metrics make of it, by construction:

    - AD / IC: every pixel is tied at the keep threshold, so every level keeps the whole image
      unchanged: AD = 0 and IC = 0. That is the best possible AD, which is why AD alone cannot
      rank explanations (a map that removes nothing drops no confidence).
    - Pointing game, energy pointing game and top-k IoU: ties are shared out evenly, so each
      scores the object's area share, i.e. chance level.
    - ROAD: ties are broken at random, so MoRF and LeRF remove random pixels.
    """

    def __init__(self, backbone: Backbone):
        self.backbone, self.name = backbone, "uniform"

    def explain(self, images: torch.Tensor, classes: Any = None) -> torch.Tensor:
        """(B, H, W) ones."""
        images = check_request(self.backbone, images, classes)
        return torch.ones(images.shape[0], *images.shape[-2:], device=images.device)

    def close(self) -> None:
        """Nothing to release (no hooks); here for the common interface."""
