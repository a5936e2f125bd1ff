"""The notebooks' data parameter: the offline scenes by default, an ImageNet-style folder otherwise."""

from __future__ import annotations

import pytest
import torch

from ttame_lib import InputError
from ttame_lib.world.data_source import evaluation_set, training_set
from ttame_lib.world.scenes import CompositeScenes


def test_scenes_follow_the_backbone_size_and_keep_splits_apart(small_cnn):
    train = training_set("scenes", small_cnn, 8, seed=3)
    assert isinstance(train, CompositeScenes) and train.split == "train"
    assert train[0][0].shape == (3, *small_cnn.input_size)  # the backbone's size unless size= says otherwise
    assert training_set("scenes", small_cnn, 8, size=64)[0][0].shape == (3, 64, 64)
    held_out = evaluation_set("scenes", small_cnn, 6, seed=3, size=64)
    validation = evaluation_set("scenes", small_cnn, 6, seed=3, size=64, validation=True)
    assert held_out.masks is not None and held_out.masks.shape == (6, 64, 64) and held_out.masks.dtype == torch.bool
    assert not torch.equal(held_out.images, validation.images)  # tuning never sees the scored scenes
    assert torch.equal(held_out.images, evaluation_set("scenes", small_cnn, 6, seed=3, size=64).images)
    assert not held_out.labels_are_backbone_classes  # a 10-class ImageNet-style model, 12 scene classes
    assert [tuple(b[0].shape) for b in held_out.loader(4)] == [(4, 3, 64, 64), (2, 3, 64, 64)]


def test_an_image_folder_gives_paper_preprocessed_images_without_masks(imagenet_like, small_cnn):
    train = training_set(imagenet_like, small_cnn, 5, seed=0)
    image, label = train[0]
    assert image.shape == (3, *small_cnn.input_size) and 0 <= float(image.min()) and float(image.max()) <= 1
    assert len(train) == 5 and label in (0, 1, 2)
    evaluation = evaluation_set(imagenet_like, small_cnn, 3, seed=0)
    validation = evaluation_set(imagenet_like, small_cnn, 2, seed=0, validation=True)
    assert evaluation.masks is None and evaluation.images.shape == (3, 3, *small_cnn.input_size)
    assert evaluation.class_names == ["n00006_nature", "n00007_indoors", "n00008_outdoors"]
    shared = {tuple(x.flatten()[:50].tolist()) for x in evaluation.images} & {
        tuple(x.flatten()[:50].tolist()) for x in validation.images
    }
    assert not shared  # 6 val images: 3 evaluated, 2 others for validation
    assert "no object masks" in evaluation.description


@pytest.mark.parametrize(
    ("data", "kwargs", "problem"),
    [
        ("/no/such/folder", {}, r"neither 'scenes'.*train/ and val/"),
        ("scene", {}, r"neither 'scenes'"),
        ("FOLDER", {"size": 32}, r"size=32 applies to the offline scenes only.*size=None"),
        ("FOLDER", {"count": 100}, r"count=100 training images asked.*holds 12"),
        ("scenes", {"count": 0}, r"count must be at least 1"),
    ],
)
def test_bad_data_sources_are_named_with_the_fix(data, kwargs, problem, imagenet_like, small_cnn):
    data = str(imagenet_like) if data == "FOLDER" else data
    count = kwargs.pop("count", 4)
    with pytest.raises(InputError, match=problem):
        training_set(data, small_cnn, count, **kwargs)


def test_a_folder_without_val_is_refused_naming_the_layout(tmp_path, imagenet_like, small_cnn):
    (tmp_path / "train").symlink_to(imagenet_like / "train")
    with pytest.raises(InputError, match=r"has no val/ folder.*one subfolder per class"):
        evaluation_set(tmp_path, small_cnn, 2)
