"""Feature-map adapter: every hooked output becomes a (B, C, h, w) map.

CNN maps pass through; ViT token sequences (B, prefix + h*w, D) lose their prefix tokens
(class, distillation, register) and are laid out on the patch grid taken from the actual
input size and patch size; timm stages that emit channels-last maps (B, H, W, C) are
permuted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch

from ..backbones.presets import plausible_spatial
from ..errors import LayoutError

Layout = Literal["NCHW", "NHWC", "tokens"]


def tokens_to_grid(
    tokens: torch.Tensor,
    grid_size: tuple[int, int],
    num_prefix_tokens: int = 1,
    gate_with_class_token: bool = False,
) -> torch.Tensor:
    """(B, prefix + h*w, D) tokens -> (B, D, h, w); patch token k lands at (k // w, k % w).

    With ``gate_with_class_token`` the patch tokens are multiplied channel-wise by the first
    prefix token (the class token) before reshaping: docs/method.md's adapter variant.
    """
    if tokens.ndim != 3:
        raise LayoutError(f"expected tokens of shape (B, L, D); got {tuple(tokens.shape)}")
    h, w = grid_size
    batch, length, dim = tokens.shape
    if length - num_prefix_tokens != h * w:
        raise LayoutError(
            f"{length} tokens minus {num_prefix_tokens} prefix token(s) = {length - num_prefix_tokens} patch "
            f"tokens, but the patch grid is {h}x{w} = {h * w}. Check the input size, patch size and number of "
            "prefix tokens (class/distillation/register tokens)."
        )
    patches = tokens[:, num_prefix_tokens:, :]
    if gate_with_class_token:
        if num_prefix_tokens < 1:
            raise LayoutError("gate_with_class_token needs a class token, but the backbone has no prefix tokens")
        patches = patches * tokens[:, :1, :]
    return patches.transpose(1, 2).reshape(batch, dim, h, w)


def infer_layout(shape: Sequence[int], input_size: tuple[int, int], has_patches: bool, name: str = "layer") -> Layout:
    """Guess a layer's output layout from its shape on an input of ``input_size``."""
    if len(shape) == 3:
        if not has_patches:
            raise LayoutError(
                f"layer {name!r} emits tokens {tuple(shape)} but the backbone has no known patch size; "
                "hook a layer with a spatial output or load the model through load_backbone"
            )
        return "tokens"
    if len(shape) == 4:
        for layout, (h, w) in (("NCHW", shape[2:4]), ("NHWC", shape[1:3])):
            if plausible_spatial(h, w, input_size):
                if h * w == 1:
                    raise LayoutError(
                        f"layer {name!r} outputs 1x1 maps {tuple(shape)} at input {input_size[0]}x{input_size[1]}: "
                        "global pooling has removed the spatial layout, so no map can point anywhere. Hook a layer "
                        "before the pooling (see backbone.default_layers)"
                    )
                return layout  # type: ignore[return-value]
    raise LayoutError(
        f"layer {name!r} outputs shape {tuple(shape)}, which is not a feature map (B, C, H, W), a channels-last "
        "map (B, H, W, C) or a token sequence (B, L, D) for this input size; hook another layer "
        "(or pass layouts={name: 'NCHW' | 'NHWC' | 'tokens'})"
    )


def channels_of(shape: Sequence[int], layout: Layout) -> int:
    """Number of feature channels of an output with this shape and layout."""
    return int(shape[1] if layout == "NCHW" else shape[-1])


@dataclass
class FeatureMapAdapter:
    """Turns the hooked outputs of one backbone into (B, C, h, w) maps."""

    layouts: list[Layout]
    patch_size: tuple[int, int] | None = None
    num_prefix_tokens: int = 0
    gate_with_class_token: bool = False

    def __call__(self, features: Sequence[torch.Tensor], input_size: tuple[int, int]) -> list[torch.Tensor]:
        maps = []
        for feature, layout in zip(features, self.layouts, strict=True):
            if layout == "NCHW":
                maps.append(feature)
            elif layout == "NHWC":
                maps.append(feature.permute(0, 3, 1, 2))
            else:
                if self.patch_size is None:
                    raise LayoutError("token layers need the backbone's patch size")
                grid = (input_size[0] // self.patch_size[0], input_size[1] // self.patch_size[1])
                maps.append(tokens_to_grid(feature, grid, self.num_prefix_tokens, self.gate_with_class_token))
        return maps
