"""RISE (Petsiuk et al. 2018), written here: pytorch-grad-cam does not have it."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn as nn
from tqdm.auto import tqdm

from ...backbones.backbone import Backbone
from ...errors import InputError
from ...interface import ExplainerBase
from ...method.masking import mask_images, minmax_normalize
from .common import prepare, single_classes


class RISE(ExplainerBase):
    """Randomized Input Sampling for Explanation: average random masks weighted by the class
    probability of each masked image. Costs ``n_masks`` backbone forwards per image.

    Masks are ``cells`` x ``cells`` Bernoulli(``keep``) grids, bilinearly upsampled with a random
    sub-cell shift (as in the paper); they are drawn once per image size from ``seed``.
    """

    def __init__(
        self,
        backbone: Backbone,
        n_masks: int = 1000,
        cells: int = 7,
        keep: float = 0.5,
        batch_size: int = 100,
        seed: int = 0,
        progress: bool = False,
    ):
        if n_masks < 1 or cells < 1 or not 0 < keep < 1:
            raise InputError(f"RISE needs n_masks >= 1, cells >= 1 and 0 < keep < 1; got {n_masks}, {cells}, {keep}")
        self.backbone, self.n_masks, self.cells, self.keep = backbone, n_masks, cells, keep
        self.batch_size, self.seed, self.progress = batch_size, seed, progress
        self._masks: dict[tuple[int, int], torch.Tensor] = {}
        self.name = "rise"

    def masks(self, size: tuple[int, int]) -> torch.Tensor:
        """The (n_masks, H, W) soft masks used for images of ``size``."""
        if size not in self._masks:
            gen = torch.Generator().manual_seed(self.seed)
            grid = (torch.rand(self.n_masks, 1, self.cells, self.cells, generator=gen) < self.keep).float()
            cell_h, cell_w = math.ceil(size[0] / self.cells), math.ceil(size[1] / self.cells)
            big = nn.functional.interpolate(
                grid, size=((self.cells + 1) * cell_h, (self.cells + 1) * cell_w), mode="bilinear", align_corners=False
            )
            dy = torch.randint(0, cell_h, (self.n_masks,), generator=gen)
            dx = torch.randint(0, cell_w, (self.n_masks,), generator=gen)
            crops = [big[i, 0, dy[i] : dy[i] + size[0], dx[i] : dx[i] + size[1]] for i in range(self.n_masks)]
            self._masks[size] = torch.stack(crops)
        return self._masks[size]

    @torch.no_grad()
    def explain(self, images: torch.Tensor, classes: Any = None) -> torch.Tensor:
        with self.backbone.evaluating():
            bb = self.backbone
            images = prepare(bb, images)
            chosen = single_classes(classes, bb.model(bb.normalize(images)))
            masks = self.masks(tuple(images.shape[-2:])).to(images.device)
            maps = []
            for image, cls in tqdm(list(zip(images, chosen)), desc="RISE", disable=not self.progress, leave=False):
                score = torch.zeros(masks.shape[1:], device=images.device)
                for start in range(0, self.n_masks, self.batch_size):
                    chunk = masks[start : start + self.batch_size]
                    batch = image.unsqueeze(0).expand(len(chunk), -1, -1, -1)
                    probs = bb.model(mask_images(batch, chunk, bb.family, bb.normalize)).softmax(dim=1)[:, cls]
                    score += torch.einsum("n,nhw->hw", probs, chunk)
                maps.append(score / (self.n_masks * self.keep))
            return minmax_normalize(torch.stack(maps))
