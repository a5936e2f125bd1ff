"""Initialising the fusion from the classifier: every class starts from its class activation map."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ttame_lib import TTAME, InputError
from ttame_lib.method.head_init import initialise_from_classifier


def test_each_class_starts_from_its_cam_whose_mean_is_the_logit(small_cnn):
    explainer = TTAME(small_cnn, layers=["layer3", "layer4"])
    initialise_from_classifier(explainer)
    images = torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        logits, features = explainer.backbone_forward(explainer.prepare(images))
        fused = explainer.attention.fused_logits(features)  # (B, K, 4, 4) at layer3's size
        # The CAM by hand: the classifier's weights over layer4's channels, upsampled as T-TAME upsamples.
        fc = small_cnn.model.fc
        cam = torch.einsum("bchw,kc->bkhw", features[1], fc.weight) + fc.bias.view(1, -1, 1, 1)
        cam = F.interpolate(cam, size=fused.shape[-2:], mode="bilinear", align_corners=False)
    assert torch.allclose(fused, cam, atol=1e-4)
    assert torch.allclose(fused.mean(dim=(2, 3)), logits, atol=1e-3)  # bilinear upsampling keeps the mean here
    explainer.close()


def test_a_layer_the_classifier_does_not_pool_is_refused_and_nothing_changes(small_cnn):
    explainer = TTAME(small_cnn, layers=["layer2", "layer3"])  # 256 channels; fc reads layer4's 512
    before = {k: v.clone() for k, v in explainer.attention.state_dict().items()}
    with pytest.raises(InputError, match=r"last hooked layer 'layer3' has 256 channels.*'layer4'"):
        initialise_from_classifier(explainer)
    explainer.close()
    odd = TTAME(small_cnn, layers=["layer3", "layer4.0"])  # 512 channels, but the classifier pools layer4's end
    before = {k: v.clone() for k, v in odd.attention.state_dict().items()}
    with pytest.raises(InputError, match="not a linear layer on the spatial average of 'layer4.0'"):
        initialise_from_classifier(odd)
    assert all(torch.equal(before[k], v) for k, v in odd.attention.state_dict().items())
    odd.close()


def test_the_start_is_recorded_and_named_in_the_coverage_warning(small_cnn, tmp_path):
    explainer = TTAME(small_cnn, layers=["layer3", "layer4"])
    assert explainer.initialisation == "random"
    initialise_from_classifier(explainer)
    explainer.target_counts = torch.zeros(small_cnn.num_classes, dtype=torch.long)  # as if trained on no image
    loaded = TTAME.load(explainer.save(tmp_path / "cam.ttame"), small_cnn)
    assert loaded.initialisation == "classifier"
    with pytest.warns(UserWarning, match="never a training target.*the classifier's class activation map"):
        loaded.explain(torch.rand(1, 3, 64, 64), classes=3)
    explainer.close()
    loaded.close()
