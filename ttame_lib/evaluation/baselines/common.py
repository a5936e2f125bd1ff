"""What every baseline does the same way: validate the request like T-TAME does."""

from __future__ import annotations

from typing import Any

import torch

from ...backbones.backbone import Backbone
from ...errors import InputError
from ...validation import resolve_classes


def prepare(backbone: Backbone, images: torch.Tensor) -> torch.Tensor:
    """Validated [0, 1] images on the backbone's device."""
    return backbone.check_images(images).to(backbone.device)


def single_classes(classes: Any, logits: torch.Tensor) -> torch.Tensor:
    """One class per image (B,): baselines explain one class per call."""
    chosen = resolve_classes(classes, logits)
    if chosen.ndim != 1:
        raise InputError("baseline explainers take one class per image (shape (B,)); call them once per class")
    return chosen


def check_request(backbone: Backbone, images: torch.Tensor, classes: Any) -> torch.Tensor:
    """Validate images and classes as the other baselines do, without running the backbone."""
    images = prepare(backbone, images)
    if classes is not None:
        # Only the shape (B, num_classes) matters to the checks, so no forward is needed.
        single_classes(classes, torch.empty(images.shape[0], backbone.num_classes, device=images.device))
    return images
