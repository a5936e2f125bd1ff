import pytest
import torch

from ttame_lib import InputError
from ttame_lib.metrics import pointing_game


def test_pointing_game_hits_and_misses():
    masks = torch.zeros(3, 4, 4, dtype=torch.bool)
    masks[:, :2, :2] = True
    maps = torch.zeros(3, 4, 4)
    maps[0, 1, 1] = 1.0  # peak inside
    maps[1, 3, 3] = 1.0  # peak outside
    maps[2] = 0.5  # constant map: ties outside the mask, no lucky hit
    assert pointing_game(maps, masks).tolist() == [1.0, 0.0, 0.0]


def test_pointing_game_bad_input():
    with pytest.raises(InputError, match="same shape"):
        pointing_game(torch.zeros(2, 4, 4), torch.zeros(2, 4, 5, dtype=torch.bool))
    with pytest.raises(InputError, match="NaN"):
        pointing_game(torch.full((1, 2, 2), float("nan")), torch.ones(1, 2, 2, dtype=torch.bool))
