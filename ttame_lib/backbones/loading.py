"""``load_backbone``: a frozen classifier by name, from any registered source.

The three backbones of the paper (torchvision ``vgg16``, ``resnet50``, ``vit_b_16``) get the
paper's exact layer presets; every other model gets an automatic preset (timm's
``feature_info`` for CNNs, the last three blocks for ViTs, a shape probe otherwise) that the
user can override with ``TTAME(backbone, layers=[...])``. For a model you built yourself, use
:meth:`Backbone.from_model`.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import timm
import torch
import torchvision
from torch import nn

from ..errors import InputError, UnknownBackboneError
from .backbone import Backbone, Family, freeze
from .preprocessing import Preprocessing
from .presets import count_classes, transformer_geometry, validate_layers
from .sources import SOURCES, LoadedModel, list_sources


def make_preprocessing(prep: dict[str, Any], input_size: tuple[int, int]) -> Preprocessing:
    """The resize + crop + normalise a source describes, at ``input_size``.

    The crop ratio is kept when the input size differs from the source's crop (e.g. timm ``img_size=``).
    """
    return Preprocessing(
        input_size=input_size,
        resize_size=int(math.floor(min(input_size) / prep["crop_pct"] + 1e-6)),
        mean=tuple(prep["mean"]),
        std=tuple(prep["std"]),
        interpolation=prep["interpolation"],
    )


def check_class_names(names: Sequence[str] | None, num_classes: int) -> list[str] | None:
    """Class names as a list, checked against the model's number of outputs."""
    if names is None:
        return None
    if isinstance(names, str) or len(names) != num_classes:
        count = "a single string" if isinstance(names, str) else f"{len(names)} class names"
        raise InputError(f"class_names: {count} given for a model with {num_classes} classes; pass one name per class")
    return list(names)


def _choose_source(name: Any, source: str) -> str:
    if isinstance(name, nn.Module):
        raise InputError(
            f"load_backbone takes a model *name*; you passed a {type(name).__name__} module. For a model you "
            "built or trained yourself use Backbone.from_model(model, input_size=..., mean=..., std=...)."
        )
    if not isinstance(name, str):
        raise InputError(f"name must be a model name such as 'resnet50'; got {type(name).__name__} {name!r}")
    if source != "auto":
        if source not in SOURCES:
            raise UnknownBackboneError(f"source must be 'auto' or one of {sorted(SOURCES)}; got {source!r}")
        return source
    found = list_sources(name)
    if not found:
        candidates = torchvision.models.list_models(module=torchvision.models) + timm.list_models()
        close = difflib.get_close_matches(name, candidates, n=5, cutoff=0.6)
        raise UnknownBackboneError(
            f"unknown backbone {name!r}: not a torchvision classification model nor a timm model."
            + (f" Did you mean {', '.join(map(repr, close))}?" if close else "")
            + " See torchvision.models.list_models() and timm.list_models()."
        )
    return found[0]


def load_backbone(
    name: str,
    weights: Any = None,
    *,
    source: str = "auto",
    family: Family | None = None,
    class_names: Sequence[str] | None = None,
    device: str | torch.device = "cpu",
    seed: int | None = None,
    layers: Sequence[str] | None = None,
    **model_kwargs: Any,
) -> Backbone:
    """Load a frozen classifier by name.

    Args:
        name: a torchvision classification model (``"resnet50"``, ``"vgg16"``, ``"vit_b_16"``),
            any timm model (``"vit_small_patch16_224"``) or a scene model of the offline world
            (``"scenes_cnn"``). Names several sources know resolve to the first registered
            (see :func:`ttame_lib.backbones.list_sources`) unless ``source=`` says which.
        weights: ``None`` (random init, offline), ``"DEFAULT"``/``True`` (the library's
            pretrained weights: needs a download the first time), a torchvision weights
            enum or its name (``"IMAGENET1K_V2"``), a timm pretrained tag, or a path to a
            local ``.pth``/``.safetensors`` state dict.
        family: ``"cnn"`` or ``"vit"``; inferred. Decides how feature maps are adapted.
        class_names: override the class names (known automatically for ImageNet weights).
        device: where to put the model.
        seed: with random init, draw the weights from this seed (the global RNG is left untouched).
        layers: the layers T-TAME hooks by default (``backbone.default_layers``); the source's
            preset (the paper's layers for its models) when None.
        **model_kwargs: passed to the model constructor (``num_classes``, timm's ``img_size``...).
    """
    if not (weights is None or isinstance(weights, (bool, str, Path, torchvision.models.WeightsEnum))):
        raise InputError(
            f"weights must be None (random init), 'DEFAULT' or True (pretrained), a weights name or tag "
            f"('IMAGENET1K_V2'), a torchvision weights enum or a path to a local file; got "
            f"{type(weights).__name__} {weights!r}"
        )
    chosen = SOURCES[_choose_source(name, source)]
    with torch.random.fork_rng(devices=[], enabled=seed is not None):
        if seed is not None:
            torch.manual_seed(seed)
        loaded = chosen.load(name, weights, model_kwargs)
    if layers is not None:
        if isinstance(layers, str):  # one layer name, not a sequence of characters
            layers = [layers]
        validate_layers(loaded.model, layers, name)
    return assemble_backbone(
        loaded,
        name=name,
        source=chosen.name,
        family=family or chosen.family(name, loaded.model),
        class_names=class_names,
        device=device,
        preset=(lambda model, size: list(layers))
        if layers is not None
        else (lambda model, size: chosen.preset(name, model, size)),
    )


def assemble_backbone(
    loaded: LoadedModel,
    *,
    name: str,
    source: str,
    family: str,
    class_names: Sequence[str] | None,
    device: str | torch.device | None,
    preset: Any,
    num_classes: int | None = None,
) -> Backbone:
    """Freeze a loaded model and bundle it with its preprocessing, geometry and layer preset."""
    if family not in ("cnn", "vit"):
        raise InputError(f"family must be 'cnn' or 'vit'; got {family!r}")
    model = freeze(loaded.model)
    if device is not None:
        model.to(device)
    crop = loaded.preprocessing["crop"]
    input_size = (crop, crop) if isinstance(crop, int) else tuple(crop)
    patch_size, num_prefix, fixed, native_size = transformer_geometry(model)
    input_size = native_size or input_size
    num_classes = count_classes(model) if num_classes is None else num_classes
    return Backbone(
        name=name,
        model=model,
        family=family,  # type: ignore[arg-type]
        preprocessing=make_preprocessing(loaded.preprocessing, input_size),
        default_layers=preset(model, input_size),
        num_classes=num_classes,
        class_names=check_class_names(class_names if class_names is not None else loaded.class_names, num_classes),
        source=source,
        weights=loaded.weights,
        patch_size=patch_size,
        num_prefix_tokens=num_prefix,
        fixed_input_size=fixed,
    )
