"""ImageMixture: seeded, respects its shares, returns images only, rejects bad arguments."""

import pytest
import torch
from torch.utils.data import TensorDataset

from ttame_lib.errors import InputError
from ttame_lib.world.mixture import ImageMixture


def _parts():
    zeros = torch.zeros(10, 3, 8, 8)
    # A scenes-like part: (image, label, mask) tuples.
    ones = TensorDataset(torch.ones(7, 3, 8, 8), torch.arange(7), torch.zeros(7, 1, 8, 8))
    return [zeros, ones]


def test_items_are_images_from_the_part_drawn():
    mixture = ImageMixture(_parts(), [0.5, 0.5], length=400, seed=3)
    for index in range(len(mixture)):
        image = mixture[index]
        assert image.shape == (3, 8, 8)
        assert float(image.mean()) == float(mixture.part_of(index))


def test_shares_are_respected_and_the_draw_is_seeded():
    mixture = ImageMixture(_parts(), [3, 1], length=4000, seed=0)
    share = sum(mixture.part_of(i) for i in range(len(mixture))) / len(mixture)
    assert share == pytest.approx(0.25, abs=0.03)
    same = ImageMixture(_parts(), [3, 1], length=4000, seed=0)
    other = ImageMixture(_parts(), [3, 1], length=4000, seed=1)
    picks = [mixture.part_of(i) for i in range(4000)]
    assert picks == [same.part_of(i) for i in range(4000)]
    assert picks != [other.part_of(i) for i in range(4000)]


def test_a_zero_share_never_draws_that_part():
    mixture = ImageMixture(_parts(), [1, 0], length=200)
    assert all(mixture.part_of(i) == 0 for i in range(200))


@pytest.mark.parametrize(
    ("shares", "length", "message"),
    [
        ([1.0], 10, "one share per part"),
        ([1, -1], 10, "non-negative"),
        ([0, 0], 10, "not all zero"),
        ([1, 1], 0, "length"),
    ],
)
def test_bad_arguments_are_named(shares, length, message):
    with pytest.raises(InputError, match=message):
        ImageMixture(_parts(), shares, length=length)


def test_out_of_range_index():
    with pytest.raises(IndexError, match="out of range"):
        ImageMixture(_parts(), [1, 1], length=5)[5]
