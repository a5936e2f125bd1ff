"""The debugging toolkit: error census, contrastive maps, region interventions, the planted shortcut."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ttame_lib import Backbone, InputError, make_explainer
from ttame_lib.debugging import contrastive_maps, error_census, fill_regions, region_intervention, top_region
from ttame_lib.world.scenes import CompositeScenes
from ttame_lib.world.shortcut import add_watermark, watermark_region


class CornerModel(nn.Module):
    """Two classes: class 1 exactly when the bottom-right corner is bright (a model with a known shortcut)."""

    def forward(self, x):
        corner = x[:, :, -8:, -8:].mean(dim=(1, 2, 3))
        return torch.stack([10 * (0.6 - corner), 10 * (corner - 0.6)], dim=1)


@pytest.fixture(scope="module")
def corner_backbone():
    model = nn.Sequential(nn.Identity())
    model.append(CornerModel())
    model[0] = nn.Conv2d(3, 3, 1)  # a parameter, so that the backbone has a device
    with torch.no_grad():
        model[0].weight.copy_(torch.eye(3).view(3, 3, 1, 1))
        model[0].bias.zero_()
    return Backbone.from_model(model, input_size=32, mean=(0, 0, 0), std=(1, 1, 1), class_names=["dark", "bright"])


def test_census_counts_errors_and_breaks_accuracy_down(corner_backbone):
    images = torch.zeros(6, 3, 32, 32)
    images[3:, :, -8:, -8:] = 1  # images 3-5 are "bright"
    labels = torch.tensor([0, 0, 1, 1, 1, 0])  # image 2 and image 5 are mislabelled -> two errors
    census = error_census(corner_backbone, images, labels, attributes={"half": ["a"] * 3 + ["b"] * 3})
    assert census.predictions.tolist() == [0, 0, 0, 1, 1, 1]
    assert census.accuracy == pytest.approx(4 / 6)
    assert census.confusion_matrix().tolist() == [[2, 1], [1, 2]]
    assert census.accuracy_by("half") == {"a": (pytest.approx(2 / 3), 3), "b": (pytest.approx(2 / 3), 3)}
    assert set(census.errors().tolist()) == {2, 5}
    assert census.most_confused_pairs() == [("dark", "bright", 1), ("bright", "dark", 1)]
    with pytest.raises(InputError, match="one class per image"):
        error_census(corner_backbone, images, labels[:3])
    with pytest.raises(InputError, match="unknown attribute 'size'"):
        census.accuracy_by("size")


def test_removing_the_shortcut_region_reverts_the_prediction(corner_backbone):
    images = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 0.2
    images[:, :, -8:, -8:] = 1
    region = torch.zeros(4, 32, 32, dtype=torch.bool)
    region[:, -8:, -8:] = True
    outside = ~region.unsqueeze(1).expand_as(images)
    for fill in ("impute", "grey", "mean", "blur"):
        result = region_intervention(corner_backbone, images, region, fill=fill)
        assert result.predicted_before.tolist() == [1, 1, 1, 1]
        assert torch.equal(result.edited[outside], images[outside])  # nothing outside the region changes
        assert not torch.equal(result.edited[~outside], images[~outside]), fill
        if fill != "blur":  # a blur keeps a bright corner fairly bright (it spreads, it does not remove)
            assert result.changed.all(), fill  # the corner was the evidence: removing it flips every prediction
            assert (result.probability_change(1) < -0.5).all()
    assert result[:2].edited.shape == (2, 3, 32, 32) and result[1].changed.shape == (1,)
    # Removing a region the model does not use changes nothing.
    elsewhere = torch.zeros_like(region)
    elsewhere[:, :8, :8] = True
    assert not region_intervention(corner_backbone, images, elsewhere).changed.any()
    with pytest.raises(InputError, match="fill must be one of"):
        fill_regions(images, region, fill="paint")


def test_top_region_takes_exactly_the_highest_pixels():
    maps = torch.linspace(0, 1, 100).view(1, 10, 10)
    region = top_region(maps, 10)
    assert region.sum() == 10 and region[0, -1].all()


def test_contrastive_maps_from_one_forward_match_two_calls(cnn_explainer, images_cnn):
    first, second = torch.tensor([0, 1, 2, 3]), torch.tensor([4, 5, 6, 7])
    both = contrastive_maps(cnn_explainer, images_cnn, first, second)
    assert torch.allclose(both.first, cnn_explainer.explain(images_cnn, first), atol=1e-6)
    assert torch.allclose(both.second, cnn_explainer.explain(images_cnn, second), atol=1e-6)
    assert both.difference().shape == (4, 64, 64)
    with make_explainer(cnn_explainer.backbone, "gradcam") as cam:
        cam_maps = contrastive_maps(cam, images_cnn, first, second)
        assert torch.allclose(cam_maps.second, cam.explain(images_cnn, second))


def test_the_watermark_helpers_match_the_scenes_cue():
    clean = CompositeScenes("test", length=3, size=64, cue_class=None)
    marked = CompositeScenes("test", length=3, size=64, cue_class=0, cue_rate=1.0, cue_leak=1.0)
    for i in range(3):
        assert torch.equal(add_watermark(clean[i][0][None])[0], marked[i][0])  # same scene, cue pasted identically
    region = watermark_region(64, 64)
    differs = (marked[0][0] != clean[0][0]).any(dim=0)
    assert region[differs].all() and region.sum() == 36  # a 3x3 checkerboard of 2-px cells
    assert watermark_region(64, 64, margin=2).sum() == 100
