import pytest
import torch

from ttame_lib import InputError
from ttame_lib.world.photo_pool import PhotoPool
from ttame_lib.world.scenes import CompositeScenes, load_assets


def test_views_are_deterministic_images_in_unit_range():
    pool = PhotoPool(length=20, size=96, seed=3)
    first = pool[5]
    assert first.shape == (3, 96, 96) and first.dtype == torch.float32
    assert 0 <= float(first.min()) and float(first.max()) <= 1
    assert torch.equal(first, PhotoPool(length=20, size=96, seed=3)[5])
    assert not torch.equal(first, PhotoPool(length=20, size=96, seed=4)[5])


def test_pool_holds_every_cutout_and_only_training_backgrounds():
    assets = load_assets()
    pool = PhotoPool(length=1)
    assert len(pool.cutouts) == sum(len(v) for v in assets.stamps.values()) + len(assets.photos)
    assert len(assets.photos) >= 150  # the photographic stamps beyond the 12 scene classes
    test_backgrounds = set(CompositeScenes("test", length=1).backgrounds)
    assert test_backgrounds and not test_backgrounds & set(pool.backgrounds)


def test_views_show_many_different_photos():
    pool = PhotoPool(length=200, size=64, seed=0)
    sources = {pool.view(i)[1] for i in range(200)}
    assert len(sources) > 100


@pytest.mark.parametrize(
    "kwargs, match",
    [({"length": 0}, "length"), ({"object_share": 1.5}, "object_share"), ({"crop_scale": (0.9, 0.5)}, "crop_scale")],
)
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(InputError, match=match):
        PhotoPool(**kwargs)
