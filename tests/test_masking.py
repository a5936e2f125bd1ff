import torch

from ttame_lib import Preprocessing, mask_images, minmax_normalize

PREP = Preprocessing(input_size=(4, 4), resize_size=4, mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3))


def test_cnn_masks_raw_pixels_so_removed_pixels_are_black():
    images = torch.rand(1, 3, 4, 4)
    masks = torch.zeros(1, 4, 4)
    masks[:, :2] = 1.0
    out = mask_images(images, masks, "cnn", PREP.normalize)
    assert torch.allclose(PREP.denormalize(out)[:, :, 2:], torch.zeros(1, 3, 2, 4), atol=1e-6)
    assert torch.allclose(out[:, :, :2], PREP.normalize(images)[:, :, :2])


def test_vit_masks_normalised_pixels_so_removed_pixels_are_the_mean_colour():
    images = torch.rand(1, 3, 4, 4)
    masks = torch.zeros(1, 4, 4)
    out = mask_images(images, masks, "vit", PREP.normalize)
    mean = torch.tensor(PREP.mean).view(1, 3, 1, 1).expand(1, 3, 4, 4)
    assert torch.allclose(PREP.denormalize(out), mean, atol=1e-6)


def test_soft_masks_scale_in_the_right_domain():
    images = torch.rand(2, 3, 4, 4)
    masks = torch.full((2, 4, 4), 0.5)
    assert torch.allclose(mask_images(images, masks, "cnn", PREP.normalize), PREP.normalize(images * 0.5))
    assert torch.allclose(mask_images(images, masks, "vit", PREP.normalize), PREP.normalize(images) * 0.5)


def test_minmax_normalize_per_map_and_constant_maps():
    maps = torch.stack([torch.arange(16.0).view(4, 4), torch.full((4, 4), 3.0)])
    out = minmax_normalize(maps)
    assert out[0].min() == 0 and out[0].max() == 1
    assert torch.equal(out[1], torch.zeros(4, 4))
