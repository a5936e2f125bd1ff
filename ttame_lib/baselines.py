"""Baseline explainers behind T-TAME's interface: ``explain(images, classes=None) -> (B, H, W)``.

- CAM methods come from pytorch-grad-cam (Grad-CAM, Grad-CAM++, Score-CAM, Ablation-CAM,
  XGrad-CAM, Layer-CAM, Eigen-CAM). For ViTs the tokens are turned into a grid by the same
  adapter function T-TAME uses (:func:`ttame_lib.adapter.tokens_to_grid`).
- RISE (Petsiuk et al. 2018) and attention rollout (Abnar & Zuidema 2020) are written here:
  pytorch-grad-cam has neither.

Every map is upsampled to the image size and min-max normalised to [0, 1] per image, exactly
like T-TAME's output, so metrics treat all methods the same way.
"""

from __future__ import annotations

import contextlib
import io
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytorch_grad_cam
import torch
import torch.nn as nn
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from tqdm.auto import tqdm

from .adapter import tokens_to_grid
from .backbones import Backbone
from .errors import InputError, LayerNotFoundError
from .masking import mask_images, minmax_normalize, upsample
from .validation import resolve_classes

CAM_METHODS: dict[str, type] = {
    "gradcam": pytorch_grad_cam.GradCAM,
    "gradcam++": pytorch_grad_cam.GradCAMPlusPlus,
    "scorecam": pytorch_grad_cam.ScoreCAM,
    "ablationcam": pytorch_grad_cam.AblationCAM,
    "xgradcam": pytorch_grad_cam.XGradCAM,
    "layercam": pytorch_grad_cam.LayerCAM,
    "eigencam": pytorch_grad_cam.EigenCAM,
}


def _prepare(backbone: Backbone, images: torch.Tensor) -> torch.Tensor:
    return backbone.check_images(images).to(backbone.device)


def _single_classes(classes: Any, logits: torch.Tensor) -> torch.Tensor:
    chosen = resolve_classes(classes, logits)
    if chosen.ndim != 1:
        raise InputError("baseline explainers take one class per image (shape (B,)); call them once per class")
    return chosen


class CAMExplainer:
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
        self._grid: tuple[int, int] | None = None
        kwargs: dict[str, Any] = {}
        if backbone.family == "vit":
            kwargs["reshape_transform"] = self._tokens_to_grid
            if method == "ablationcam":
                kwargs["ablation_layer"] = pytorch_grad_cam.AblationLayerVit()
        if method == "ablationcam":
            kwargs["batch_size"] = batch_size
        self.cam = CAM_METHODS[method](backbone.model, [modules[self.layer]], **kwargs)
        if method == "scorecam":
            self.cam.batch_size = batch_size

    def _tokens_to_grid(self, tokens: torch.Tensor) -> torch.Tensor:
        return tokens_to_grid(tokens, self._grid, self.backbone.num_prefix_tokens)

    @property
    def name(self) -> str:
        return self.method

    def explain(self, images: torch.Tensor, classes: Any = None) -> torch.Tensor:
        """(B, H, W) maps in [0, 1] for ``classes`` (default: the predicted ones)."""
        bb = self.backbone
        images = _prepare(bb, images)
        targets = None  # pytorch-grad-cam then explains the predicted classes from its own forward
        if classes is not None:
            shape_only = torch.empty(images.shape[0], bb.num_classes, device=images.device)
            targets = [ClassifierOutputTarget(int(c)) for c in _single_classes(classes, shape_only)]
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
        """Remove pytorch-grad-cam's hooks from the backbone."""
        self.cam.activations_and_grads.release()


class RISE:
    """Randomized Input Sampling for Explanation: average random masks weighted by the class
    probability of each masked image. Costs ``n_masks`` backbone forwards per image.

    Masks are ``cells`` x ``cells`` Bernoulli(``keep``) grids, bilinearly upsampled with a random
    sub-cell shift (as in the paper); they are drawn once per image size from ``seed``.
    """

    def __init__(
        self,
        backbone: Backbone,
        n_masks: int = 1000,
        cells: int = 7,
        keep: float = 0.5,
        batch_size: int = 100,
        seed: int = 0,
        progress: bool = False,
    ):
        if n_masks < 1 or cells < 1 or not 0 < keep < 1:
            raise InputError(f"RISE needs n_masks >= 1, cells >= 1 and 0 < keep < 1; got {n_masks}, {cells}, {keep}")
        self.backbone, self.n_masks, self.cells, self.keep = backbone, n_masks, cells, keep
        self.batch_size, self.seed, self.progress = batch_size, seed, progress
        self._masks: dict[tuple[int, int], torch.Tensor] = {}
        self.name = "rise"

    def masks(self, size: tuple[int, int]) -> torch.Tensor:
        """The (n_masks, H, W) soft masks used for images of ``size``."""
        if size not in self._masks:
            gen = torch.Generator().manual_seed(self.seed)
            grid = (torch.rand(self.n_masks, 1, self.cells, self.cells, generator=gen) < self.keep).float()
            cell_h, cell_w = math.ceil(size[0] / self.cells), math.ceil(size[1] / self.cells)
            big = nn.functional.interpolate(
                grid, size=((self.cells + 1) * cell_h, (self.cells + 1) * cell_w), mode="bilinear", align_corners=False
            )
            dy = torch.randint(0, cell_h, (self.n_masks,), generator=gen)
            dx = torch.randint(0, cell_w, (self.n_masks,), generator=gen)
            crops = [big[i, 0, dy[i] : dy[i] + size[0], dx[i] : dx[i] + size[1]] for i in range(self.n_masks)]
            self._masks[size] = torch.stack(crops)
        return self._masks[size]

    @torch.no_grad()
    def explain(self, images: torch.Tensor, classes: Any = None) -> torch.Tensor:
        bb = self.backbone
        images = _prepare(bb, images)
        chosen = _single_classes(classes, bb.model(bb.normalize(images)))
        masks = self.masks(tuple(images.shape[-2:])).to(images.device)
        maps = []
        for image, cls in tqdm(list(zip(images, chosen)), desc="RISE", disable=not self.progress, leave=False):
            score = torch.zeros(masks.shape[1:], device=images.device)
            for start in range(0, self.n_masks, self.batch_size):
                chunk = masks[start : start + self.batch_size]
                batch = image.unsqueeze(0).expand(len(chunk), -1, -1, -1)
                probs = bb.model(mask_images(batch, chunk, bb.family, bb.normalize)).softmax(dim=1)[:, cls]
                score += torch.einsum("n,nhw->hw", probs, chunk)
            maps.append(score / (self.n_masks * self.keep))
        return minmax_normalize(torch.stack(maps))


class AttentionRollout:
    """Attention rollout for ViTs: multiply the blocks' head-averaged attention (plus identity
    for the residual path) and read how much the pooled output draws on each patch.

    The map is class-agnostic (the same for every class): ``classes`` is accepted for the
    common interface and validated, but does not change the result. Works with timm
    VisionTransformer models (the fused attention kernel is switched off during the call so the
    attention matrix can be read) and torchvision ``vit_*`` models.
    """

    def __init__(self, backbone: Backbone, head_fusion: str = "mean"):
        if backbone.family != "vit":
            raise InputError(f"attention rollout needs a ViT backbone; {backbone.name} is a {backbone.family}")
        if head_fusion not in ("mean", "max", "min"):
            raise InputError(f"head_fusion must be 'mean', 'max' or 'min'; got {head_fusion!r}")
        self.backbone, self.head_fusion, self.name = backbone, head_fusion, "rollout"
        model = backbone.model
        self._timm = [m for m in model.modules() if hasattr(m, "fused_attn") and hasattr(m, "attn_drop")]
        self._torch = [m for m in model.modules() if isinstance(m, nn.MultiheadAttention)]
        if not self._timm and not self._torch:
            raise InputError(f"found no attention modules in {backbone.name} (timm Attention or nn.MultiheadAttention)")
        # timm with global_pool="avg" pools the patch tokens; otherwise the class token is the output.
        self.pools_patches = getattr(model, "global_pool", "token") == "avg"

    def _attentions(self, inputs: torch.Tensor) -> list[torch.Tensor]:
        captured: list[torch.Tensor] = []
        handles = []
        saved = [m.fused_attn for m in self._timm]
        try:
            for m in self._timm:
                m.fused_attn = False
                handles.append(m.attn_drop.register_forward_hook(lambda mod, inp, out: captured.append(out)))
            for m in self._torch:
                handles.append(m.register_forward_pre_hook(_ask_for_weights, with_kwargs=True))
                handles.append(m.register_forward_hook(lambda mod, inp, out: captured.append(out[1])))
            self.backbone.model(inputs)
        finally:
            for handle in handles:
                handle.remove()
            for m, value in zip(self._timm, saved, strict=True):
                m.fused_attn = value
        return captured

    @torch.no_grad()
    def explain(self, images: torch.Tensor, classes: Any = None) -> torch.Tensor:
        bb = self.backbone
        images = _prepare(bb, images)
        inputs = bb.normalize(images)
        _single_classes(classes, bb.model(inputs))
        attentions = self._attentions(inputs)
        fuse = {"mean": lambda a: a.mean(1), "max": lambda a: a.amax(1), "min": lambda a: a.amin(1)}[self.head_fusion]
        rollout = None
        for attention in attentions:
            a = fuse(attention.float())
            a = a + torch.eye(a.shape[-1], device=a.device)
            a = a / a.sum(dim=-1, keepdim=True)
            rollout = a if rollout is None else a @ rollout
        prefix = bb.num_prefix_tokens
        rows = rollout[:, prefix:, :].mean(dim=1) if self.pools_patches else rollout[:, 0, :]
        grid = (images.shape[-2] // bb.patch_size[0], images.shape[-1] // bb.patch_size[1])
        maps = rows[:, prefix:].reshape(-1, *grid)
        return minmax_normalize(upsample(maps, tuple(images.shape[-2:])))


def _ask_for_weights(module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    """Make nn.MultiheadAttention return per-head attention weights (torchvision asks for none)."""
    return args, {**kwargs, "need_weights": True, "average_attn_weights": False}


def make_baseline(backbone: Backbone, method: str, **kwargs: Any):
    """Any baseline by name: a CAM method, ``"rise"`` or ``"rollout"``."""
    if method == "rise":
        return RISE(backbone, **kwargs)
    if method == "rollout":
        return AttentionRollout(backbone, **kwargs)
    if method in CAM_METHODS:
        return CAMExplainer(backbone, method, **kwargs)
    raise InputError(f"unknown method {method!r}; choose one of {sorted([*CAM_METHODS, 'rise', 'rollout'])}")


BASELINES: Sequence[str] = (*CAM_METHODS, "rise", "rollout")
