"""Attention rollout (Abnar & Zuidema 2020) for ViTs, written here: pytorch-grad-cam does not have it."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from ...backbones.backbone import Backbone
from ...errors import InputError
from ...interface import ExplainerBase
from ...method.masking import minmax_normalize, upsample
from .common import prepare, single_classes


class AttentionRollout(ExplainerBase):
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
        with self.backbone.evaluating():
            bb = self.backbone
            images = prepare(bb, images)
            inputs = bb.normalize(images)
            single_classes(classes, bb.model(inputs))
            attentions = self._attentions(inputs)
            fuse = {"mean": lambda a: a.mean(1), "max": lambda a: a.amax(1), "min": lambda a: a.amin(1)}[
                self.head_fusion
            ]
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
