"""Each CAM baseline at its best single layer: candidates from the model's structure, the choice
made on a validation split."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ...backbones.backbone import Backbone
from ...backbones.presets import block_containers, opening_layer_norm, probe_outputs, spatial_size, transformer_blocks
from ...errors import InputError
from ..localisation import energy_pointing_game, pointing_game, top_k_iou
from .cam import CAM_METHODS, CAMExplainer
from .common import prepare


def _vit_candidates(backbone: Backbone, records: list[tuple[str, Any]], max_candidates: int) -> list[str]:
    outputs = dict(records)
    blocks = transformer_blocks(backbone.model, records)
    if not blocks:
        return list(backbone.default_layers)
    modules = dict(backbone.model.named_modules())
    finished = {name: i for i, (name, _) in enumerate(records)}
    names = [opening_layer_norm(block, modules, finished) for block in blocks]
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
    containers = block_containers(backbone.model)
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
    records = probe_outputs(backbone.model, backbone.input_size)
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
    images = prepare(backbone, images)
    if not isinstance(masks, torch.Tensor) or masks.shape != (images.shape[0], *images.shape[-2:]):
        shape = tuple(masks.shape) if isinstance(masks, torch.Tensor) else type(masks).__name__
        raise InputError(
            f"masks must be (B, H, W) = {(images.shape[0], *images.shape[-2:])}, one mask per image; got {shape}"
        )
    candidates = list(candidate_cam_layers(backbone) if candidates is None else candidates)
    if not candidates:
        raise InputError("candidates is empty; pass layer names or None (candidate_cam_layers(backbone))")
    finished = {name: i for i, (name, _) in enumerate(probe_outputs(backbone.model, backbone.input_size))}
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
