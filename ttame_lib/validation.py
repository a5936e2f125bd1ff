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
    min_size: int = 1,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Validate a batch of [0, 1] float images of shape (B, C, H, W); return it in ``dtype``.

    Any floating dtype is accepted (float64 from NumPy, half precision) and converted to the
    model's ``dtype``: the values are the same image, so converting is not a guess.
    ``min_size`` is the smallest side that still gives the backbone's feature maps a layout.
    """
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
    if images.is_meta:
        raise InputError(
            "images are on the 'meta' device, which holds shapes but no pixel values; create them on 'cpu' or "
            "'cuda' (e.g. load them with backbone.preprocess(...))"
        )
    if images.is_complex() or not images.is_floating_point():
        hint = "Convert with images.float() / 255." if not images.is_complex() else "Use real-valued images."
        raise InputError(f"images must be float in [0, 1]; got dtype {images.dtype}. {hint}")
    if min(images.shape[-2:]) < min_size:
        raise InputError(
            f"images of {images.shape[-2]}x{images.shape[-1]} px are too small for this backbone (smallest side "
            f"{min_size} px): its feature maps would have no spatial layout left to explain. Resize them with "
            "backbone.preprocess(...)."
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
    return images.to(dtype)


def resolve_classes(
    classes: int | Sequence[int] | torch.Tensor | None,
    logits: torch.Tensor,
) -> torch.Tensor:
    """Turn the user's ``classes`` into a long tensor (B,) or (B, k); ``None`` means the predicted class."""
    batch, num_classes = logits.shape[0], logits.shape[-1]
    if classes is None:
        return logits.argmax(dim=1)
    shapes = f"pass one int for all images, one index per image (shape ({batch},)), or k per image (shape ({batch}, k))"
    if isinstance(classes, bool):
        raise InputError("classes must be integers, not bool")
    if _holds_strings(classes):
        raise InputError(
            f"classes must be integer class indices, not names; got {classes!r}. Look a name up with "
            "backbone.class_names.index(name)"
        )
    if isinstance(classes, int):
        if not 0 <= classes < num_classes:  # checked before torch.full, which would overflow on a huge int
            raise _out_of_range(classes, num_classes)
        result = torch.full((batch,), classes, dtype=torch.long, device=logits.device)
    else:
        try:
            result = torch.as_tensor(classes, device=logits.device)
        except (OverflowError, RuntimeError) as err:
            raise InputError(
                f"classes must be class indices in 0..{num_classes - 1}; could not read {classes!r} as integers ({err})"
            ) from err
        except (TypeError, ValueError) as err:
            if "overflow" in str(err).lower():
                raise InputError(
                    f"classes {classes!r} hold a number too large for int64; class indices lie in 0..{num_classes - 1}"
                ) from err
            raise InputError(f"classes must be integer class indices ({shapes}); got {classes!r}") from err
        if result.numel() == 0:
            raise InputError(
                f"classes is empty (shape {tuple(result.shape)}); {shapes}, or None for the predicted class"
            )
        if result.is_floating_point() or result.is_complex() or result.dtype == torch.bool:
            raise InputError(f"classes must be integer indices; got dtype {result.dtype}")
        result = result.long()
        if result.ndim == 0:
            result = result.expand(batch)
        elif result.ndim > 2 or result.shape[0] != batch:
            raise InputError(f"classes has shape {tuple(result.shape)} for {batch} image(s); {shapes}")
    bad = (result < 0) | (result >= num_classes)
    if bad.any():
        raise _out_of_range(int(result[bad][0]), num_classes)
    return result


def _holds_strings(classes: object) -> bool:
    """Is ``classes`` a (nested) list or tuple with a string in it?"""
    if isinstance(classes, str):
        return True
    return isinstance(classes, (list, tuple)) and any(_holds_strings(c) for c in classes)


def _out_of_range(index: int, num_classes: int) -> InputError:
    return InputError(
        f"class index {index} out of range: the backbone has {num_classes} classes (valid indices 0..{num_classes - 1})"
    )
