"""One backbone forward -> logits and the outputs of the hooked layers.

Why forward hooks and not ``torchvision.models.feature_extraction.create_feature_extractor``:
FX tracing fails on models with data-dependent control flow (many timm models, dynamic
image sizes) and builds a *copy* of the graph, whereas T-TAME needs the final logits and
the intermediate maps from the very same, unmodified module in a single pass. Hooks work
on any ``nn.Module``, cost nothing when inactive, and use the names users see in
``model.named_modules()``.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence

import torch
from torch import nn

from ..backbones.backbone import Backbone
from ..backbones.presets import validate_layers
from ..errors import LayoutError


class FeatureExtractor:
    """Hooks ``layers`` of ``model``; calling it runs one forward and returns (logits, features)."""

    def __init__(self, model: nn.Module, layers: Sequence[str], backbone: str = "backbone"):
        self.model = model
        self.layers = list(layers)
        modules = validate_layers(model, self.layers, backbone)
        self._outputs: dict[str, torch.Tensor] = {}
        self._capturing = False
        self._handles = [module.register_forward_hook(self._make_hook(name)) for name, module in modules.items()]
        # The hooks hold only a weak reference to this extractor, so an explainer that is dropped
        # without close() is still collected, and collecting it removes its hooks: explainers made
        # in a loop do not pile hooks onto the backbone.
        self._release = weakref.finalize(self, _remove_handles, self._handles)

    def _make_hook(self, name: str):
        extractor = weakref.ref(self)

        def hook(module: nn.Module, inputs, output) -> None:
            self = extractor()
            if self is None or not self._capturing:
                return
            if isinstance(output, (tuple, list)):  # e.g. attention modules returning (out, weights)
                output = output[0]
            if not isinstance(output, torch.Tensor):
                raise LayoutError(f"layer {name!r} returns {type(output).__name__}, not a tensor; hook another layer")
            self._outputs[name] = output

        return hook

    def __call__(self, inputs: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Run the model once on (already normalised) ``inputs``; return logits and hooked maps in order."""
        self._outputs = {}
        self._capturing = True
        try:
            logits = self.model(inputs)
        finally:
            self._capturing = False
        if isinstance(logits, (tuple, list)):
            logits = logits[0]
        missing = [name for name in self.layers if name not in self._outputs]
        if missing:
            raise LayoutError(
                f"layer(s) {missing} did not run during the forward pass; pick layers on the forward path"
            )
        features = [self._outputs[name] for name in self.layers]
        self._outputs = {}
        return logits, features

    def close(self) -> None:
        """Unregister the hooks (the model is left exactly as it was)."""
        self._release()


def _remove_handles(handles: list) -> None:
    for handle in handles:
        handle.remove()
    handles.clear()


@torch.no_grad()
def probe_shapes(extractor: FeatureExtractor, backbone: Backbone) -> list[torch.Size]:
    """The output shape of each hooked layer for one blank image at the backbone's input size
    (the backbone keeps its mode)."""
    with backbone.evaluating():
        blank = torch.zeros(1, 3, *backbone.input_size, device=backbone.device)
        _, outputs = extractor(backbone.normalize(blank))
    return [output.shape for output in outputs]
