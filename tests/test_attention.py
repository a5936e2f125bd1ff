import pytest
import torch
import torch.nn.functional as F

from ttame_lib import AttentionMechanism
from ttame_lib.method.attention import fused_size


def literal_attention(mech: AttentionMechanism, maps):
    """docs/method.md word for word: branch, upsample to the common size, concatenate, fuse, sigmoid."""
    size = fused_size([tuple(m.shape[-2:]) for m in maps], mech.max_size)
    outs = []
    for branch, x in zip(mech.branches, maps):
        y = F.relu(branch.bn(branch.conv(x)) + x)
        outs.append(F.interpolate(y, size=size, mode="bilinear", align_corners=False))
    return torch.sigmoid(mech.fuse(torch.cat(outs, dim=1)))


def make(maps_shapes, classes=7, max_size=56, seed=0):
    torch.manual_seed(seed)
    mech = AttentionMechanism([c for c, _, _ in maps_shapes], classes, max_size)
    # Non-trivial BatchNorm statistics, as after training.
    for branch in mech.branches:
        branch.bn.running_mean.normal_()
        branch.bn.running_var.uniform_(0.5, 2.0)
        branch.bn.weight.data.normal_()
    mech.eval()
    maps = [torch.randn(3, c, h, w) for c, h, w in maps_shapes]
    return mech, maps


@pytest.mark.parametrize(
    "shapes",
    [
        [(8, 28, 28), (16, 14, 14), (32, 7, 7)],
        [(8, 112, 112), (16, 28, 28)],  # larger than the cap: downsampled to 56
        [(6, 10, 15), (6, 5, 8)],  # non-square
    ],
)
def test_matches_the_literal_formulation(shapes):
    mech, maps = make(shapes)
    with torch.no_grad():
        expected = literal_attention(mech, maps)
        got = mech(maps)
    assert got.shape == expected.shape
    assert torch.allclose(got, expected, atol=1e-5)


def test_common_size_is_the_largest_map_capped_at_56():
    assert fused_size([(28, 28), (14, 14)], 56) == (28, 28)
    assert fused_size([(112, 112), (7, 7)], 56) == (56, 56)
    assert fused_size([(10, 80), (5, 40)], 56) == (10, 56)


def test_selected_classes_equal_rows_of_all_maps():
    mech, maps = make([(8, 14, 14), (16, 7, 7)], classes=11)
    with torch.no_grad():
        every = mech(maps)
        chosen = torch.tensor([3, 0, 10])
        single = mech(maps, chosen)
        several = mech(maps, torch.tensor([[1, 2], [10, 10], [0, 5]]))
    assert every.shape == (3, 11, 14, 14)
    assert single.shape == (3, 14, 14)
    assert torch.allclose(single, every[torch.arange(3), chosen], atol=1e-6)
    assert several.shape == (3, 2, 14, 14)
    assert torch.allclose(several[1, 0], every[1, 10], atol=1e-6)
    assert torch.allclose(several[2, 1], every[2, 5], atol=1e-6)


def test_maps_are_in_open_unit_interval_and_branches_have_paper_structure():
    mech, maps = make([(8, 14, 14)])
    out = mech(maps)
    assert ((out > 0) & (out < 1)).all()
    branch = mech.branches[0]
    assert branch.conv.kernel_size == (1, 1) and branch.conv.in_channels == branch.conv.out_channels == 8
    assert branch.conv.bias is not None
    assert mech.fuse.kernel_size == (1, 1) and mech.fuse.out_channels == 7
