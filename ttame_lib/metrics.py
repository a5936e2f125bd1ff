"""Localisation metrics against ground-truth masks (composite scenes have exact ones)."""

from __future__ import annotations

import torch

from .errors import InputError


def _check(maps: torch.Tensor, masks: torch.Tensor) -> None:
    if maps.ndim != 3 or masks.shape != maps.shape:
        raise InputError(
            f"maps and masks must both be (B, H, W) of the same shape; got {tuple(maps.shape)} and {tuple(masks.shape)}"
        )
    if maps.device != masks.device:
        raise InputError(f"maps are on {maps.device} but masks on {masks.device}; move one with .to(...)")
    if torch.isnan(maps).any():
        raise InputError("maps contain NaN")


def pointing_game(maps: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Per image: 1.0 if the map's maximum lies inside the mask, else 0.0.

    Ties (several pixels share the maximum, e.g. a constant map) count as a hit only if
    *all* of them are inside the mask, so a flat map cannot score by luck.
    """
    _check(maps, masks)
    peak = maps.flatten(1).max(dim=1, keepdim=True).values
    at_peak = maps.flatten(1) == peak
    inside = masks.flatten(1).bool()
    return (at_peak & ~inside).any(dim=1).logical_not().float()


@torch.no_grad()
def dataset_pointing_game(explainer, dataset, count: int = 200, batch_size: int = 32) -> float:
    """Mean pointing-game hit rate of ``explainer`` (predicted classes) on the first ``count`` scenes."""
    count = min(count, len(dataset))
    hits = []
    for start in range(0, count, batch_size):
        items = [dataset[i] for i in range(start, min(start + batch_size, count))]
        images = torch.stack([item[0] for item in items])
        masks = torch.stack([item[2] for item in items]).to(explainer.device)
        hits.append(pointing_game(explainer.explain(images), masks))
    return float(torch.cat(hits).mean())
