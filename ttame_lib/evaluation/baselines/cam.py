"""CAM methods from pytorch-grad-cam (Grad-CAM, Grad-CAM++, Score-CAM, Ablation-CAM, XGrad-CAM,
Layer-CAM, Eigen-CAM) behind the common explainer interface.

For ViTs the tokens are turned into a grid by the same adapter function T-TAME uses
(:func:`ttame_lib.method.adapter.tokens_to_grid`). Maps are upsampled to the image and min-max
normalised per image, exactly like T-TAME's, so the metrics treat all methods the same way.
"""

from __future__ import annotations

import contextlib
import io
import weakref
from typing import Any

import numpy as np
import pytorch_grad_cam
import torch
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from ...backbones.backbone import Backbone
from ...errors import InputError, LayerNotFoundError, LayoutError
from ...interface import ExplainerBase
from ...method.adapter import infer_layout, tokens_to_grid
from ...method.features import FeatureExtractor, probe_shapes
from ...method.masking import minmax_normalize, upsample
from .common import prepare, single_classes

CAM_METHODS: dict[str, type] = {
    "gradcam": pytorch_grad_cam.GradCAM,
    "gradcam++": pytorch_grad_cam.GradCAMPlusPlus,
    "scorecam": pytorch_grad_cam.ScoreCAM,
    "ablationcam": pytorch_grad_cam.AblationCAM,
    "xgradcam": pytorch_grad_cam.XGradCAM,
    "layercam": pytorch_grad_cam.LayerCAM,
    "eigencam": pytorch_grad_cam.EigenCAM,
}


class CAMExplainer(ExplainerBase):
    """A pytorch-grad-cam method on one layer of a frozen backbone.

    Args:
        backbone: from :func:`ttame_lib.load_backbone`.
        method: one of :data:`CAM_METHODS`.
        layer: module name; default is the deepest layer T-TAME hooks (``backbone.default_layers[-1]``).
        batch_size: masked forwards per batch for Score-CAM and Ablation-CAM.
        progress: show pytorch-grad-cam's own per-image progress bars (Score-CAM, Ablation-CAM).
    """

    def __init__(
        self,
        backbone: Backbone,
        method: str = "gradcam",
        layer: str | None = None,
        batch_size: int = 32,
        progress: bool = False,
    ):
        if method not in CAM_METHODS:
            raise InputError(f"unknown CAM method {method!r}; choose one of {sorted(CAM_METHODS)}")
        self.backbone, self.method, self.progress = backbone, method, progress
        self.layer = layer or backbone.default_layers[-1]
        modules = dict(backbone.model.named_modules())
        if self.layer not in modules:
            raise LayerNotFoundError([self.layer], [name for name in modules if name], backbone.name)
        self._check_layer_is_spatial()
        self._grid: tuple[int, int] | None = None
        kwargs: dict[str, Any] = {}
        if backbone.family == "vit":
            kwargs["reshape_transform"] = self._tokens_to_grid
            if method == "ablationcam":
                kwargs["ablation_layer"] = pytorch_grad_cam.AblationLayerVit()
        if method == "ablationcam":
            kwargs["batch_size"] = batch_size
        with backbone.evaluating():  # pytorch-grad-cam puts the model in eval mode; keep the user's mode
            self.cam = CAM_METHODS[method](backbone.model, [modules[self.layer]], **kwargs)
        if method == "scorecam":
            self.cam.batch_size = batch_size
        # pytorch-grad-cam's hooks keep only its own recorder alive, not this explainer: when an
        # explainer is dropped without close(), collecting it removes the hooks (as for T-TAME).
        self._release = weakref.finalize(self, self.cam.activations_and_grads.release)

    def _check_layer_is_spatial(self) -> None:
        """A CAM needs a feature map (or ViT tokens) at ``layer``; refuse vectors and 1x1 maps up front."""
        bb = self.backbone
        extractor = FeatureExtractor(bb.model, [self.layer], bb.name)
        try:
            (shape,) = probe_shapes(extractor, bb)
            infer_layout(shape, bb.input_size, bb.patch_size is not None, self.layer)
        except LayoutError as err:
            raise LayoutError(f"{self.method} cannot use this layer: {err}") from None
        finally:
            extractor.close()

    def _tokens_to_grid(self, tokens: torch.Tensor) -> torch.Tensor:
        return tokens_to_grid(tokens, self._grid, self.backbone.num_prefix_tokens)

    @property
    def name(self) -> str:
        return self.method

    def explain(self, images: torch.Tensor, classes: Any = None) -> torch.Tensor:
        """(B, H, W) maps in [0, 1] for ``classes`` (default: the predicted ones)."""
        with self.backbone.evaluating():
            bb = self.backbone
            images = prepare(bb, images)
            targets = None  # pytorch-grad-cam then explains the predicted classes from its own forward
            if classes is not None:
                shape_only = torch.empty(images.shape[0], bb.num_classes, device=images.device)
                targets = [ClassifierOutputTarget(int(c)) for c in single_classes(classes, shape_only)]
            if bb.patch_size is not None:
                self._grid = (images.shape[-2] // bb.patch_size[0], images.shape[-1] // bb.patch_size[1])
            # The backbone's weights are frozen, so gradients reach the hooked layer only if the
            # input itself asks for them.
            inputs = bb.normalize(images).detach().requires_grad_(True)
            # pytorch-grad-cam draws a tqdm bar per image (to stderr) for the masking methods.
            quiet = contextlib.nullcontext() if self.progress else contextlib.redirect_stderr(io.StringIO())
            with torch.enable_grad(), quiet:
                cams = self.cam(inputs, targets)
            bb.model.zero_grad(set_to_none=True)
            maps = torch.from_numpy(np.ascontiguousarray(cams)).float().to(images.device)
            return minmax_normalize(upsample(maps, tuple(images.shape[-2:])))

    def close(self) -> None:
        """Remove pytorch-grad-cam's hooks from the backbone (twice is fine)."""
        self._release()
