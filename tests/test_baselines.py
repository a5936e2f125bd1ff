import pytest
import torch

from ttame_lib import InputError, LayerNotFoundError, load_backbone
from ttame_lib.baselines import BASELINES, CAM_METHODS, RISE, AttentionRollout, CAMExplainer, make_baseline


def _check_maps(maps, images):
    assert maps.shape == (images.shape[0], *images.shape[-2:])
    assert torch.isfinite(maps).all() and maps.min() >= 0 and maps.max() <= 1


@pytest.mark.parametrize("method", sorted(CAM_METHODS))
def test_cam_methods_share_the_interface_on_cnn_and_vit(method, small_cnn, small_vit, images_cnn, images_vit):
    count = 1 if method in ("scorecam", "ablationcam") else 2  # one masked forward per channel: keep it small
    for backbone, images in ((small_cnn, images_cnn[:count]), (small_vit, images_vit[:count])):
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
        assert not backbone.model._forward_hooks and all(not m._forward_hooks for m in backbone.model.modules())


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


def test_make_baseline_and_bad_input(small_cnn, images_cnn):
    assert {"gradcam", "scorecam", "rise", "rollout"} <= set(BASELINES)
    with pytest.raises(InputError, match="gradcam"):
        make_baseline(small_cnn, "grad-cam")
    with pytest.raises(LayerNotFoundError, match="layer4"):
        CAMExplainer(small_cnn, "gradcam", layer="layer9")
    with pytest.raises(InputError, match="ViT"):
        AttentionRollout(small_cnn)
    explainer = make_baseline(small_cnn, "gradcam")
    with pytest.raises(InputError, match="one class per image"):
        explainer.explain(images_cnn[:2], classes=[[1, 2], [3, 4]])
    with pytest.raises(InputError, match="out of range"):
        explainer.explain(images_cnn[:2], classes=10)
    with pytest.raises(InputError, match="batch dimension"):
        explainer.explain(images_cnn[0])
    explainer.close()
