"""Start the attention mechanism from the classifier's own class weights.

An explainer learns one map per class, and a class that is never a training target keeps its
initial map: with random initial weights that map is noise. Many classifiers end in a linear
layer on the spatial average of their last feature map (ResNets, EfficientNets, most timm
CNNs). For those, the fusion row of class k over that map's channels can start as the
classifier's weights for k (and its bias): with the branch's convolution at zero the branch
passes its input through, so before any training the fused map of class k is the class
activation map (CAM; Zhou et al., 2016), whose spatial mean is exactly the class's logit.
Training then moves the classes it sees; the others keep a CAM instead of noise.

This is the project's addition, not the paper's (docs/method.md): the authors initialise the
fusion at random. It is written here because no library offers it: it depends on T-TAME's own
branch and fusion layout.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import InputError
from .explainer import TTAME


def classifier_head(model: nn.Module) -> nn.Linear:
    """The final linear layer of a timm (``get_classifier()``) or torchvision (``fc``) classifier."""
    head = model.get_classifier() if hasattr(model, "get_classifier") else getattr(model, "fc", None)
    if not isinstance(head, nn.Linear):
        raise InputError(
            f"cannot find a final nn.Linear classifier on {type(model).__name__} (looked for get_classifier() and "
            ".fc); pass head= the linear layer that maps the pooled features to the logits"
        )
    return head


@torch.no_grad()
def initialise_from_classifier(
    explainer: TTAME, head: nn.Linear | None = None, *, atol: float = 1e-3, probe_images: int = 2
) -> None:
    """Set the fusion rows of the explainer's last layer to the classifier's weights and bias (the
    other rows and that branch's convolution to zero), so that every class starts from its CAM.

    Checked, not assumed: on ``probe_images`` seeded random images the spatial mean of each class's
    fused map must equal the backbone's logit within ``atol`` (relative to the logits' scale); a
    classifier that is not a linear layer on the average of the last layer fails with InputError
    and the explainer is left unchanged.
    """
    head = classifier_head(explainer.backbone.model) if head is None else head
    attention = explainer.attention
    layer = explainer.layers[-1]
    channels = attention.channels[-1]
    if head.in_features != channels or head.out_features != attention.num_classes:
        raise InputError(
            f"the classifier maps {head.in_features} features to {head.out_features} classes, but the last hooked "
            f"layer {layer!r} has {channels} channels and the explainer {attention.num_classes} classes; hook the "
            "layer the classifier pools last (e.g. 'layer4' for a ResNet, 'bn2' for a timm EfficientNet)"
        )
    saved = {k: v.clone() for k, v in attention.state_dict().items()}
    start = sum(attention.channels[:-1])
    attention.fuse.weight.zero_()
    attention.fuse.weight[:, start:, 0, 0] = head.weight.to(attention.fuse.weight)
    attention.fuse.bias.copy_(head.bias if head.bias is not None else torch.zeros_like(attention.fuse.bias))
    branch = attention.branches[-1]
    branch.conv.weight.zero_()
    branch.conv.bias.zero_()

    generator = torch.Generator().manual_seed(0)
    images = torch.rand(probe_images, 3, *explainer.backbone.input_size, generator=generator)
    was_training = attention.training
    attention.eval()
    logits, features = explainer.backbone_forward(explainer.prepare(images))
    means = attention.fused_logits(features).mean(dim=(2, 3))
    attention.train(was_training)
    gap = float((means - logits).abs().max())
    scale = float(logits.abs().max().clamp_min(1.0))
    if not gap <= atol * scale:
        attention.load_state_dict(saved)
        raise InputError(
            f"the classifier is not a linear layer on the spatial average of {layer!r} (the class maps' means differ "
            f"from the logits by up to {gap:.3g}); initialise from the classifier only where the model pools its last "
            "feature map into one linear layer (ResNets, EfficientNets), or train from the random initialisation"
        )
    explainer.initialisation = "classifier"
