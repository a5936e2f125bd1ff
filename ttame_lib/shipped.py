"""The offline world's ready-made explainers: a backbone with its trained T-TAME from data/."""

from __future__ import annotations

import torch

from .backbones import load_backbone
from .errors import CheckpointNotFoundError, InputError
from .explainer import TTAME
from .scenes import DATA_DIR

# Backbone name -> the scene size its explainer was trained at.
SHIPPED_EXPLAINERS: dict[str, int] = {"scenes_cnn": 64, "scenes_vit": 64, "tf_efficientnet_lite0": 224}


def load_shipped_explainer(name: str, device: str | torch.device = "cpu") -> TTAME:
    """The backbone ``name`` (shipped weights) and its shipped T-TAME explainer, ready to explain."""
    if name not in SHIPPED_EXPLAINERS:
        raise InputError(f"no shipped explainer for {name!r}; available: {sorted(SHIPPED_EXPLAINERS)}")
    path = DATA_DIR / "explainers" / f"{name}.ttame"
    if not path.is_file():
        size = SHIPPED_EXPLAINERS[name]
        raise CheckpointNotFoundError(
            f"the shipped explainer {path} is missing; restore it with `git checkout -- data/explainers` "
            f"or retrain it with `python scripts/train_explainer.py {name} --size {size}`"
        )
    return TTAME.load(path, load_backbone(name, weights="DEFAULT", device=device))
