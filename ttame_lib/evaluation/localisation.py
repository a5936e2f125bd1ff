"""Localisation metrics against ground-truth masks (composite scenes have exact ones).

Every metric returns one score per image (a float tensor of shape (B,)), so callers can
average, bootstrap or break results down by class themselves.
"""

from __future__ import annotations

import torch

from ..errors import InputError


def check_maps(maps: torch.Tensor, like: torch.Tensor, what: str = "masks") -> None:
    """Explanation maps must be (B, H, W), finite, and match ``like`` in batch, size and device.

    ``like`` is either masks (B, H, W) or images (B, C, H, W).
    """
    if not isinstance(maps, torch.Tensor) or maps.ndim != 3:
        shape = tuple(maps.shape) if isinstance(maps, torch.Tensor) else type(maps).__name__
        raise InputError(f"maps must be a (B, H, W) tensor, one map per image; got {shape}")
    expected = (like.shape[0], *like.shape[-2:])
    if tuple(maps.shape) != tuple(expected):
        raise InputError(
            f"maps {tuple(maps.shape)} do not match {what} {tuple(like.shape)}: expected {tuple(expected)}. "
            "Upsample maps to the image size with ttame_lib.upsample(maps, images.shape[-2:])."
        )
    if maps.device != like.device:
        raise InputError(f"maps are on {maps.device} but {what} on {like.device}; move one with .to(...)")
    if not maps.is_floating_point():
        raise InputError(f"maps must be floating point; got {maps.dtype}")
    bad = ~torch.isfinite(maps).flatten(1).all(dim=1)
    if bad.any():
        raise InputError(f"maps contain NaN or infinite values (images {bad.nonzero().flatten().tolist()})")


def _check(maps: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    if masks.ndim != 3:
        raise InputError(f"masks must be (B, H, W); got {tuple(masks.shape)}")
    check_maps(maps, masks)
    inside = masks.flatten(1).bool()
    empty = ~inside.any(dim=1)
    if empty.any():
        raise InputError(f"masks of images {empty.nonzero().flatten().tolist()} are empty; nothing to localise")
    return inside


def pointing_game(maps: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Per image: 1.0 if the map's maximum lies inside the mask, else 0.0.

    Ties (several pixels share the maximum: a plateau from upsampling a coarse map, or a
    constant map) score the share of tied pixels inside the mask, i.e. the expected hit rate
    if the tie were broken at random. So a flat map scores the object's area share (chance),
    never a lucky 1, and the result does not depend on pixel order.
    """
    inside = _check(maps, masks)
    flat = maps.flatten(1)
    at_peak = flat == flat.max(dim=1, keepdim=True).values
    return (at_peak & inside).sum(dim=1).float() / at_peak.sum(dim=1).float()


def energy_pointing_game(maps: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Per image: the share of the map's mass inside the mask (Score-CAM's energy-based pointing game).

    Maps must be non-negative. A constant map scores exactly the mask's area share (the
    chance level); an all-zero map has no mass and scores 0.
    """
    inside = _check(maps, masks)
    flat = maps.flatten(1)
    if (flat < 0).any():
        raise InputError("energy pointing game needs non-negative maps; min-max normalise them first")
    total = flat.sum(dim=1)
    return torch.where(total > 0, (flat * inside).sum(dim=1) / total.clamp_min(1e-12), torch.zeros_like(total))


def top_k_iou(maps: torch.Tensor, masks: torch.Tensor, percent: float = 10.0) -> torch.Tensor:
    """Per image: IoU between the mask and the top ``percent`` % of pixels of the map.

    Pixels tied with the k-th largest value are all included, so a constant map selects the
    whole image (IoU = the mask's area share) instead of an arbitrary subset.
    """
    if not 0 < percent <= 100:
        raise InputError(f"percent must be in (0, 100]; got {percent}")
    inside = _check(maps, masks)
    flat = maps.flatten(1)
    k = max(1, round(flat.shape[1] * percent / 100))
    kth = flat.topk(k, dim=1).values[:, -1:]
    chosen = flat >= kth
    intersection = (chosen & inside).sum(dim=1)
    union = (chosen | inside).sum(dim=1)
    return intersection.float() / union.float()


def mask_area(masks: torch.Tensor) -> torch.Tensor:
    """Per image: the share of pixels inside the mask (the chance level of several metrics)."""
    return masks.flatten(1).float().mean(dim=1)


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


@torch.no_grad()
def object_classes(backbone, images: torch.Tensor, masks: torch.Tensor, batch_size: int = 32) -> torch.Tensor:
    """The class ``backbone`` gives each image's masked object when it sees the object alone.

    Each object is cut out along its mask, on mid-grey, cropped to the mask's bounding box and
    resized to the image size. An ImageNet classifier shown a composite scene often names the
    background ("seashore", "valley") rather than the pasted object; the pointing game against
    the object's mask is only a fair question for the class the classifier gives the object.
    """
    if images.ndim != 4:
        raise InputError(f"images must be (B, 3, H, W) in [0, 1]; got {tuple(images.shape)}")
    inside = _check(images[:, 0], masks).reshape(masks.shape)  # raises on an empty mask: no object to cut out
    height, width = images.shape[-2:]
    crops = []
    for image, mask in zip(images, inside):
        rows, cols = torch.nonzero(mask, as_tuple=True)
        top, bottom, left, right = int(rows.min()), int(rows.max()) + 1, int(cols.min()), int(cols.max()) + 1
        keep = mask[top:bottom, left:right]
        crop = torch.where(keep, image[:, top:bottom, left:right], torch.full_like(image[:, :1, :1], 0.5))
        crops.append(torch.nn.functional.interpolate(crop[None], size=(height, width), mode="bilinear")[0])
    objects = torch.stack(crops)
    return torch.cat(
        [backbone(objects[i : i + batch_size]).argmax(1).cpu() for i in range(0, len(objects), batch_size)]
    )
