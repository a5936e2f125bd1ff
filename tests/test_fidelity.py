"""The four places where T-TAME's formulas are easy to get subtly wrong, pinned to hand-computed values
(docs/method.md): the B x B regularisation, the pre-sigmoid explanation map, the AD/IC masking domain
and the ROAD imputation domain."""

import math

import pytest
import torch
import torch.nn.functional as F

from ttame_lib import TTAME, LossWeights, TTAMELoss, explanation_maps, minmax_normalize, total_variation
from ttame_lib.evaluation.faithfulness import confidence_drop, road

# ---------------------------------------------------------------- 1. loss over B x B maps


def test_tv_of_b_by_b_maps_divides_by_twice_the_batch_not_the_number_of_maps():
    maps = torch.zeros(2, 2, 2, 2)
    maps[0, 1] = torch.tensor([[0.0, 1.0], [2.0, 3.0]])  # the 2x2 map of the hand test in test_loss.py
    # that map alone: dy 8 + dx 2 + 0.3 * border 14 = 14.2; the other three maps are zero. B = 2 images.
    assert total_variation(maps, batch_size=2).item() == pytest.approx(14.2 / 4)
    assert total_variation(maps).item() == pytest.approx(14.2 / 4)  # default B: the first dimension


def test_batch_scope_regularises_every_target_map_on_every_image_and_ce_uses_the_own_map():
    # Two images, targets (0, 1): maps[i, j] is target j's map on image i (2x2 pixels).
    maps = torch.tensor(
        [
            [[[0.9, 0.9], [0.9, 0.9]], [[0.1, 0.0], [0.0, 0.0]]],
            [[[0.0, 0.2], [0.0, 0.0]], [[0.5, 0.5], [0.5, 0.5]]],
        ]
    )
    logits = torch.tensor([[1.0, 0.0], [0.0, 3.0]])
    targets = torch.tensor([0, 1])
    total, terms = TTAMELoss(regularize="batch")(logits, targets, maps)
    values = maps.flatten().tolist()
    area = sum((v + 0.0005) ** 0.3 for v in values) / 16
    # TV by hand per map (every pixel of a 2x2 map is border): (dy + dx + 0.3 * sum A^2)
    tv_maps = [0.0 + 0.0 + 0.3 * 4 * 0.81, 0.01 + 0.01 + 0.3 * 0.01, 0.04 + 0.04 + 0.3 * 0.04, 0.3 * 4 * 0.25]
    tv = sum(tv_maps) / (2 * 2)
    ce = (math.log(1 + math.exp(-1.0)) + math.log(1 + math.exp(-3.0))) / 2
    assert terms["area"].item() == pytest.approx(area, rel=1e-6)
    assert terms["tv"].item() == pytest.approx(tv, rel=1e-6)
    assert terms["ce"].item() == pytest.approx(ce, rel=1e-6)
    assert total.item() == pytest.approx(1.5 * ce + 2.0 * area + 0.01 * tv, rel=1e-6)
    # The own-map scope sees only the diagonal maps[0, 0] and maps[1, 1].
    _, own_terms = TTAMELoss(regularize="own")(logits, targets, torch.stack([maps[0, 0], maps[1, 1]]))
    own_area = sum((v + 0.0005) ** 0.3 for v in [0.9] * 4 + [0.5] * 4) / 8
    assert own_terms["area"].item() == pytest.approx(own_area, rel=1e-6)
    assert own_terms["tv"].item() == pytest.approx((tv_maps[0] + tv_maps[3]) / 4, rel=1e-6)


def test_loss_rejects_maps_of_the_wrong_scope():
    with pytest.raises(ValueError, match=r"regularize='batch' expects maps of shape \(2, 2\)"):
        TTAMELoss(regularize="batch")(torch.zeros(2, 3), torch.tensor([0, 1]), torch.zeros(2, 4, 4))
    with pytest.raises(ValueError, match="regularize must be one of"):
        TTAMELoss(regularize="diagonal")


@pytest.mark.parametrize("scope", ["batch", "own"])
def test_explainer_loss_matches_the_formula_on_a_real_backbone(small_cnn, images_cnn, scope):
    explainer = TTAME(small_cnn, regularize=scope, seed=3)
    try:
        explainer.attention.eval()  # BatchNorm on running statistics: the same maps in both computations
        with torch.no_grad():
            total, terms = explainer.loss(images_cnn)
            logits, features = explainer.backbone_forward(images_cnn)
            targets = logits.argmax(1)
            every = explainer.attention(features)  # (B, K, h, w): every class map on every image
            own = every[torch.arange(len(targets)), targets]
            regularised = every[:, targets] if scope == "batch" else own
            weights = LossWeights()
            area = (regularised + 0.0005).pow(weights.area_power).mean()
            tv = total_variation(regularised.flatten(0, -3), batch_size=len(targets))
            ce = F.cross_entropy(explainer.masked_logits(images_cnn, own), targets)
        assert terms["area"].item() == pytest.approx(area.item(), rel=1e-5)
        assert terms["tv"].item() == pytest.approx(tv.item(), rel=1e-5)
        assert terms["ce"].item() == pytest.approx(ce.item(), rel=1e-5)
    finally:
        explainer.close()


def test_regularize_scope_is_saved_and_restored(small_cnn, tmp_path):
    explainer = TTAME(small_cnn, regularize="own")
    path = explainer.save(tmp_path / "own.ttame")
    explainer.close()
    loaded = TTAME.load(path, small_cnn)
    assert loaded.loss_fn.regularize == "own"
    loaded.close()


# ---------------------------------------------------------------- 2. the explanation map


def test_explanation_is_minmax_of_the_pre_sigmoid_map_then_upsampled():
    fused = torch.tensor([[[0.0, 1.0], [2.0, 4.0]]])
    assert torch.allclose(explanation_maps(fused, (2, 2)), torch.tensor([[[0.0, 0.25], [0.5, 1.0]]]))
    # The sigmoid first would give different soft values: (s(1) - s(0)) / (s(4) - s(0)) = 0.4795...
    via_sigmoid = minmax_normalize(torch.sigmoid(fused))
    assert via_sigmoid[0, 0, 1].item() == pytest.approx((0.7310586 - 0.5) / (0.9820138 - 0.5), rel=1e-5)
    # Upsampling comes after the min-max, at attention resolution: 2x2 -> 4x4 bilinear, in [0, 1].
    up = explanation_maps(fused, (4, 4))
    expected = F.interpolate(torch.tensor([[[[0.0, 0.25], [0.5, 1.0]]]]), size=(4, 4), mode="bilinear")[0]
    assert torch.allclose(up, expected)
    assert explanation_maps(torch.full((1, 3, 3), 7.0), (6, 6)).abs().max() == 0  # constant -> zeros


def test_explain_uses_the_fused_logits(cnn_explainer, images_cnn):
    maps, logits = cnn_explainer.explain(images_cnn, return_logits=True)
    with torch.no_grad():
        _, features = cnn_explainer.backbone_forward(images_cnn)
        fused = cnn_explainer.attention.fused_logits(features, logits.argmax(1))
    assert torch.allclose(maps, explanation_maps(fused, (64, 64)), atol=1e-6)
    assert torch.allclose(torch.sigmoid(fused), cnn_explainer.attention(features, logits.argmax(1)))


# ---------------------------------------------------------------- 3. AD / IC mask the raw image


def _recorded_inputs(backbone):
    seen = []
    handle = backbone.model.register_forward_pre_hook(lambda module, args: seen.append(args[0].detach().clone()))
    return seen, handle


@pytest.mark.parametrize("which", ["cnn", "vit"])
def test_ad_ic_mask_the_raw_image_for_every_family(which, request):
    backbone = request.getfixturevalue(f"small_{which}")
    images = torch.full((1, 3, *backbone.input_size), 0.5)
    maps = torch.ones(1, *backbone.input_size)
    maps[..., : backbone.input_size[1] // 2] = 0.0  # left half removed
    seen, handle = _recorded_inputs(backbone)
    confidence_drop(backbone, images, maps, percents=[100])
    handle.remove()
    masked = seen[1][0]  # seen[0] is the unmasked forward
    mean = torch.tensor(backbone.preprocessing.mean)
    std = torch.tensor(backbone.preprocessing.std)
    # A removed pixel is raw 0 (black), normalised: -mean/std; a kept one is (0.5 - mean)/std.
    assert torch.allclose(masked[:, 0, 0], -mean / std, atol=1e-6)
    assert torch.allclose(masked[:, 0, -1], (0.5 - mean) / std, atol=1e-6)


# ---------------------------------------------------------------- 4. ROAD's imputation domain


@pytest.mark.parametrize(("which", "raw_domain"), [("cnn", True), ("vit", False)])
def test_road_imputes_cnns_in_the_raw_domain_and_vits_normalised(which, raw_domain, request):
    backbone = request.getfixturevalue(f"small_{which}")
    images = torch.full((1, 3, *backbone.input_size), 0.5)  # a constant image imputes to itself...
    maps = torch.rand(1, *backbone.input_size, generator=torch.Generator().manual_seed(0))
    _, imputed = road(backbone, images, maps, percents=[50], orders=["morf"], noise=0.01, return_images=True)
    model_input = imputed[("morf", 50.0)][0]
    clean = backbone.normalize(images)[0]
    removed = (model_input - clean).abs().amax(0) > 0
    assert int(removed.sum()) == round(0.5 * maps.numel())
    std = torch.tensor(backbone.preprocessing.std)
    # ...plus the noise (sd 0.01), added in the imputation domain: in the model input it has sd
    # 0.01 / std for CNNs (raw domain, then normalised) and 0.01 for ViTs (normalised domain).
    expected = 0.01 / std if raw_domain else torch.full((3,), 0.01)
    measured = (model_input - clean)[:, removed].std(dim=1)
    assert torch.allclose(measured, expected, rtol=0.1)


def test_attention_levels_separate_own_and_other_classes(cnn_explainer, images_cnn):
    from ttame_lib.method.diagnostics import attention_levels

    cnn_explainer.attention.eval()  # running BatchNorm statistics, as attention_levels uses
    with torch.no_grad():
        logits, features = cnn_explainer.backbone_forward(images_cnn)
        every = cnn_explainer.attention(features).mean(dim=(2, 3))  # (B, K)
    predicted = logits.argmax(1)
    own = every[torch.arange(4), predicted]
    others = (every.sum(1) - own) / (every.shape[1] - 1)
    levels = attention_levels(cnn_explainer, images_cnn, batch_size=3)  # two batches of unequal size
    assert levels["own"] == pytest.approx(float(own.mean()), rel=1e-5)
    assert levels["others"] == pytest.approx(float(others.mean()), rel=1e-5)
