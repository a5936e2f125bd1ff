"""The ``Backbone`` type: a frozen classifier plus what T-TAME needs to know about it."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch import nn

from ..validation import check_images
from .preprocessing import ImageLike, Preprocessing, to_pil

if TYPE_CHECKING:
    from torchvision.models import WeightsEnum

Family = Literal["cnn", "vit"]


@dataclass
class Backbone:
    """A frozen classifier in eval mode plus its preprocessing, family and default layers.

    Get one with :func:`ttame_lib.load_backbone` (a model by name) or
    :meth:`Backbone.from_model` (any classifier ``nn.Module`` you built or trained yourself).
    """

    name: str
    model: nn.Module
    family: Family
    preprocessing: Preprocessing
    default_layers: list[str]
    num_classes: int
    class_names: list[str] | None = None
    # Where the model came from: a registered source ("torchvision", "timm", "scenes") or
    # "custom" for Backbone.from_model.
    source: str = "custom"
    weights: str | None = None
    patch_size: tuple[int, int] | None = None
    num_prefix_tokens: int = 0
    fixed_input_size: bool = False

    @classmethod
    def from_model(
        cls,
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
        weights: WeightsEnum | str | None = None,
        interpolation: str = "bilinear",
        crop_pct: float = 0.875,
    ) -> Backbone:
        """A backbone from any classifier ``nn.Module`` (yours, torchvision's or timm's).

        What the model carries is read from it (timm's ``pretrained_cfg``; a torchvision
        ViT's image and patch size; a torchvision ``weights`` enum's transforms and class
        names when you pass it); what cannot be known is asked for with a clear error:
        typically ``input_size``, ``mean`` and ``std`` for a model you built yourself.
        The model is frozen in place (eval mode, no gradients), as T-TAME never changes it.
        See :func:`ttame_lib.backbones.custom.backbone_from_model` for every argument.
        """
        from .custom import backbone_from_model

        return backbone_from_model(
            model,
            name=name,
            family=family,
            input_size=input_size,
            mean=mean,
            std=std,
            class_names=class_names,
            layers=layers,
            patch_size=patch_size,
            num_prefix_tokens=num_prefix_tokens,
            weights=weights,
            interpolation=interpolation,
            crop_pct=crop_pct,
        )

    @property
    def input_size(self) -> tuple[int, int]:
        return self.preprocessing.input_size

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def architecture(self) -> str:
        """A short fingerprint of the model's parameter layout (see :func:`architecture_signature`)."""
        return architecture_signature(self.model)

    def to(self, device: str | torch.device) -> Backbone:
        """Move the model to ``device`` (in place) and return self."""
        self.model.to(device)
        return self

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """[0, 1] images -> the model's input domain."""
        return self.preprocessing.normalize(images)

    def preprocess(self, image: ImageLike) -> torch.Tensor:
        """Path / PIL / array -> (3, H, W) float tensor in [0, 1] at the backbone's input size."""
        return self.preprocessing.transform()(to_pil(image))

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    @property
    def min_image_size(self) -> int:
        """The smallest image side accepted: an eighth of the input size (8 px at least).

        Below it a CNN's deep layers shrink to 1x1 and every map is constant.
        """
        return max(8, min(self.input_size) // 8)

    def check_images(self, images: torch.Tensor) -> torch.Tensor:
        """Validate [0, 1] images for this backbone (size, ViT patch multiple); return them in the model's dtype."""
        return check_images(
            images,
            fixed_size=self.input_size if self.fixed_input_size else None,
            patch_size=self.patch_size if self.family == "vit" else None,
            min_size=self.min_image_size,
            dtype=self.dtype,
        )

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """Logits for a batch of [0, 1] images (one plain forward)."""
        with self.evaluating():
            return self.model(self.normalize(images.to(self.device, self.dtype)))

    @contextmanager
    def evaluating(self) -> Iterator[None]:
        """Run the model in eval mode inside the block, then restore every module's own mode.

        Explanations and metrics never change the classifier: a model left in train mode by user
        code would otherwise update its BatchNorm statistics on every explained batch.
        """
        modes = [(module, module.training) for module in self.model.modules()]
        self.model.eval()
        try:
            yield
        finally:
            for module, mode in modes:
                module.training = mode

    def class_name(self, index: int) -> str:
        """Human-readable name of a class index (the index itself when names are unknown)."""
        if self.class_names is None:
            return f"class {index}"
        return self.class_names[index]


def freeze(model: nn.Module) -> nn.Module:
    """Eval mode and no gradients for every parameter: T-TAME never changes the classifier."""
    model.eval()
    model.requires_grad_(False)
    return model


def architecture_signature(model: nn.Module) -> str:
    """16 hex digits hashing every parameter's and buffer's name and shape.

    Two models share it exactly when their state dicts have the same layout, so a checkpoint
    trained on one architecture is refused by another even when both carry the same name
    (two custom models called ``"Sequential"``, a ResNet-18 vs a ResNet-34). The values of
    the weights are not part of it: fine-tuning a model keeps its signature.
    """
    layout: list[Any] = [(key, tuple(value.shape)) for key, value in model.state_dict().items()]
    return hashlib.sha256(repr(layout).encode()).hexdigest()[:16]
