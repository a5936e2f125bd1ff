"""Which layers T-TAME hooks by default, and what a model's structure says about itself.

The paper's three backbones get the authors' exact layers; other torchvision and timm models
get a preset from their structure; any other model (``Backbone.from_model``) gets one from a
probe forward: the last stages for a CNN, the last blocks for a transformer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torchvision
from torch import nn

from ..errors import InputError, LayerNotFoundError, LayoutError

# The layers the authors hook (docs/method.md). torchvision names the LayerNorm that opens an
# encoder block ``ln_1``; it is what the paper calls ``encoder_layer_N.ln``.
PAPER_PRESETS: dict[str, list[str]] = {
    "vgg16": ["features.16", "features.23", "features.30"],
    "resnet50": ["layer2", "layer3", "layer4"],
    "vit_b_16": [f"encoder.layers.encoder_layer_{i}.ln_1" for i in (9, 10, 11)],
}


def validate_layers(model: nn.Module, layers: Sequence[str], backbone: str = "backbone") -> dict[str, nn.Module]:
    """Map layer names to modules, raising :class:`LayerNotFoundError` (listing valid names) on a typo."""
    if isinstance(layers, str):
        layers = [layers]
    if len(layers) == 0:
        raise LayoutError(
            "layers is empty; name at least one layer to hook, e.g. the preset backbone.default_layers "
            "(valid names come from model.named_modules())"
        )
    modules = {name: module for name, module in model.named_modules() if name}
    unknown = [name for name in layers if name not in modules]
    if unknown:
        raise LayerNotFoundError(unknown, list(modules), backbone)
    if len(set(layers)) != len(layers):
        raise LayoutError(f"layer names must be unique; got {list(layers)}")
    return {name: modules[name] for name in layers}


def plausible_spatial(h: int, w: int, input_size: tuple[int, int]) -> bool:
    """Do (h, w) look like a downsampled input: same aspect ratio, not larger than the input?"""
    height, width = input_size
    if h > height or w > width:
        return False
    stride_h, stride_w = height / h, width / w
    return abs(stride_h - stride_w) <= 0.25 * max(stride_h, stride_w)


def spatial_size(shape: Sequence[int], input_size: tuple[int, int]) -> tuple[int, int] | None:
    """(h, w) of a 4-D output laid out NCHW or NHWC, or None if it does not look like a feature map."""
    _, a, b, c = shape
    if plausible_spatial(b, c, input_size):
        return int(b), int(c)
    if plausible_spatial(a, b, input_size):
        return int(a), int(b)
    return None


def torchvision_preset(name: str | None, model: nn.Module, input_size: tuple[int, int]) -> list[str]:
    """The paper's layers for its models, the same stages for their relatives, a probe otherwise."""
    if name in PAPER_PRESETS:
        return list(PAPER_PRESETS[name])
    if isinstance(model, torchvision.models.VisionTransformer):
        n = len(model.encoder.layers)
        return [f"encoder.layers.encoder_layer_{i}.ln_1" for i in range(n - 3, n)]
    if isinstance(model, torchvision.models.ResNet):
        return ["layer2", "layer3", "layer4"]
    if isinstance(model, torchvision.models.VGG):
        pools = [f"features.{i}" for i, m in enumerate(model.features) if isinstance(m, nn.MaxPool2d)]
        return pools[-3:]
    return probe_spatial_preset(model, input_size)


def timm_preset(model: nn.Module, input_size: tuple[int, int]) -> list[str]:
    """A plain ViT's last three blocks, a CNN's last three ``feature_info`` stages, else a probe."""
    modules = dict(model.named_modules())
    blocks = getattr(model, "blocks", None)
    if hasattr(model, "num_prefix_tokens") and isinstance(blocks, (nn.Sequential, nn.ModuleList)) and len(blocks) >= 3:
        # Like the paper, hook the LayerNorm that opens each of the last three blocks.
        n = len(blocks)
        return [f"blocks.{i}.norm1" if f"blocks.{i}.norm1" in modules else f"blocks.{i}" for i in range(n - 3, n)]
    feature_info = getattr(model, "feature_info", None)
    if feature_info:
        names = [f["module"] for f in feature_info]
        if len(names) >= 3 and all(name in modules for name in names[-3:]):
            return names[-3:]
    return probe_spatial_preset(model, input_size)


def probe_outputs(model: nn.Module, input_size: tuple[int, int]) -> list[tuple[str, Any]]:
    """(module name, output) of every named module, in the order the forward finishes them,
    for one blank image of ``input_size``."""
    records: list[tuple[str, Any]] = []
    handles = [
        module.register_forward_hook(lambda mod, inp, out, name=name: records.append((name, out)))
        for name, module in model.named_modules()
        if name
    ]
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, *input_size, device=next(model.parameters()).device))
    finally:
        for handle in handles:
            handle.remove()
    return records


def probe_spatial_preset(model: nn.Module, input_size: tuple[int, int], count: int = 3) -> list[str]:
    """Automatic preset for any CNN: one module at each of the last ``count`` spatial resolutions.

    At each resolution it picks the shallowest module (fewest dots in its name), the last one
    if several: that is the stage itself rather than a conv inside the next downsampling block.
    Maps of 1 x 1 (global pooling) cannot point anywhere and are left out.
    """
    last_at: dict[tuple[int, int], str] = {}
    for name, out in probe_outputs(model, input_size):
        if not (isinstance(out, torch.Tensor) and out.ndim == 4):
            continue
        size = spatial_size(out.shape, input_size)
        if size is None or min(size) <= 1:
            continue
        if size not in last_at or name.count(".") <= last_at[size].count("."):
            last_at[size] = name
    sizes = sorted(last_at, key=lambda s: s[0] * s[1])[:count]
    return [last_at[s] for s in sorted(sizes, key=lambda s: -s[0] * s[1])]


def block_containers(model: nn.Module) -> dict[str, list[str]]:
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


def opening_layer_norm(block: str, modules: dict[str, nn.Module], finished: dict[str, int]) -> str:
    """The LayerNorm that opens a pre-norm transformer block (timm ``norm1``, torchvision ``ln_1``),
    else the block itself.

    ``finished`` gives the order in which a probe forward finished each module: the norm opens
    the block only if it ran before the block's other children. In a post-norm block (PyTorch's
    ``nn.TransformerEncoderLayer`` by default) the first LayerNorm runs after attention, and in
    PyTorch's fused fast path no child runs at all: in both cases the block's output is hooked.
    """
    children = [f"{block}.{name}" for name, _ in modules[block].named_children()]
    ran = [child for child in children if child in finished]
    if ran:
        first = min(ran, key=finished.__getitem__)
        if isinstance(modules[first], nn.LayerNorm):
            return first
    return block


def transformer_blocks(model: nn.Module, records: list[tuple[str, Any]]) -> list[str]:
    """The longest stack of blocks whose outputs are all token tensors (B, N, C), in order."""
    tokens = {name for name, out in records if isinstance(out, torch.Tensor) and out.ndim == 3}
    stacks = [blocks for blocks in block_containers(model).values() if all(b in tokens for b in blocks)]
    return max(stacks, key=len) if stacks else []


def probe_token_preset(model: nn.Module, input_size: tuple[int, int], count: int = 3) -> list[str]:
    """Automatic preset for any transformer: the opening LayerNorm of each of the last ``count`` blocks."""
    records = probe_outputs(model, input_size)
    finished = {name: i for i, (name, _) in enumerate(records)}
    modules = dict(model.named_modules())
    return [opening_layer_norm(block, modules, finished) for block in transformer_blocks(model, records)[-count:]]


def transformer_geometry(model: nn.Module) -> tuple[tuple[int, int] | None, int, bool, tuple[int, int] | None]:
    """(patch size, prefix tokens, input size fixed?, native input size) of a torchvision or timm
    ViT; ``(None, 0, False, None)`` for a model that shows none of these."""
    if isinstance(model, torchvision.models.VisionTransformer):
        return (model.patch_size, model.patch_size), 1, True, (model.image_size, model.image_size)
    patch_embed = getattr(model, "patch_embed", None)
    if patch_embed is not None and hasattr(patch_embed, "patch_size") and hasattr(model, "num_prefix_tokens"):
        p = patch_embed.patch_size
        p = (p, p) if isinstance(p, int) else tuple(p)
        fixed = not getattr(model, "dynamic_img_size", False)
        img_size = getattr(patch_embed, "img_size", None)
        native = tuple(img_size) if img_size else None
        return p, int(model.num_prefix_tokens), fixed, native
    return None, 0, False, None


def count_classes(model: nn.Module) -> int:
    """The number of classes of a classifier: its ``num_classes`` attribute or its last Linear layer."""
    num = getattr(model, "num_classes", None)
    if num == 0:
        raise InputError(
            "this model has no classification head (num_classes=0), so there is nothing to explain; "
            "pass num_classes=N to load_backbone to give it one"
        )
    if isinstance(num, int) and num > 0:
        return num
    last = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not last:
        raise InputError("cannot tell the number of classes of this model; pass num_classes=")
    return last[-1].out_features
