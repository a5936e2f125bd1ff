"""Upsampling, normalising and applying explanation maps to images (docs/method.md, "Masking")."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from ..errors import InputError


def upsample(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinearly resize maps (B, h, w) or (B, k, h, w) to ``size``."""
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps
    if maps.ndim == 3:
        return F.interpolate(maps.unsqueeze(1), size=size, mode="bilinear", align_corners=False).squeeze(1)
    return F.interpolate(maps, size=size, mode="bilinear", align_corners=False)


def minmax_normalize(maps: torch.Tensor, eps: float = 1e-12, rel_tol: float = 1e-5) -> torch.Tensor:
    """Scale each map to [0, 1] independently. A constant map becomes all zeros (nothing stands out).

    "Constant" is judged relative to the map's own scale: a spread below ``rel_tol`` times the
    largest magnitude (float rounding, e.g. a constant map after bilinear upsampling) is not
    stretched into full-contrast noise.
    """
    flat = maps.flatten(-2)
    lo = flat.min(dim=-1, keepdim=True).values
    hi = flat.max(dim=-1, keepdim=True).values
    span = hi - lo
    scale = torch.maximum(lo.abs(), hi.abs())
    varies = span > torch.clamp(rel_tol * scale, min=eps)
    scaled = torch.where(varies, (flat - lo) / span.clamp_min(eps), torch.zeros_like(flat))
    return scaled.view_as(maps)


def explanation_maps(fused_logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """T-TAME's explanation: min-max of the pre-sigmoid fused maps per map at attention resolution,
    then bilinear upsampling to ``size``. Upsampling a [0, 1] map bilinearly keeps it in [0, 1].

    (Min-max of the sigmoid instead ranks pixels the same way but compresses the soft values that
    AD / IC use as masks.)
    """
    return upsample(minmax_normalize(fused_logits), size)


def mask_images(
    images: torch.Tensor,
    masks: torch.Tensor,
    family: str,
    normalize: Callable[[torch.Tensor], torch.Tensor],
) -> torch.Tensor:
    """Apply soft masks (B, H, W) to [0, 1] images and return the *normalised* model input.

    CNNs: mask the raw image, then normalise (removed pixels become black).
    ViTs: normalise, then mask (removed pixels become the dataset mean colour, which ViTs
    tolerate better than out-of-distribution black).
    """
    if masks.shape[0] != images.shape[0] or tuple(masks.shape[-2:]) != tuple(images.shape[-2:]):
        raise InputError(f"masks {tuple(masks.shape)} do not match images {tuple(images.shape)}")
    m = masks.unsqueeze(1).to(images.dtype)
    if family == "cnn":
        return normalize(images * m)
    if family == "vit":
        return normalize(images) * m
    raise InputError(f"family must be 'cnn' or 'vit'; got {family!r}")
