"""Region interventions: edit a region of each image and measure how the prediction changes.

The verification step of the debugging loop. An explanation suggests "the model looks at X";
removing X and watching the prediction (and the probability of each class) is the test. The
region can come from a map (:func:`top_region`), from a known cue or from an object mask.
Removal by linear imputation (ROAD's, from :mod:`ttame_lib.evaluation.imputation`) fills the
region from its surroundings, so the edit adds no new sharp edge the model could react to;
grey, mean and blur fills are there to compare against.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torchvision.transforms.v2 import functional as TF

from ..backbones.backbone import Backbone
from ..errors import InputError
from ..evaluation.faithfulness import removal_masks
from ..evaluation.imputation import linear_impute

Fill = Literal["impute", "grey", "mean", "blur"]
FILLS = ("impute", "grey", "mean", "blur")


@dataclass
class InterventionResult:
    """Class probabilities (N, C) before and after editing ``regions`` (N, H, W) of the images."""

    before: torch.Tensor
    after: torch.Tensor
    edited: torch.Tensor
    regions: torch.Tensor

    def __getitem__(self, index: int | slice | torch.Tensor) -> InterventionResult:
        """The result for some of the images (``result[:4]``)."""
        index = slice(index, index + 1) if isinstance(index, int) else index
        return InterventionResult(self.before[index], self.after[index], self.edited[index], self.regions[index])

    @property
    def predicted_before(self) -> torch.Tensor:
        return self.before.argmax(dim=1)

    @property
    def predicted_after(self) -> torch.Tensor:
        return self.after.argmax(dim=1)

    @property
    def changed(self) -> torch.Tensor:
        """Per image: did the top-1 prediction change?"""
        return self.predicted_before != self.predicted_after

    def probability_change(self, classes: torch.Tensor | int) -> torch.Tensor:
        """after - before of the probability of ``classes`` (one per image, or one for all)."""
        index = torch.as_tensor(classes, dtype=torch.long).expand(len(self.before)).view(-1, 1)
        return (self.after.gather(1, index) - self.before.gather(1, index)).squeeze(1)

    def summary(self, labels: torch.Tensor | None = None) -> dict[str, float]:
        """Share of changed predictions, mean change of the first prediction's probability, and with
        ``labels`` the accuracy before and after."""
        out = {
            "changed": float(self.changed.float().mean()),
            "probability_change_of_prediction": float(self.probability_change(self.predicted_before).mean()),
            "region_share": float(self.regions.float().mean()),
        }
        if labels is not None:
            labels = torch.as_tensor(labels).view(-1)
            out["accuracy_before"] = float((self.predicted_before == labels).float().mean())
            out["accuracy_after"] = float((self.predicted_after == labels).float().mean())
        return out


def top_region(maps: torch.Tensor, percent: float) -> torch.Tensor:
    """Boolean (B, H, W): the ``percent`` % highest pixels of each map (ties broken at random, seeded)."""
    return removal_masks(maps, percent, "morf", generator=torch.Generator().manual_seed(0))


def fill_regions(images: torch.Tensor, regions: torch.Tensor, fill: Fill = "impute", seed: int = 0) -> torch.Tensor:
    """``images`` (B, 3, H, W) in [0, 1] with ``regions`` (B, H, W) replaced by ``fill``."""
    if fill not in FILLS:
        raise InputError(f"fill must be one of {FILLS}; got {fill!r}")
    if regions.shape != (images.shape[0], *images.shape[-2:]):
        raise InputError(
            f"regions must be (B, H, W) = {(images.shape[0], *images.shape[-2:])} booleans, one per image; "
            f"got {tuple(regions.shape)}"
        )
    regions = regions.to(images.device).bool()
    if fill == "impute":
        generator = torch.Generator().manual_seed(seed)
        return linear_impute(images, regions, noise=0.0, generator=generator).clamp(0, 1)
    if fill == "grey":
        replacement = torch.full_like(images, 0.5)
    elif fill == "mean":
        replacement = images.mean(dim=(2, 3), keepdim=True).expand_as(images)
    else:  # blur: a strong Gaussian blur (sigma a tenth of the image side) keeps colours, removes detail
        sigma = max(images.shape[-2:]) / 10
        kernel = 2 * round(3 * sigma) + 1
        replacement = TF.gaussian_blur(images, [kernel, kernel], [sigma, sigma])
    return torch.where(regions.unsqueeze(1), replacement, images)


@torch.no_grad()
def region_intervention(
    backbone: Backbone,
    images: torch.Tensor,
    regions: torch.Tensor,
    *,
    fill: Fill = "impute",
    seed: int = 0,
) -> InterventionResult:
    """Classify ``images`` before and after filling ``regions``; see :class:`InterventionResult`."""
    images = backbone.check_images(images).to(backbone.device)
    edited = fill_regions(images, regions.to(images.device), fill, seed)
    before = backbone(images).softmax(dim=1).float().cpu()
    after = backbone(edited).softmax(dim=1).float().cpu()
    return InterventionResult(before, after, edited.cpu(), regions.bool().cpu())
