"""The offline world's own classifiers (12 scene classes), trained by ``scripts/train_backbone.py``.

Registered as the ``"scenes"`` backbone source, so ``load_backbone("scenes_cnn", weights="DEFAULT")``
loads the committed weights from ``data/backbones/``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import timm
from torch import nn

from ..backbones.sources import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    BackboneSource,
    LoadedModel,
    register_source,
    timm_family,
    timm_source_preset,
)
from ..backbones.weights import asks_for_default, load_state_dict_file
from ..errors import InputError, UnknownBackboneError, WeightsFileError
from .scenes import DATA_DIR, load_assets


@dataclass(frozen=True)
class SceneBackbone:
    """A small timm architecture trained from scratch on composite scenes (weights in data/backbones/)."""

    architecture: str
    kwargs: tuple[tuple[str, Any], ...]
    input_size: tuple[int, int]
    weights_file: str  # relative to the repository root
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    layers: tuple[str, ...] | None = None  # T-TAME's default layers; None: timm's preset for the architecture


SCENE_BACKBONES: dict[str, SceneBackbone] = {
    # At 64 px the last stages are coarse (layer3 4x4, layer4 2x2): T-TAME hooks layer1 and layer2 (16x16, 8x8),
    # the set that localised best on validation scenes; adding layer3 cost 13-16 points of pointing game there
    # (README, "The offline world").
    "scenes_cnn": SceneBackbone(
        "resnet10t", (), (64, 64), "data/backbones/scenes_cnn.pth", layers=("layer1", "layer2")
    ),
    "scenes_vit": SceneBackbone(
        "vit_tiny_patch16_224",
        # Average pooling of the patch tokens (the class token is still there, as in a standard ViT):
        # pooling by average is the usual choice for ViTs trained from scratch on little data
        # (Beyer et al. 2022, "Better plain ViT baselines for ImageNet-1k").
        (
            ("img_size", 64),
            ("patch_size", 8),
            ("depth", 6),
            ("num_heads", 3),
            ("embed_dim", 192),
            ("global_pool", "avg"),
        ),
        (64, 64),
        "data/backbones/scenes_vit.pth",
    ),
}


def build_scene_model(name: str) -> nn.Module:
    """The untrained architecture of a scene backbone, with one output per scene class."""
    spec = SCENE_BACKBONES[name]
    return timm.create_model(spec.architecture, num_classes=len(load_assets().classes), **dict(spec.kwargs))


def scene_backbone_report(name: str) -> dict[str, Any]:
    """The JSON report written when the committed weights of a scene backbone were trained.

    It holds the training command, time and loss history, and the accuracy on held-out
    compositions and held-out object instances.
    """
    if name not in SCENE_BACKBONES:
        raise UnknownBackboneError(f"{name!r} is not a scene backbone; choose one of {sorted(SCENE_BACKBONES)}")
    path = (DATA_DIR.parent / SCENE_BACKBONES[name].weights_file).with_suffix(".json")
    if not path.is_file():
        raise WeightsFileError(
            f"the training report of {name} is missing ({path}); restore it with `git checkout -- data/`"
        )
    return json.loads(path.read_text())


def load_scene_model(name: str, weights: Any, model_kwargs: dict[str, Any]) -> LoadedModel:
    """A scene backbone, untrained (``weights=None``), with its committed weights or a file."""
    if model_kwargs:
        raise InputError(f"{name} has a fixed architecture; it takes no model arguments (got {sorted(model_kwargs)})")
    spec = SCENE_BACKBONES[name]
    loaded = LoadedModel(build_scene_model(name), class_names=list(load_assets().classes))
    if asks_for_default(weights):
        weights = DATA_DIR.parent / spec.weights_file
        if not Path(weights).is_file():
            raise WeightsFileError(
                f"the trained weights of {name} are missing ({weights}); restore them with `git checkout -- data/` "
                f"or retrain with `python scripts/train_backbone.py {name}`"
            )
    if weights not in (None, False):
        load_state_dict_file(loaded.model, weights, what=name)
        loaded.weights = str(Path(weights).name)
    loaded.preprocessing = dict(
        crop_pct=1.0, crop=spec.input_size, mean=spec.mean, std=spec.std, interpolation="bilinear"
    )
    return loaded


def scene_preset(name: str, model: nn.Module, input_size: tuple[int, int]) -> list[str]:
    """The layers T-TAME hooks by default on a scene model: its own choice, else timm's preset."""
    spec = SCENE_BACKBONES.get(name)
    if spec is not None and spec.layers is not None:
        return list(spec.layers)
    return timm_source_preset(name, model, input_size)


register_source(
    BackboneSource(
        name="scenes",
        provides=SCENE_BACKBONES.__contains__,
        load=load_scene_model,
        # The scene models are timm architectures: timm's presets and family rule apply, unless a
        # scene model names its own layers.
        preset=scene_preset,
        family=timm_family,
    ),
    first=True,
)
