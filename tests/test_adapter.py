import pytest
import torch

from ttame_lib import TTAME, LayoutError, infer_layout, load_backbone, tokens_to_grid
from ttame_lib.method.adapter import FeatureMapAdapter


@pytest.mark.parametrize("grid", [(3, 3), (4, 6), (5, 2)])
@pytest.mark.parametrize("prefix", [0, 1, 2, 5])
def test_token_at_patch_ij_lands_at_grid_ij(grid, prefix):
    h, w = grid
    dim = 7
    for i in range(h):
        for j in range(w):
            tokens = torch.zeros(2, prefix + h * w, dim)
            marker = torch.arange(1.0, dim + 1)
            tokens[:, prefix + i * w + j] = marker
            if prefix:
                tokens[:, :prefix] = 99.0  # prefix tokens must be dropped, not placed on the grid
            out = tokens_to_grid(tokens, grid, prefix)
            assert out.shape == (2, dim, h, w)
            assert torch.equal(out[:, :, i, j], marker.expand(2, dim))
            expected_rest = out.clone()
            expected_rest[:, :, i, j] = 0
            assert expected_rest.abs().sum() == 0


def test_class_token_gating_multiplies_patch_tokens():
    tokens = torch.randn(2, 1 + 6, 5)
    out = tokens_to_grid(tokens, (2, 3), 1, gate_with_class_token=True)
    plain = tokens_to_grid(tokens, (2, 3), 1)
    assert torch.allclose(out, plain * tokens[:, 0, :, None, None])


def test_gating_needs_a_class_token():
    with pytest.raises(LayoutError, match="class token"):
        tokens_to_grid(torch.randn(1, 4, 3), (2, 2), 0, gate_with_class_token=True)


def test_token_count_mismatch_is_explained():
    with pytest.raises(LayoutError, match="patch grid is 3x3"):
        tokens_to_grid(torch.randn(1, 1 + 10, 4), (3, 3), 1)


def test_infer_layout():
    size = (224, 160)
    assert infer_layout((2, 512, 28, 20), size, False) == "NCHW"
    assert infer_layout((2, 28, 20, 512), size, False) == "NHWC"
    assert infer_layout((2, 197, 768), size, True) == "tokens"
    with pytest.raises(LayoutError, match="no known patch size"):
        infer_layout((2, 197, 768), size, False)
    with pytest.raises(LayoutError, match="not a feature map"):
        infer_layout((2, 1000), size, False)


def test_channels_last_maps_are_permuted():
    adapter = FeatureMapAdapter(layouts=["NHWC", "NCHW"])
    nhwc = torch.randn(2, 7, 5, 11)
    nchw = torch.randn(2, 3, 7, 5)
    out = adapter([nhwc, nchw], (224, 160))
    assert torch.equal(out[0], nhwc.permute(0, 3, 1, 2))
    assert out[1] is nchw


def _changed_cells(explainer, image_size, patch, cell):
    """Perturb one patch of the input; return the grid cells whose first-layer features change."""
    torch.manual_seed(0)
    a = torch.rand(1, 3, *image_size)
    b = a.clone()
    i, j = cell
    b[:, :, i * patch : (i + 1) * patch, j * patch : (j + 1) * patch] = torch.rand(1, 3, patch, patch)
    with torch.no_grad():
        _, fa = explainer.backbone_forward(a)
        _, fb = explainer.backbone_forward(b)
    diff = (fa[0] - fb[0]).abs().sum(dim=(0, 1))
    return {tuple(x) for x in (diff > 1e-5).nonzero().tolist()}


@pytest.mark.parametrize(
    "name,kwargs,layer,patch",
    [
        ("vit_b_16", {}, "encoder.layers.encoder_layer_0.ln_1", 16),
        ("deit_tiny_distilled_patch16_224", {"img_size": (64, 96)}, "blocks.0.norm1", 16),
        ("vit_small_patch14_reg4_dinov2", {"img_size": (56, 84), "num_classes": 10}, "blocks.0.norm1", 14),
    ],
)
def test_real_vit_patch_lands_on_its_grid_cell(name, kwargs, layer, patch):
    """Before any attention, a token depends only on its own patch: the adapter must put it back there."""
    bb = load_backbone(name, **kwargs)
    explainer = TTAME(bb, layers=[layer])
    h, w = bb.input_size[0] // patch, bb.input_size[1] // patch
    for cell in [(0, 0), (1, 2), (h - 1, w - 1)]:
        assert _changed_cells(explainer, bb.input_size, patch, cell) == {cell}


def test_prefix_token_counts_come_from_the_model():
    assert load_backbone("vit_b_16").num_prefix_tokens == 1
    assert load_backbone("deit_tiny_distilled_patch16_224", img_size=64).num_prefix_tokens == 2
    assert load_backbone("vit_small_patch14_reg4_dinov2", img_size=56, num_classes=10).num_prefix_tokens == 5


def test_swin_channels_last_stages():
    bb = load_backbone("swin_tiny_patch4_window7_224", num_classes=10)
    explainer = TTAME(bb)
    assert [layout for layout, _ in explainer.layouts] == ["NHWC"] * 3
    _, maps = explainer.backbone_forward(torch.rand(1, 3, 224, 224))
    assert [tuple(m.shape[1:]) for m in maps] == [(192, 28, 28), (384, 14, 14), (768, 7, 7)]
