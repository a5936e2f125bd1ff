"""``Backbone.from_model``: explain a classifier you built or trained yourself.

It reads what the model carries (timm's ``pretrained_cfg``, a torchvision ViT's image and patch
size, a torchvision weights enum's transforms and class names) and asks, with an error that
names the argument, for what cannot be known: usually the input size and normalisation a
hand-built model was trained with.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torchvision
from torch import nn

from ..errors import InputError
from .backbone import Backbone, Family
from .loading import assemble_backbone
from .presets import (
    probe_spatial_preset,
    probe_token_preset,
    timm_preset,
    torchvision_preset,
    transformer_geometry,
    validate_layers,
)
from .sources import LoadedModel, timm_preprocessing, weights_enum_preprocessing


def _pair(value: int | Sequence[int], what: str) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int) and v > 0 for v in pair):
        raise InputError(f"{what} must be a positive int or an (H, W) pair of them; got {value!r}")
    return pair  # type: ignore[return-value]


def _known_preprocessing(model: nn.Module, weights: Any) -> dict[str, Any] | None:
    """What the model or its weights enum say about preprocessing, if anything."""
    if weights is not None and hasattr(weights, "transforms") and hasattr(weights, "meta"):
        return weights_enum_preprocessing(weights)
    if getattr(model, "pretrained_cfg", None):  # every timm model
        return timm_preprocessing(model)
    return None


def _preprocessing(
    model: nn.Module,
    weights: Any,
    input_size: Any,
    mean: Any,
    std: Any,
    interpolation: str,
    crop_pct: float,
) -> dict[str, Any]:
    prep = _known_preprocessing(model, weights) or {}
    _, _, _, native = transformer_geometry(model)
    size = _pair(input_size, "input_size") if input_size is not None else native or prep.get("crop")
    if size is None:
        raise InputError(
            "input_size is unknown for this model: pass input_size=(H, W), the image size it was trained at "
            "(e.g. input_size=224, or 64 for the offline world's scenes)"
        )
    if mean is None:
        mean = prep.get("mean")
    if std is None:
        std = prep.get("std")
    if mean is None or std is None:
        raise InputError(
            "mean and std are unknown for this model: pass the normalisation it was trained with, e.g. "
            "mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225) for ImageNet statistics, or mean=(0, 0, 0), "
            "std=(1, 1, 1) if it takes [0, 1] images as they are"
        )
    for what, value in (("mean", mean), ("std", std)):
        if len(tuple(value)) != 3:
            raise InputError(f"{what} must have one value per RGB channel (3 values); got {value!r}")
    if any(float(s) <= 0 for s in std):
        raise InputError(f"std must be positive in every channel; got {std!r}")
    return dict(
        crop_pct=prep.get("crop_pct", crop_pct),
        crop=size,
        mean=tuple(float(m) for m in mean),
        std=tuple(float(s) for s in std),
        interpolation=prep.get("interpolation", interpolation),
    )


def _family(model: nn.Module, family: Family | None, patch_size: Any) -> Family:
    if family is not None:
        return family
    known_patch, _, _, _ = transformer_geometry(model)
    return "vit" if known_patch is not None or patch_size is not None else "cnn"


def _geometry_overrides(model: nn.Module, family: Family, patch_size: Any, num_prefix_tokens: Any) -> None:
    """Give a hand-built transformer the patch size and prefix-token count the adapter needs."""
    known_patch, known_prefix, _, _ = transformer_geometry(model)
    if family != "vit" or known_patch is not None and patch_size is None:
        return
    if patch_size is None:
        raise InputError(
            "family='vit' needs patch_size= (e.g. 16) for a transformer that is not a timm or torchvision ViT, "
            "so its tokens can be laid out on the patch grid; add num_prefix_tokens= (1 for a class token)"
        )
    if num_prefix_tokens is None:
        raise InputError(
            "num_prefix_tokens= is needed with patch_size=: how many tokens precede the patch tokens "
            "(1 for a class token, 0 for none)"
        )


def _preset(model: nn.Module, family: Family, input_size: tuple[int, int]) -> list[str]:
    if isinstance(model, (torchvision.models.ResNet, torchvision.models.VGG, torchvision.models.VisionTransformer)):
        return torchvision_preset(None, model, input_size)
    if getattr(model, "pretrained_cfg", None):
        return timm_preset(model, input_size)
    if family == "vit":
        return probe_token_preset(model, input_size)
    return probe_spatial_preset(model, input_size)


@torch.no_grad()
def _check_is_classifier(model: nn.Module, input_size: tuple[int, int]) -> int:
    """One forward on a blank image: the model must return (1, num_classes) logits."""
    device = next(model.parameters()).device
    try:
        out = model(torch.zeros(1, 3, *input_size, device=device))
    except Exception as err:  # noqa: BLE001 - whatever fails, the fix is the same
        raise InputError(
            f"the model fails on a (1, 3, {input_size[0]}, {input_size[1]}) image ({type(err).__name__}: {err}); "
            "check input_size= and that the model takes RGB image batches"
        ) from err
    if not isinstance(out, torch.Tensor) or out.ndim != 2:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise InputError(
            f"the model returns {shape} for one image; a classifier must return logits of shape (B, num_classes). "
            "Wrap it so forward() returns the logits tensor (e.g. out.logits)"
        )
    return int(out.shape[1])


def _check_layers(model: nn.Module, layers: Sequence[str] | None, name: str | None) -> None:
    if layers is None:
        return
    if isinstance(layers, str) or not layers:
        raise InputError(f"layers must be a non-empty list of module names (e.g. ['layer3', 'layer4']); got {layers!r}")
    validate_layers(model, layers, name or type(model).__name__)


def backbone_from_model(
    model: nn.Module,
    *,
    name: str | None = None,
    family: Family | None = None,
    input_size: int | tuple[int, int] | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    class_names: Sequence[str] | None = None,
    layers: Sequence[str] | None = None,
    patch_size: int | tuple[int, int] | None = None,
    num_prefix_tokens: int | None = None,
    weights: Any = None,
    interpolation: str = "bilinear",
    crop_pct: float = 0.875,
) -> Backbone:
    """A :class:`Backbone` from any classifier module (frozen in place: eval mode, no gradients).

    Args:
        model: returns logits (B, num_classes) for (B, 3, H, W) images.
        name: shown in reprs and recorded in checkpoints; default the module's class name.
        family: ``"cnn"`` or ``"vit"``; inferred (a ViT is a timm/torchvision ViT or a model given ``patch_size``).
        input_size: the image size it was trained at; read from timm and torchvision ViTs.
        mean, std: its input normalisation; read from timm models and a torchvision ``weights`` enum.
        class_names: one name per output.
        layers: the layers T-TAME hooks by default; found by a probe forward when not given
            (the last three spatial resolutions of a CNN; the last three blocks of a transformer).
        patch_size, num_prefix_tokens: for a hand-built transformer, how its tokens map to the image.
        weights: a torchvision weights enum the model was loaded with (gives preprocessing and
            class names) or a string describing the weights (recorded in checkpoints).
        interpolation, crop_pct: the resize for :meth:`Backbone.preprocess` when the model does not say.
    """
    if not isinstance(model, nn.Module):
        raise InputError(f"model must be a torch.nn.Module classifier; got {type(model).__name__}")
    if next(model.parameters(), None) is None:
        raise InputError("model has no parameters; pass the trained classifier module")
    family = _family(model, family, patch_size)
    if family not in ("cnn", "vit"):
        raise InputError(f"family must be 'cnn' or 'vit'; got {family!r}")
    _geometry_overrides(model, family, patch_size, num_prefix_tokens)
    prep = _preprocessing(model, weights, input_size, mean, std, interpolation, crop_pct)
    size = _pair(prep["crop"], "input_size")
    model.eval()
    num_outputs = _check_is_classifier(model, size)
    enum_names = list(weights.meta["categories"]) if hasattr(weights, "meta") else None
    loaded = LoadedModel(
        model,
        weights=None if weights is None else str(weights),
        class_names=enum_names if enum_names is not None and len(enum_names) == num_outputs else None,
        preprocessing=prep,
    )
    _check_layers(model, layers, name)

    def preset(module: nn.Module, size: tuple[int, int]) -> list[str]:
        found = list(layers) if layers is not None else _preset(module, family, size)
        if not found:
            raise InputError(
                "found no layer with a spatial feature map or token output to hook; pass layers=[...] "
                "(names from model.named_modules())"
            )
        return found

    backbone = assemble_backbone(
        loaded,
        name=name or type(model).__name__,
        source="custom",
        family=family,
        class_names=class_names,
        device=None,
        preset=preset,
        num_classes=num_outputs,  # the forward is the truth (a conv head has no Linear to count)
    )
    if patch_size is not None:
        backbone.patch_size = _pair(patch_size, "patch_size")
        backbone.num_prefix_tokens = int(num_prefix_tokens or 0)
        backbone.fixed_input_size = True
    return backbone
