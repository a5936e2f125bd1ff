"""The T-TAME explainer: a frozen backbone, hooked layers, an adapter and the attention mechanism."""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch

from ..backbones.backbone import Backbone
from ..errors import CheckpointError, LayoutError
from ..interface import ExplainerBase
from ..validation import resolve_classes
from ..version import __version__
from .adapter import FeatureMapAdapter, Layout, channels_of, infer_layout
from .attention import AttentionMechanism
from .checkpoint import FORMAT, FORMAT_VERSION, atomic_save, check_compatible, read_checkpoint
from .features import FeatureExtractor, probe_shapes
from .loss import LossWeights, TTAMELoss
from .masking import explanation_maps, mask_images, upsample
from .training import batch_loss, fit


class TTAME(ExplainerBase):
    """Trainable Attention Mechanism for Explanations, for any CNN or ViT backbone.

    >>> bb = load_backbone("resnet50", weights=None)
    >>> ex = TTAME(bb)                       # the backbone's layer preset
    >>> maps = ex.explain(images)            # (B, H, W) in [0, 1], predicted classes
    >>> ex.fit(train_loader, epochs=2)       # trains only the attention mechanism

    Images are float tensors (B, 3, H, W) in [0, 1]; the explainer normalises them itself.
    ``seed`` draws the attention mechanism's initial weights (the global RNG is left untouched).
    """

    name = "ttame"

    def __init__(
        self,
        backbone: Backbone,
        layers: Sequence[str] | None = None,
        *,
        gate_with_class_token: bool = False,
        max_size: int = 56,
        loss_weights: LossWeights | None = None,
        regularize: str = "batch",
        layouts: dict[str, Layout] | None = None,
        seed: int = 0,
    ):
        self.backbone = backbone
        if isinstance(layers, str):  # one layer name, not a sequence of characters
            layers = [layers]
        self.layers = list(layers) if layers is not None else list(backbone.default_layers)
        self.extractor = FeatureExtractor(backbone.model, self.layers, backbone.name)
        try:
            self._build(layouts, gate_with_class_token, max_size, loss_weights, regularize, seed)
        except BaseException:
            self.extractor.close()  # a refused configuration leaves no hook on the backbone
            raise

    def _build(
        self,
        layouts: dict[str, Layout] | None,
        gate_with_class_token: bool,
        max_size: int,
        loss_weights: LossWeights | None,
        regularize: str,
        seed: int,
    ) -> None:
        """Everything after hooking: probe the layers, build the adapter, the loss and the attention."""
        backbone = self.backbone
        self.layouts = self._probe_layouts(layouts or {})
        self.adapter = FeatureMapAdapter(
            layouts=[layout for layout, _ in self.layouts],
            patch_size=backbone.patch_size,
            num_prefix_tokens=backbone.num_prefix_tokens,
            gate_with_class_token=gate_with_class_token,
        )
        if gate_with_class_token and "tokens" not in self.adapter.layouts:
            raise LayoutError("gate_with_class_token only applies to ViT token layers; none of the layers emits tokens")
        self.gate_with_class_token = gate_with_class_token
        self.loss_fn = TTAMELoss(loss_weights, regularize)
        # Initialise from the seed without disturbing the caller's global RNG.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.attention = AttentionMechanism([c for _, c in self.layouts], backbone.num_classes, max_size)
        self.attention.to(backbone.device)
        self.history: list[dict[str, float]] = []
        # How many training targets each class has had: an explainer only knows the classes it saw.
        # None until the first training step (and for checkpoints written before it was recorded).
        self.target_counts: torch.Tensor | None = None
        self.min_targets = 20
        # Where the fusion started: "random" (the paper) or "classifier" (head_init.initialise_from_classifier).
        self.initialisation = "random"
        self._warned_classes: set[int] = set()

    # ------------------------------------------------------------------ set-up
    def _probe_layouts(self, given: dict[str, Layout]) -> list[tuple[Layout, int]]:
        """One forward on a blank image tells each layer's output layout and channel count."""
        unknown = set(given) - set(self.layers)
        if unknown:
            raise LayoutError(f"layouts given for layers that are not hooked: {sorted(unknown)}")
        bb = self.backbone
        result = []
        for name, shape in zip(self.layers, probe_shapes(self.extractor, bb), strict=True):
            layout = given.get(name) or infer_layout(shape, bb.input_size, bb.patch_size is not None, name)
            if layout not in ("NCHW", "NHWC", "tokens"):
                raise LayoutError(f"layout for {name!r} must be 'NCHW', 'NHWC' or 'tokens'; got {layout!r}")
            result.append((layout, channels_of(shape, layout)))
        return result

    @property
    def device(self) -> torch.device:
        return self.backbone.device

    @property
    def family(self) -> str:
        return self.backbone.family

    def to(self, device: str | torch.device) -> TTAME:
        """Move backbone and attention mechanism to ``device``; returns self."""
        self.backbone.to(device)
        self.attention.to(device)
        return self

    def close(self) -> None:
        """Detach from the backbone (its modules are left exactly as before)."""
        self.extractor.close()

    def remove_hooks(self) -> None:
        """Deprecated name of :meth:`close` (every explainer now closes the same way)."""
        warnings.warn("TTAME.remove_hooks() is deprecated; use close()", DeprecationWarning, stacklevel=2)
        self.close()

    def __repr__(self) -> str:
        params = sum(p.numel() for p in self.attention.parameters())
        shapes = ", ".join(f"{n} [{lay}, C={c}]" for n, (lay, c) in zip(self.layers, self.layouts, strict=True))
        return (
            f"TTAME(backbone={self.backbone.name!r} ({self.family}), layers: {shapes}; "
            f"{params:,} attention parameters, {self.attention.num_classes} classes)"
        )

    # ------------------------------------------------------------------ forward pieces
    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """Validate [0, 1] images and move them to the explainer's device."""
        return self.backbone.check_images(images).to(self.device)

    def backbone_forward(self, images: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """One backbone forward on [0, 1] images: logits and the adapted (B, C, h, w) feature maps."""
        logits, features = self.extractor(self.backbone.normalize(images))
        return logits, self.adapter(features, tuple(images.shape[-2:]))

    def masked_logits(self, images: torch.Tensor, maps: torch.Tensor) -> torch.Tensor:
        """Backbone logits on images masked by attention maps (B, h, w), in the family's masking domain."""
        masks = upsample(maps, tuple(images.shape[-2:]))
        return self.backbone.model(mask_images(images, masks, self.family, self.backbone.normalize))

    def loss(self, images: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The T-TAME loss for a batch of [0, 1] images (see :func:`ttame_lib.method.training.batch_loss`)."""
        with self.backbone.evaluating():
            return batch_loss(self, self.prepare(images))

    def _warn_untrained(self, chosen: torch.Tensor) -> None:
        """Warn once per class when asked to explain a class with fewer than ``min_targets`` training targets."""
        if self.target_counts is None:
            return
        for cls in sorted(set(chosen.flatten().tolist()) - self._warned_classes):
            count = int(self.target_counts[cls])
            if count < self.min_targets:
                self._warned_classes.add(cls)
                what = "never a training target" if count == 0 else f"a training target only {count} time"
                what += "s" if count > 1 else ""
                start = (
                    "still close to its start, the classifier's class activation map"
                    if self.initialisation == "classifier"
                    else "still close to its random start and may be noise"
                )
                warnings.warn(
                    f"class {cls} ({self.backbone.class_name(cls)!r}) was {what} for this explainer "
                    f"(fewer than {self.min_targets}): its map is barely trained, {start}. An explainer only "
                    "knows the classes it saw; train on images of this class, or see ttame_lib.method.diagnostics."
                    "class_coverage(explainer).",
                    stacklevel=4,  # the caller of explain() (which torch.no_grad wraps once)
                )

    # ------------------------------------------------------------------ public API
    @torch.no_grad()
    def explain(
        self,
        images: torch.Tensor,
        classes: int | Sequence[int] | torch.Tensor | None = None,
        *,
        return_logits: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Explanation maps from exactly one backbone forward.

        Args:
            images: (B, 3, H, W) float in [0, 1].
            classes: ``None`` (each image's predicted class), an int (the same class for
                all), one index per image (B,), or k indices per image (B, k).
            return_logits: also return the backbone's logits (B, num_classes).

        Returns:
            (B, H, W) maps, or (B, k, H, W) for (B, k) classes: the fused map *before* the
            sigmoid, min-max normalised to [0, 1] per map at the attention resolution, then
            upsampled bilinearly (a constant map becomes zeros).
        """
        with self.backbone.evaluating():
            images = self.prepare(images)
            self.attention.eval()
            logits, features = self.backbone_forward(images)
            chosen = resolve_classes(classes, logits)
            self._warn_untrained(chosen)
            maps = explanation_maps(self.attention.fused_logits(features, chosen), tuple(images.shape[-2:]))
            return (maps, logits) if return_logits else maps

    def fit(self, train_loader: Iterable, epochs: int = 8, **kwargs: Any) -> list[dict[str, float]]:
        """Train the attention mechanism (the backbone stays frozen). See :func:`ttame_lib.method.training.fit`."""
        return fit(self, train_loader, epochs, **kwargs)

    # ------------------------------------------------------------------ checkpoints
    def metadata(self) -> dict[str, Any]:
        """What a checkpoint must agree on to be loaded into this explainer."""
        bb = self.backbone
        return {
            "backbone": bb.name,
            "source": bb.source,
            "architecture": bb.architecture,
            "weights": bb.weights,
            "family": bb.family,
            "layers": list(self.layers),
            "layouts": [layout for layout, _ in self.layouts],
            "channels": [c for _, c in self.layouts],
            "num_classes": self.attention.num_classes,
            "mean": list(bb.preprocessing.mean),
            "std": list(bb.preprocessing.std),
            "input_size": list(bb.input_size),
            "gate_with_class_token": self.gate_with_class_token,
            "max_size": self.attention.max_size,
            "loss_weights": self.loss_fn.weights.to_dict(),
            "regularize": self.loss_fn.regularize,
            "initialisation": self.initialisation,  # recorded, not checked on load
        }

    def checkpoint_state(self, training: dict[str, Any] | None = None) -> dict[str, Any]:
        """The checkpoint dict (attention weights on CPU, metadata, history, optional training state)."""
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "library_version": __version__,
            "meta": self.metadata(),
            "attention": {k: v.detach().cpu() for k, v in self.attention.state_dict().items()},
            "history": list(self.history),
            "target_counts": self.target_counts,
            "training": training,
        }

    def save(self, path: str | Path) -> Path:
        """Write the explainer atomically to ``path`` (loads with ``TTAME.load(path, backbone)``)."""
        return atomic_save(self.checkpoint_state(), path)

    def load_state(self, data: dict[str, Any], path: str | Path = "<checkpoint>") -> None:
        """Load attention weights and history from a checkpoint dict after checking it fits."""
        check_compatible(data["meta"], self.metadata(), path)
        if data["meta"].get("weights") != self.backbone.weights:
            warnings.warn(
                f"checkpoint {path} was trained on {data['meta']['backbone']} with weights "
                f"{data['meta'].get('weights')!r}, but this backbone has weights {self.backbone.weights!r}; "
                "its maps explain the other classifier.",
                stacklevel=3,
            )
        broken = [k for k, v in data["attention"].items() if v.is_floating_point() and not torch.isfinite(v).all()]
        if broken:
            raise CheckpointError(
                f"checkpoint {path} holds NaN or infinite attention weights ({broken[:3]}): its maps would be "
                "meaningless. Retrain, or resume from an earlier copy of the file."
            )
        self.attention.load_state_dict(data["attention"])
        self.history = list(data.get("history") or [])
        counts = data.get("target_counts")
        self.target_counts = None if counts is None else counts.clone()
        self.initialisation = data["meta"].get("initialisation", "random")
        self._warned_classes = set()

    @classmethod
    def load(cls, path: str | Path, backbone: Backbone) -> TTAME:
        """Rebuild a saved explainer on ``backbone``; fails clearly if it was trained for another one."""
        data = read_checkpoint(path)
        meta = data["meta"]
        if meta["backbone"] != backbone.name or meta["num_classes"] != backbone.num_classes:
            raise CheckpointError(
                f"checkpoint {path} was trained for backbone {meta['backbone']!r} ({meta['num_classes']} classes, "
                f"layers {meta['layers']}); you passed {backbone.name!r} ({backbone.num_classes} classes). "
                + (
                    "Build the same model and pass it to Backbone.from_model(...)."
                    if meta.get("source") == "custom"
                    else f"Load it with load_backbone({meta['backbone']!r}, ...)."
                )
            )
        # Checkpoints written before the fingerprint was recorded have none; their layer shapes are still checked.
        if meta.get("architecture") not in (None, backbone.architecture):
            raise CheckpointError(
                f"checkpoint {path} was trained on a {meta['backbone']!r} whose parameter layout differs from the "
                f"backbone you passed (architecture fingerprint {meta['architecture']} vs {backbone.architecture}): "
                "same name, different model. Rebuild the exact architecture the explainer was trained on."
            )
        explainer = cls(
            backbone,
            meta["layers"],
            gate_with_class_token=meta["gate_with_class_token"],
            max_size=meta["max_size"],
            loss_weights=LossWeights(**meta["loss_weights"]),
            # Checkpoints from before the option existed were trained with each image's own map.
            regularize=meta.get("regularize", "own"),
            layouts=dict(zip(meta["layers"], meta["layouts"], strict=True)),
        )
        explainer.load_state(data, path)
        return explainer
