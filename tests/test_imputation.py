import numpy as np
import pytest
import torch
from pytorch_grad_cam.metrics.road import NoisyLinearImputer

from ttame_lib import InputError
from ttame_lib.evaluation.imputation import linear_impute

# pytorch-grad-cam calls numpy on torch tensors, which numpy 2 flags as deprecated.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def smooth_maps(count, size, seed):
    coarse = torch.rand(count, 1, 5, 5, generator=torch.Generator().manual_seed(seed))
    return torch.nn.functional.interpolate(coarse, size=size, mode="bilinear")[:, 0]


@pytest.mark.parametrize("solver", ["direct", "multigrid"])
@pytest.mark.parametrize("percent", [10, 50, 90])
def test_imputation_matches_pytorch_grad_cam_without_noise(solver, percent):
    gen = torch.Generator().manual_seed(percent)
    images = torch.randn(3, 3, 40, 48, generator=gen)  # a normalised-looking input, non-square
    maps = smooth_maps(3, (40, 48), percent)
    threshold = torch.quantile(maps.flatten(1), 1 - percent / 100, dim=1).view(-1, 1, 1)
    removed = maps >= threshold
    ours = linear_impute(images, removed, noise=0.0, solver=solver)
    reference = NoisyLinearImputer(noise=0.0)
    for i in range(3):
        expected = reference(images[i], (~removed[i]).float())
        assert torch.allclose(ours[i], expected, atol=1e-4), float((ours[i] - expected).abs().max())
    assert torch.equal(ours[~removed.unsqueeze(1).expand_as(ours)], images[~removed.unsqueeze(1).expand_as(images)])


def test_imputed_pixels_are_weighted_means_of_their_neighbours():
    image = torch.zeros(1, 1, 5, 5)
    image[0, 0, :, 0] = 1.0
    removed = torch.zeros(1, 5, 5, dtype=torch.bool)
    removed[0, 2, 2] = True
    out = linear_impute(image, removed, noise=0.0)
    # Left column neighbours: 1/12 + 1/6 + 1/12 -> only (1,1),(2,1),(3,1) are neighbours, all 0.
    assert float(out[0, 0, 2, 2]) == pytest.approx(0.0)
    image[0, 0, 1:4, 1] = 1.0  # the whole left neighbour column is 1: weight 1/12 + 1/6 + 1/12
    out = linear_impute(image, removed, noise=0.0)
    assert float(out[0, 0, 2, 2]) == pytest.approx(1 / 3)


def test_noise_is_seeded_and_only_on_removed_pixels():
    images = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    removed = smooth_maps(2, (16, 16), 1) > 0.6
    a = linear_impute(images, removed, noise=0.01, generator=torch.Generator().manual_seed(3))
    b = linear_impute(images, removed, noise=0.01, generator=torch.Generator().manual_seed(3))
    clean = linear_impute(images, removed, noise=0.0)
    assert torch.equal(a, b)
    kept = ~removed.unsqueeze(1).expand_as(a)
    assert torch.equal(a[kept], images[kept])
    assert 0.005 < float((a - clean)[~kept].std()) < 0.02


def test_imputation_bad_input():
    images = torch.rand(1, 3, 8, 8)
    with pytest.raises(InputError, match="at least one kept pixel"):
        linear_impute(images, torch.ones(1, 8, 8, dtype=torch.bool))
    with pytest.raises(InputError, match=r"\(B, H, W\) mask"):
        linear_impute(images, torch.ones(1, 4, 4, dtype=torch.bool))
    with pytest.raises(InputError, match="solver"):
        linear_impute(images, torch.zeros(1, 8, 8, dtype=torch.bool), solver="magic")
    assert np.array_equal(linear_impute(images, torch.zeros(1, 8, 8, dtype=torch.bool), noise=0.0), images)


def test_multigrid_with_noise_uses_a_looser_tolerance_far_below_the_noise():
    images = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    removed = smooth_maps(2, (64, 64), 2) > 0.5
    exact = linear_impute(images, removed, noise=0.01, solver="direct", generator=torch.Generator().manual_seed(1))
    fast = linear_impute(images, removed, noise=0.01, solver="multigrid", generator=torch.Generator().manual_seed(1))
    # Same noise draws; what differs is the solver's error, which must stay well below the noise (0.01).
    assert float((fast - exact).abs().max()) < 2e-3


def test_multigrid_handles_sizes_that_do_not_halve():
    images = torch.rand(1, 3, 30, 45, generator=torch.Generator().manual_seed(0))
    removed = smooth_maps(1, (30, 45), 3) > 0.4
    exact = linear_impute(images, removed, noise=0.0, solver="direct")
    assert torch.allclose(linear_impute(images, removed, noise=0.0, solver="multigrid"), exact, atol=1e-4)
