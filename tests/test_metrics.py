import pytest
import torch

from ttame_lib import InputError
from ttame_lib.evaluation.localisation import (
    energy_pointing_game,
    mask_area,
    object_classes,
    pointing_game,
    top_k_iou,
)


def test_pointing_game_hits_and_misses():
    masks = torch.zeros(3, 4, 4, dtype=torch.bool)
    masks[:, :2, :2] = True
    maps = torch.zeros(3, 4, 4)
    maps[0, 1, 1] = 1.0  # peak inside
    maps[1, 3, 3] = 1.0  # peak outside
    maps[2] = 0.5  # constant map: every pixel ties, so it scores the mask's area share (chance)
    assert pointing_game(maps, masks).tolist() == [1.0, 0.0, 0.25]
    plateau = torch.zeros(1, 4, 4)
    plateau[0, 1:3, 1:3] = 1.0  # 4 tied peaks, one inside the mask
    assert pointing_game(plateau, masks[:1]).tolist() == [0.25]


def test_pointing_game_bad_input():
    with pytest.raises(InputError, match="do not match masks"):
        pointing_game(torch.zeros(2, 4, 4), torch.zeros(2, 4, 5, dtype=torch.bool))
    with pytest.raises(InputError, match="NaN or infinite"):
        pointing_game(torch.full((1, 2, 2), float("nan")), torch.ones(1, 2, 2, dtype=torch.bool))


def test_energy_pointing_game_is_mass_share_and_chance_for_constant_maps():
    masks = torch.zeros(3, 4, 4, dtype=torch.bool)
    masks[:, :2, :2] = True  # 4 of 16 pixels
    maps = torch.zeros(3, 4, 4)
    maps[0, :2, :2] = 1.0  # all mass inside
    maps[1, 0, 0], maps[1, 3, 3] = 1.0, 3.0  # a quarter inside
    maps[2] = 0.7  # constant: the area share
    assert energy_pointing_game(maps, masks).tolist() == pytest.approx([1.0, 0.25, 0.25])
    assert energy_pointing_game(torch.zeros(1, 4, 4), masks[:1]).tolist() == [0.0]
    with pytest.raises(InputError, match="non-negative"):
        energy_pointing_game(-maps, masks)


def test_top_k_iou():
    masks = torch.zeros(2, 10, 10, dtype=torch.bool)
    masks[:, :1, :] = True  # top row: 10 % of the image
    maps = torch.rand(2, 10, 10, generator=torch.Generator().manual_seed(0)) * 0.5
    maps[0, 0, :] = 1.0  # the top 10 % is exactly the mask
    maps[1, 5, :] = 1.0  # the top 10 % is another row
    assert top_k_iou(maps, masks, 10).tolist() == pytest.approx([1.0, 0.0])
    # Ties at the threshold are all included: a constant map selects everything.
    assert top_k_iou(torch.ones(1, 10, 10), masks[:1], 10).tolist() == pytest.approx([0.1])
    assert mask_area(masks).tolist() == pytest.approx([0.1, 0.1])
    with pytest.raises(InputError, match=r"\(0, 100\]"):
        top_k_iou(maps, masks, 0)


def test_localisation_bad_input_names_the_problem():
    maps, masks = torch.rand(2, 4, 4), torch.ones(2, 4, 4, dtype=torch.bool)
    with pytest.raises(InputError, match="upsample"):
        energy_pointing_game(torch.rand(2, 2, 2), masks)
    with pytest.raises(InputError, match=r"\(B, H, W\)"):
        top_k_iou(torch.rand(2, 1, 4, 4), masks)
    with pytest.raises(InputError, match="meta"):
        pointing_game(maps.to("meta"), masks)
    with pytest.raises(InputError, match="empty"):
        pointing_game(maps, torch.zeros(2, 4, 4, dtype=torch.bool))
    with pytest.raises(InputError, match="infinite"):
        energy_pointing_game(torch.full((2, 4, 4), float("inf")), masks)


def _colour_classifier(images: torch.Tensor) -> torch.Tensor:
    """Logits = mean of each colour channel: class 0 red, 1 green, 2 blue."""
    return images.mean(dim=(2, 3))


def test_object_classes_name_the_object_not_the_background():
    images = torch.zeros(2, 3, 16, 16)
    images[:, 2] = 1.0  # blue background: the whole scene is "blue"
    masks = torch.zeros(2, 16, 16, dtype=torch.bool)
    masks[0, 1:5, 2:6] = True  # a small red object in a corner
    images[0, :, 1:5, 2:6] = torch.tensor([1.0, 0.0, 0.0])[:, None, None]
    masks[1, 10:15, 9:12] = True  # a green one
    images[1, :, 10:15, 9:12] = torch.tensor([0.0, 1.0, 0.0])[:, None, None]
    assert _colour_classifier(images).argmax(1).tolist() == [2, 2]
    assert object_classes(_colour_classifier, images, masks, batch_size=1).tolist() == [0, 1]


def test_object_classes_need_an_object():
    masks = torch.zeros(1, 8, 8, dtype=torch.bool)
    with pytest.raises(InputError, match="empty"):
        object_classes(_colour_classifier, torch.rand(1, 3, 8, 8), masks)
    with pytest.raises(InputError, match="images must be"):
        object_classes(_colour_classifier, torch.rand(3, 8, 8), masks)
