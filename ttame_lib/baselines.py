"""Baseline explainers behind T-TAME's interface: ``explain(images, classes=None) -> (B, H, W)``.

- CAM methods come from pytorch-grad-cam (Grad-CAM, Grad-CAM++, Score-CAM, Ablation-CAM,
  XGrad-CAM, Layer-CAM, Eigen-CAM). For ViTs the tokens are turned into a grid by the same
  adapter function T-TAME uses (:func:`ttame_lib.adapter.tokens_to_grid`).
- RISE (Petsiuk et al. 2018) and attention rollout (Abnar & Zuidema 2020) are written here:
  pytorch-grad-cam has neither.
- Two model-agnostic reference rows: :class:`CentrePrior` (a Gaussian at the image centre) and
  :class:`UniformMap` (all ones). They look at neither the image nor the class, so any method
  that does not beat them has not shown that it explains anything.
- :func:`candidate_cam_layers` and :func:`select_cam_layer` pick a CAM method's layer on a
  validation split, so each CAM baseline is compared at its best single layer.

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

from .adapter import spatial_size, tokens_to_grid
from .backbones import Backbone
from .errors import InputError, LayerNotFoundError
from .masking import mask_images, minmax_normalize, upsample
from .metrics import energy_pointing_game, pointing_game, top_k_iou
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


class CentrePrior:
    """An isotropic Gaussian at the image centre: the "objects sit in the middle" prior.

    ``sigma`` is the standard deviation as a fraction of the shorter image side. The map is
    max-normalised (its peak, at the centre, is 1) and is the same for every image and class;
    ``images`` and ``classes`` are still validated so bad input fails as with every baseline.
    A method that does not beat this row on the localisation metrics has only found the centre.
    """

    def __init__(self, backbone: Backbone, sigma: float = 0.25):
        if not (isinstance(sigma, (int, float)) and math.isfinite(sigma) and sigma > 0):
            raise InputError(f"sigma must be a positive fraction of the shorter image side (e.g. 0.25); got {sigma!r}")
        self.backbone, self.sigma, self.name = backbone, float(sigma), "centre"

    def explain(self, images: torch.Tensor, classes: Any = None) -> torch.Tensor:
        """(B, H, W) copies of the centred Gaussian, in (0, 1] with 1 at the centre."""
        images = _check_request(self.backbone, images, classes)
        height, width = images.shape[-2:]
        # Pixel centres relative to the image centre: for an even side the peak is shared by the
        # two middle pixels, which are equally far from it.
        ys = torch.arange(height, device=images.device, dtype=torch.float32) - (height - 1) / 2
        xs = torch.arange(width, device=images.device, dtype=torch.float32) - (width - 1) / 2
        std = self.sigma * min(height, width)
        gauss = torch.exp(-(ys[:, None] ** 2 + xs[None, :] ** 2) / (2 * std**2))
        return (gauss / gauss.max()).expand(images.shape[0], -1, -1).contiguous()

    def close(self) -> None:
        """Nothing to release (no hooks); here for the common interface."""


class UniformMap:
    """All ones: a map that ranks no pixel above another (the floor every explanation must beat).

    What the metrics make of it, by construction:

    - AD / IC: every pixel is tied at the keep threshold, so every level keeps the whole image
      unchanged: AD = 0 and IC = 0. That is the best possible AD, which is why AD alone cannot
      rank explanations (a map that removes nothing drops no confidence).
    - Pointing game, energy pointing game and top-k IoU: ties are shared out evenly, so each
      scores the object's area share, i.e. chance level.
    - ROAD: ties are broken at random, so MoRF and LeRF remove random pixels.
    """

    def __init__(self, backbone: Backbone):
        self.backbone, self.name = backbone, "uniform"

    def explain(self, images: torch.Tensor, classes: Any = None) -> torch.Tensor:
        """(B, H, W) ones."""
        images = _check_request(self.backbone, images, classes)
        return torch.ones(images.shape[0], *images.shape[-2:], device=images.device)

    def close(self) -> None:
        """Nothing to release (no hooks); here for the common interface."""


def _check_request(backbone: Backbone, images: torch.Tensor, classes: Any) -> torch.Tensor:
    """Validate images and classes as the other baselines do, without running the backbone."""
    images = _prepare(backbone, images)
    if classes is not None:
        # Only the shape (B, num_classes) matters to the checks, so no forward is needed.
        _single_classes(classes, torch.empty(images.shape[0], backbone.num_classes, device=images.device))
    return images


def _probe_outputs(backbone: Backbone) -> list[tuple[str, Any]]:
    """(module name, output) of every named module, in the order the forward finishes them,
    for one blank image at the backbone's input size."""
    records: list[tuple[str, Any]] = []
    handles = [
        module.register_forward_hook(lambda mod, inp, out, name=name: records.append((name, out)))
        for name, module in backbone.model.named_modules()
        if name
    ]
    try:
        with torch.no_grad():
            backbone.model(torch.zeros(1, 3, *backbone.input_size, device=backbone.device))
    finally:
        for handle in handles:
            handle.remove()
    return records


def _block_containers(model: nn.Module) -> dict[str, list[str]]:
    """Sequential / ModuleList modules holding blocks: every child has submodules and all children
    share one class (a ResNet ``layer3``, an EfficientNet ``blocks.5``, a ViT ``blocks``). Small
    helper sequences (a downsample's conv + norm, a stem) mix classes or hold leaves, so they are out.
    """
    containers = {}
    for name, module in model.named_modules():
        if isinstance(module, (nn.Sequential, nn.ModuleList)):
            children = list(module.named_children())
            if (
                children
                and len({type(child) for _, child in children}) == 1
                and all(next(child.children(), None) is not None for _, child in children)
            ):
                containers[name] = [f"{name}.{child}" if name else child for child, _ in children]
    return containers


def _first_layer_norm(block: str, modules: dict[str, nn.Module]) -> str:
    """The LayerNorm that opens a transformer block (timm ``norm1``, torchvision ``ln_1``), else the block."""
    for child, module in modules[block].named_children():
        if isinstance(module, nn.LayerNorm):
            return f"{block}.{child}"
    return block


def _vit_candidates(backbone: Backbone, records: list[tuple[str, Any]], max_candidates: int) -> list[str]:
    outputs = dict(records)
    tokens = {name for name, out in records if isinstance(out, torch.Tensor) and out.ndim == 3}
    stacks = [blocks for blocks in _block_containers(backbone.model).values() if all(b in tokens for b in blocks)]
    if not stacks:
        return list(backbone.default_layers)
    modules = dict(backbone.model.named_modules())
    names = [_first_layer_norm(block, modules) for block in max(stacks, key=len)]
    names = [n for n in names if isinstance(outputs.get(n), torch.Tensor) and outputs[n].ndim == 3]
    # Early blocks rarely localise anything; when there are many blocks keep the deepest ones.
    return list(dict.fromkeys([*names[-max_candidates:], *backbone.default_layers]))


def _cnn_candidates(backbone: Backbone, records: list[tuple[str, Any]], max_candidates: int) -> list[str]:
    def is_map(out: Any) -> bool:
        # NCHW (what pytorch-grad-cam reads) with at least 2 x 2 cells: a 1 x 1 map cannot point anywhere.
        return (
            isinstance(out, torch.Tensor)
            and out.ndim == 4
            and spatial_size(out.shape, backbone.input_size) == tuple(out.shape[2:])
            and min(out.shape[2:]) >= 2
        )

    outputs = dict(records)
    finished = {name: i for i, (name, _) in enumerate(records)}
    containers = _block_containers(backbone.model)
    # Stages: innermost containers (no container inside them) whose output is a map, in forward order.
    stages = [
        name
        for name in containers
        if is_map(outputs.get(name)) and not any(other.startswith(f"{name}.") for other in containers)
    ]
    stages.sort(key=finished.__getitem__)
    required, optional = list(backbone.default_layers), []
    for stage in stages[-2:]:
        required.append(stage)
        # The stage's last block returns the stage's own output tensor: name it by the stage.
        optional += [b for b in containers[stage] if is_map(outputs.get(b)) and outputs[b] is not outputs[stage]]
    required = list(dict.fromkeys(required))
    optional = [name for name in dict.fromkeys(optional) if name not in required]
    # Over the limit, the shallowest block outputs go first.
    optional = sorted(optional, key=finished.__getitem__)[max(0, len(required) + len(optional) - max_candidates) :]
    return sorted([*required, *optional], key=lambda name: finished.get(name, -1))


def candidate_cam_layers(backbone: Backbone, max_candidates: int = 8) -> list[str]:
    """Layers worth trying for a CAM method, shallow to deep (the order their forward finishes).

    Found with one forward of a blank image (hooks on ``named_modules``; nothing is downloaded):

    - CNNs: the backbone's ``default_layers``, plus the output of each of the last two stages
      and of each block inside them, where that output is an NCHW map of at least 2 x 2
      (a ResNet's ``layer3.0``, ``layer3``, ``layer4.0``, ``layer4``; an EfficientNet's
      ``blocks.5.0`` ... ``blocks.6``). Past ``max_candidates`` the shallowest blocks are dropped.
    - ViTs: the LayerNorm that opens each transformer block (``blocks.N.norm1``, or the block
      itself when it has none); past ``max_candidates`` only the deepest blocks.

    A model with no recognisable stages gets its ``default_layers``.
    """
    if max_candidates < 1:
        raise InputError(f"max_candidates must be at least 1; got {max_candidates}")
    records = _probe_outputs(backbone)
    if backbone.family == "vit":
        return _vit_candidates(backbone, records, max_candidates)
    return _cnn_candidates(backbone, records, max_candidates)


# Scores a layer can be selected by: per-image values in [0, 1] (maps, masks) -> (B,).
LAYER_METRICS = {
    "pointing_game": pointing_game,
    "energy_pointing_game": energy_pointing_game,
    "top10%_iou": lambda maps, masks: top_k_iou(maps, masks, 10.0),
}


def select_cam_layer(
    backbone: Backbone,
    method: str,
    images: torch.Tensor,
    masks: torch.Tensor,
    candidates: Sequence[str] | None = None,
    metric: str = "pointing_game",
    *,
    batch_size: int = 16,
    **cam_kwargs: Any,
) -> tuple[str, dict[str, float]]:
    """The best single layer for CAM ``method``: explain ``images`` with each candidate layer and
    score the maps (predicted classes) against ``masks`` (B, H, W) by ``metric``.

    Use a validation split here, never the images the method is then evaluated on: picking the
    layer on the test images would flatter the CAM rows. Returns the best layer and every
    candidate's score (mean over images, in %). Ties go to the deeper layer (the one whose
    forward finishes later). ``candidates`` default to :func:`candidate_cam_layers`;
    ``cam_kwargs`` go to :class:`CAMExplainer` (e.g. ``batch_size`` of its masked forwards).
    """
    if method not in CAM_METHODS:
        raise InputError(f"method {method!r} is not a CAM method; choose one of {sorted(CAM_METHODS)}")
    if metric not in LAYER_METRICS:
        raise InputError(f"metric {metric!r} is unknown; choose one of {sorted(LAYER_METRICS)}")
    images = _prepare(backbone, images)
    if not isinstance(masks, torch.Tensor) or masks.shape != (images.shape[0], *images.shape[-2:]):
        shape = tuple(masks.shape) if isinstance(masks, torch.Tensor) else type(masks).__name__
        raise InputError(
            f"masks must be (B, H, W) = {(images.shape[0], *images.shape[-2:])}, one mask per image; got {shape}"
        )
    candidates = list(candidate_cam_layers(backbone) if candidates is None else candidates)
    if not candidates:
        raise InputError("candidates is empty; pass layer names or None (candidate_cam_layers(backbone))")
    finished = {name: i for i, (name, _) in enumerate(_probe_outputs(backbone))}
    masks = masks.to(images.device).bool()
    scores: dict[str, float] = {}
    for layer in candidates:
        explainer = CAMExplainer(backbone, method, layer=layer, **cam_kwargs)
        try:
            values = [
                LAYER_METRICS[metric](explainer.explain(images[i : i + batch_size]).float(), masks[i : i + batch_size])
                for i in range(0, len(images), batch_size)
            ]
        finally:
            explainer.close()
        scores[layer] = float(100 * torch.cat(values).mean())
    best = max(candidates, key=lambda name: (scores[name], finished.get(name, -1)))
    return best, scores


def make_baseline(backbone: Backbone, method: str, **kwargs: Any):
    """Any baseline by name: a CAM method, ``"rise"``, ``"rollout"``, ``"centre"`` or ``"uniform"``."""
    if method == "rise":
        return RISE(backbone, **kwargs)
    if method == "rollout":
        return AttentionRollout(backbone, **kwargs)
    if method == "centre":
        return CentrePrior(backbone, **kwargs)
    if method == "uniform":
        return UniformMap(backbone, **kwargs)
    if method in CAM_METHODS:
        return CAMExplainer(backbone, method, **kwargs)
    raise InputError(f"unknown method {method!r}; choose one of {sorted(BASELINES)}")


# Every name make_baseline knows. "rollout" needs a ViT; "centre" and "uniform" ignore the model.
BASELINES: Sequence[str] = (*CAM_METHODS, "rise", "rollout", "centre", "uniform")
