"""The offline world's ready-made explainers: a backbone with its trained T-TAME from data/."""

from __future__ import annotations

from pathlib import Path

import torch

from ..backbones.backbone import Backbone
from ..backbones.loading import load_backbone
from ..errors import CheckpointNotFoundError, InputError
from ..method.checkpoint import read_checkpoint
from ..method.explainer import TTAME
from .scenes import DATA_DIR

# Backbone name -> the scene size its explainer was trained at.
SHIPPED_EXPLAINERS: dict[str, int] = {"scenes_cnn": 64, "scenes_vit": 64, "tf_efficientnet_lite0": 224}


def shipped_explainer_path(name: str) -> Path:
    """The file of the shipped explainer for backbone ``name`` (e.g. for ``make_explainer(..., checkpoint=)``)."""
    if name not in SHIPPED_EXPLAINERS:
        raise InputError(f"no shipped explainer for {name!r}; available: {sorted(SHIPPED_EXPLAINERS)}")
    path = DATA_DIR / "explainers" / f"{name}.ttame"
    if not path.is_file():
        size = SHIPPED_EXPLAINERS[name]
        raise CheckpointNotFoundError(
            f"the shipped explainer {path} is missing; restore it with `git checkout -- data/explainers` "
            f"or retrain it with `python scripts/train_explainer.py {name} --size {size}`"
        )
    return path


def load_shipped_explainer(name: str, device: str | torch.device = "cpu") -> TTAME:
    """The backbone ``name`` (shipped weights) and its shipped T-TAME explainer, ready to explain."""
    path = shipped_explainer_path(name)
    return TTAME.load(path, load_backbone(name, weights="DEFAULT", device=device))


def shipped_explainer_for(backbone: Backbone) -> TTAME | None:
    """The shipped explainer of ``backbone`` if there is one for its name and weights, else None.

    For notebooks whose backbone is a parameter: the shipped explainers were trained for the
    shipped weights (``weights="DEFAULT"``), and another model has none.
    """
    if backbone.name not in SHIPPED_EXPLAINERS:
        return None
    path = shipped_explainer_path(backbone.name)
    if read_checkpoint(path)["meta"].get("weights") != backbone.weights:
        return None
    return TTAME.load(path, backbone)
