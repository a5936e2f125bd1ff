"""Reading weight files and telling network failures apart from other errors."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import WeightsFileError

WEIGHT_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors", ".ckpt")


def is_weights_path(weights: Any) -> bool:
    """Does ``weights`` name a local file (a Path, or a string with a path separator or weight suffix)?"""
    if isinstance(weights, Path):
        return True
    return isinstance(weights, str) and (weights.endswith(WEIGHT_SUFFIXES) or os.sep in weights)


def asks_for_default(weights: Any) -> bool:
    """``True``, ``"DEFAULT"`` or ``"pretrained"``: the source's own pretrained weights."""
    return weights is True or (isinstance(weights, str) and weights.lower() in ("default", "pretrained"))


def load_state_dict_file(model: nn.Module, path: str | Path, *, what: str) -> None:
    """Load a local ``.pth``/``.safetensors`` state dict into ``model`` with clear errors."""
    path = Path(path)
    if not path.is_file():
        raise WeightsFileError(f"weights file for {what} not found: {path}. Check the path or download the file again.")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise WeightsFileError(
            f"weights file {path} holds pickled Python objects (probably a whole model saved with "
            "torch.save(model)), not a state dict of tensors, so it is not loaded (unpickling can run code). "
            "Re-save it with torch.save(model.state_dict(), path); or, if you trust the file, load the model "
            "yourself with torch.load(path, weights_only=False) and wrap it with Backbone.from_model(model, ...)"
        ) from err
    except Exception as err:  # noqa: BLE001 - any other read failure means the same thing to the user
        raise WeightsFileError(
            f"could not read weights file {path} ({err}); it is corrupt or truncated: download it again."
        ) from err
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
    state = {k.removeprefix("module."): v for k, v in state.items()}
    expected = model.state_dict()
    mismatched = [k for k, v in state.items() if k in expected and expected[k].shape != v.shape]
    result = model.load_state_dict({k: v for k, v in state.items() if k not in mismatched}, strict=False)
    if result.missing_keys or result.unexpected_keys or mismatched:
        raise WeightsFileError(
            f"weights file {path} does not fit {what}: {len(result.missing_keys)} missing keys "
            f"{result.missing_keys[:5]}, {len(result.unexpected_keys)} unexpected keys {result.unexpected_keys[:5]}. "
            "Is it for another architecture or another num_classes?"
        )


def is_network_error(err: BaseException) -> bool:
    """Did a download fail (as opposed to a bug or a bad argument)?"""
    module = type(err).__module__
    return isinstance(err, (OSError, ConnectionError)) or module.startswith(
        ("huggingface_hub", "requests", "urllib3", "httpx")
    )
