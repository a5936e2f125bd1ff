import pytest
import torch

from ttame_lib import InputError, LayerNotFoundError, load_backbone, make_explainer
from ttame_lib.evaluation.baselines import (
    BASELINES,
    CAM_METHODS,
    RISE,
    AttentionRollout,
    CAMExplainer,
    CentrePrior,
    UniformMap,
    candidate_cam_layers,
    select_cam_layer,
)
from ttame_lib.evaluation.localisation import mask_area, pointing_game
from ttame_lib.world.scenes import CompositeScenes


def _hooks(backbone) -> int:
    """Forward hooks on every module of the backbone. Tests compare it before and after their own
    explainers: another test's explainer that awaits garbage collection must not count here."""
    return sum(len(m._forward_hooks) for m in backbone.model.modules())


def _check_maps(maps, images):
    assert maps.shape == (images.shape[0], *images.shape[-2:])
    assert torch.isfinite(maps).all() and maps.min() >= 0 and maps.max() <= 1


@pytest.mark.parametrize("method", sorted(CAM_METHODS))
def test_cam_methods_share_the_interface_on_cnn_and_vit(method, small_cnn, small_vit, images_cnn, images_vit):
    count = 1 if method in ("scorecam", "ablationcam") else 2  # one masked forward per channel: keep it small
    for backbone, images in ((small_cnn, images_cnn[:count]), (small_vit, images_vit[:count])):
        hooks_before = _hooks(backbone)
        explainer = CAMExplainer(backbone, method, batch_size=64)
        try:
            maps = explainer.explain(images)
            _check_maps(maps, images)
            if method != "eigencam":  # Eigen-CAM is class-agnostic
                predicted = backbone(images).argmax(1)
                assert torch.allclose(maps, explainer.explain(images, classes=predicted), atol=1e-5)
        finally:
            explainer.close()
        # close() removes the hooks: the backbone runs exactly as before.
        assert _hooks(backbone) == hooks_before


def test_gradcam_is_class_specific(small_cnn, images_cnn):
    explainer = CAMExplainer(small_cnn, "gradcam")
    a, b = explainer.explain(images_cnn, classes=1), explainer.explain(images_cnn, classes=2)
    explainer.close()
    assert not torch.allclose(a, b)


def test_rise_is_deterministic_and_class_specific(small_cnn, images_cnn):
    rise = RISE(small_cnn, n_masks=64, cells=4, batch_size=32, seed=0)
    masks = rise.masks((64, 64))
    assert masks.shape == (64, 64, 64) and 0.35 < float(masks.mean()) < 0.65
    a = rise.explain(images_cnn[:2], classes=[1, 1])
    _check_maps(a, images_cnn[:2])
    again = RISE(small_cnn, n_masks=64, cells=4, seed=0).explain(images_cnn[:2], classes=[1, 1])
    assert torch.allclose(a, again, atol=1e-5)  # same masks; only the batching differs
    assert not torch.allclose(a, rise.explain(images_cnn[:2], classes=[2, 2]))


def test_attention_rollout_timm_and_torchvision(small_vit, images_vit):
    rollout = AttentionRollout(small_vit)
    maps = rollout.explain(images_vit[:2])
    _check_maps(maps, images_vit[:2])
    assert torch.equal(maps, rollout.explain(images_vit[:2], classes=3))  # class-agnostic by design
    fused = [m.fused_attn for m in rollout._timm]
    assert fused == [m.fused_attn for m in small_vit.model.modules() if hasattr(m, "fused_attn")]
    tv = load_backbone("vit_b_16", image_size=64, num_classes=5)
    tv_maps = AttentionRollout(tv).explain(torch.rand(1, 3, 64, 64))
    _check_maps(tv_maps, torch.rand(1, 3, 64, 64))
    assert float(tv_maps.std()) > 0


def test_make_explainer_and_bad_input(small_cnn, images_cnn):
    assert {"gradcam", "scorecam", "rise", "rollout"} <= set(BASELINES)
    with pytest.raises(InputError, match="gradcam"):
        make_explainer(small_cnn, "grad-cam")
    with pytest.raises(LayerNotFoundError, match="layer4"):
        CAMExplainer(small_cnn, "gradcam", layer="layer9")
    with pytest.raises(InputError, match="ViT"):
        AttentionRollout(small_cnn)
    explainer = make_explainer(small_cnn, "gradcam")
    with pytest.raises(InputError, match="one class per image"):
        explainer.explain(images_cnn[:2], classes=[[1, 2], [3, 4]])
    with pytest.raises(InputError, match="out of range"):
        explainer.explain(images_cnn[:2], classes=10)
    with pytest.raises(InputError, match="batch dimension"):
        explainer.explain(images_cnn[0])
    explainer.close()


@pytest.fixture(scope="module")
def scenes64():
    """Six composite scenes at 64 px with their object masks (a validation split for layer selection)."""
    data = CompositeScenes("test", length=6, size=64, seed=1000)
    return torch.stack([data[i][0] for i in range(6)]), torch.stack([data[i][2] for i in range(6)])


def test_centre_prior_is_a_centred_gaussian(small_cnn, images_cnn):
    centre = make_explainer(small_cnn, "centre")
    assert isinstance(centre, CentrePrior) and centre.name == "centre"
    maps = centre.explain(images_cnn)
    _check_maps(maps, images_cnn)
    assert torch.equal(maps[:, 32, 32], maps.amax(dim=(1, 2))) and float(maps.max()) == 1.0
    assert torch.equal(maps[0], maps[1]) and torch.equal(maps, centre.explain(images_cnn.flip(-1), classes=3))
    odd = centre.explain(torch.rand(1, 3, 65, 81))[0]  # odd sides: the single centre pixel is the peak
    assert odd.shape == (65, 81) and odd[32, 40] == 1.0 and int((odd == 1.0).sum()) == 1
    wide = CentrePrior(small_cnn, sigma=0.5).explain(images_cnn[:1])
    assert float(wide[0, 0, 0]) > float(maps[0, 0, 0])  # a larger sigma spreads the mass to the corners
    centre.close()
    with pytest.raises(InputError, match="sigma"):
        CentrePrior(small_cnn, sigma=0)
    with pytest.raises(InputError, match="out of range"):
        centre.explain(images_cnn[:2], classes=10)
    with pytest.raises(InputError, match="batch dimension"):
        centre.explain(images_cnn[0])


def test_uniform_map_scores_chance(small_cnn, scenes64):
    images, masks = scenes64
    uniform = make_explainer(small_cnn, "uniform")
    assert isinstance(uniform, UniformMap) and uniform.name == "uniform"
    maps = uniform.explain(images, classes=torch.arange(6))
    _check_maps(maps, images)
    assert torch.equal(maps, torch.ones_like(maps))
    # Every pixel ties for the maximum: the pointing game scores the object's area share.
    assert torch.allclose(pointing_game(maps, masks), mask_area(masks))
    uniform.close()
    with pytest.raises(InputError, match="one class per image"):
        uniform.explain(images[:2], classes=[[1, 2], [3, 4]])
    assert {"centre", "uniform"} <= set(BASELINES)


def test_candidate_cam_layers_cnn_and_vit(small_cnn, small_vit):
    hooks_before = _hooks(small_cnn)
    assert candidate_cam_layers(small_cnn) == ["layer2", "layer3.0", "layer3", "layer4.0", "layer4"]
    assert candidate_cam_layers(small_cnn, max_candidates=4) == ["layer2", "layer3", "layer4.0", "layer4"]
    vit = candidate_cam_layers(small_vit)
    assert vit == [f"blocks.{i}.norm1" for i in range(4, 12)]  # the deepest 8 of 12 blocks
    assert set(small_vit.default_layers) <= set(vit)
    assert _hooks(small_cnn) == hooks_before
    with pytest.raises(InputError, match="max_candidates"):
        candidate_cam_layers(small_cnn, max_candidates=0)


def test_select_cam_layer_scores_every_candidate(small_cnn, scenes64):
    images, masks = scenes64
    hooks_before = _hooks(small_cnn)
    best, scores = select_cam_layer(small_cnn, "gradcam", images, masks)
    assert list(scores) == candidate_cam_layers(small_cnn)
    assert all(0 <= s <= 100 for s in scores.values()) and scores[best] == max(scores.values())
    # layer4 returns the tensor of its last block layer4.1: identical maps, a tie, and layer4
    # (whose forward finishes later) is the deeper one, whatever the order they are listed in.
    for candidates in (["layer4.1", "layer4"], ["layer4", "layer4.1"]):
        best, scores = select_cam_layer(small_cnn, "gradcam", images, masks, candidates, metric="energy_pointing_game")
        assert best == "layer4" and scores["layer4"] == scores["layer4.1"]
    with pytest.raises(InputError, match="not a CAM method"):
        select_cam_layer(small_cnn, "rise", images, masks)
    with pytest.raises(InputError, match="metric"):
        select_cam_layer(small_cnn, "gradcam", images, masks, metric="accuracy")
    with pytest.raises(InputError, match="masks must be"):
        select_cam_layer(small_cnn, "gradcam", images, masks[:3])
    with pytest.raises(InputError, match="candidates is empty"):
        select_cam_layer(small_cnn, "gradcam", images, masks, candidates=[])
    assert _hooks(small_cnn) == hooks_before
