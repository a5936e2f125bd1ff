"""Checks on user input, each failing with a message that names the problem and the fix."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from .errors import InputError

# Values a hair outside [0, 1] come from resampling; anything further out is a normalised image.
_RANGE_TOLERANCE = 1e-3


def check_images(
    images: torch.Tensor,
    *,
    channels: int = 3,
    fixed_size: tuple[int, int] | None = None,
    patch_size: tuple[int, int] | None = None,
) -> torch.Tensor:
    """Validate a batch of [0, 1] float images of shape (B, C, H, W) and return it unchanged."""
    fix = "Prepare images with backbone.preprocess(...) and stack them: torch.stack([...])."
    if not isinstance(images, torch.Tensor):
        raise InputError(
            f"images must be a torch.Tensor of shape (B, {channels}, H, W); got {type(images).__name__}. {fix}"
        )
    if images.ndim == 3 and images.shape[0] == channels:
        raise InputError(
            f"got a single image of shape {tuple(images.shape)}; add the batch dimension: images.unsqueeze(0)"
        )
    if images.ndim != 4:
        raise InputError(f"images must have shape (B, {channels}, H, W); got {tuple(images.shape)}. {fix}")
    if images.shape[1] != channels:
        hint = " They look channels-last: use images.permute(0, 3, 1, 2)." if images.shape[-1] == channels else ""
        raise InputError(f"images must have {channels} channels in dim 1; got shape {tuple(images.shape)}.{hint}")
    if images.shape[0] == 0:
        raise InputError("images is an empty batch (B = 0)")
    if not images.is_floating_point():
        raise InputError(
            f"images must be float in [0, 1]; got dtype {images.dtype}. Convert with images.float() / 255."
        )
    if fixed_size is not None and tuple(images.shape[-2:]) != tuple(fixed_size):
        raise InputError(
            f"this backbone only accepts {fixed_size[0]}x{fixed_size[1]} inputs; got "
            f"{images.shape[-2]}x{images.shape[-1]}. Resize/crop with backbone.preprocess(...)."
        )
    if patch_size is not None and (images.shape[-2] % patch_size[0] or images.shape[-1] % patch_size[1]):
        raise InputError(
            f"image size {images.shape[-2]}x{images.shape[-1]} is not a multiple of the ViT patch size "
            f"{patch_size[0]}x{patch_size[1]}; resize or crop to a multiple."
        )
    lo, hi = torch.aminmax(images.detach())
    lo, hi = float(lo), float(hi)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise InputError("images contain NaN or infinite values")
    if lo < -_RANGE_TOLERANCE or hi > 1 + _RANGE_TOLERANCE:
        raise InputError(
            f"images must be in [0, 1]; got values in [{lo:.3g}, {hi:.3g}]. ttame_lib normalises images itself "
            "(mean/std of the backbone); if yours are already normalised, undo it with "
            "backbone.preprocessing.denormalize(images)."
        )
    return images


def resolve_classes(
    classes: int | Sequence[int] | torch.Tensor | None,
    logits: torch.Tensor,
) -> torch.Tensor:
    """Turn the user's ``classes`` into a long tensor (B,) or (B, k); ``None`` means the predicted class."""
    batch, num_classes = logits.shape[0], logits.shape[-1]
    if classes is None:
        return logits.argmax(dim=1)
    if isinstance(classes, bool):
        raise InputError("classes must be integers, not bool")
    if isinstance(classes, int):
        result = torch.full((batch,), classes, dtype=torch.long, device=logits.device)
    else:
        result = torch.as_tensor(classes, device=logits.device)
        if result.is_floating_point() or result.dtype == torch.bool:
            raise InputError(f"classes must be integer indices; got dtype {result.dtype}")
        result = result.long()
        if result.ndim == 0:
            result = result.expand(batch)
        elif result.ndim > 2 or result.shape[0] != batch:
            raise InputError(
                f"classes has shape {tuple(result.shape)} for {batch} image(s); pass one int for all images, "
                f"one index per image (shape ({batch},)), or k per image (shape ({batch}, k))"
            )
    bad = (result < 0) | (result >= num_classes)
    if bad.any():
        raise InputError(
            f"class index {int(result[bad][0])} out of range: the backbone has {num_classes} classes "
            f"(valid indices 0..{num_classes - 1})"
        )
    return result
