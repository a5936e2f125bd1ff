import numpy as np
import pytest
import torch
from PIL import Image

from ttame_lib import InputError, load_backbone
from ttame_lib.world.image_files import UNLABELLED, ImageFiles


def test_corrupt_files_are_skipped_with_a_counted_warning(tmp_path):
    for folder in ("cats", "dogs"):
        (tmp_path / folder).mkdir()
        for i in range(2):
            Image.new("RGB", (40, 30), (i * 100, 50, 50)).save(tmp_path / folder / f"{i}.png")
    (tmp_path / "dogs" / "broken.jpg").write_bytes(b"\xff\xd8\xff truncated")
    (tmp_path / "cats" / "empty.png").write_bytes(b"")
    transform = load_backbone("resnet18", num_classes=2).preprocessing.transform()
    with pytest.warns(UserWarning, match=r"skipped 2 corrupt image\(s\) of 6"):
        dataset = ImageFiles(tmp_path, transform)
    assert len(dataset) == 4 and dataset.classes == ["cats", "dogs"]
    image, label = dataset[3]
    assert image.shape == (3, 224, 224) and label == 1


def test_empty_or_missing_folder(tmp_path):
    with pytest.raises(InputError, match="not found"):
        ImageFiles(tmp_path / "nope", lambda x: x)
    with pytest.raises(InputError, match="no readable images"):
        ImageFiles(tmp_path, lambda x: x)


def _truncated_jpeg(path):
    """A JPEG whose header is intact but whose pixel data stops half way (an interrupted download)."""
    gradient = Image.linear_gradient("L").resize((120, 90)).convert("RGB")
    gradient.save(path, quality=95)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_a_truncated_jpeg_is_caught_up_front_not_mid_training(tmp_path):
    (tmp_path / "a").mkdir()
    Image.new("RGB", (40, 30)).save(tmp_path / "a" / "fine.jpg")
    _truncated_jpeg(tmp_path / "a" / "half.jpg")
    with Image.open(tmp_path / "a" / "half.jpg") as image:
        image.verify()  # the header check alone passes: that is the trap
    with pytest.warns(UserWarning, match=r"skipped 1 corrupt image\(s\) of 2.*half\.jpg"):
        dataset = ImageFiles(tmp_path, lambda image: image)
    assert [p.name for p in dataset.files] == ["fine.jpg"]
    # The fast header-only scan keeps the file, and reading it then fails with its name, not deep in PIL.
    fast = ImageFiles(tmp_path, lambda image: image, check="header")
    with pytest.raises(InputError, match=r"half\.jpg.*corrupt"):
        [fast[i] for i in range(len(fast))]


def test_16_bit_and_transparent_images_keep_their_content(tmp_path):
    ramp = np.linspace(0, 65535, 64 * 64).reshape(64, 64).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "deep.png")
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[:4, ..., 3] = 255  # top half opaque red, bottom half fully transparent (red stored underneath)
    Image.fromarray(rgba).save(tmp_path / "cut-out.png")
    dataset = ImageFiles(tmp_path, lambda image: torch.from_numpy(np.asarray(image).copy()))
    deep, label = dataset[dataset.files.index(tmp_path / "deep.png")]
    assert label == UNLABELLED and dataset.classes == []
    # convert("RGB") would clip to 255 almost everywhere; the ramp must survive as a ramp.
    assert abs(deep.float().mean().item() - 127.5) < 1.0 and deep.min() == 0 and deep.max() == 255
    cut_out, _ = dataset[dataset.files.index(tmp_path / "cut-out.png")]
    assert cut_out[:4].tolist() == [[[255, 0, 0]] * 8] * 4  # opaque pixels unchanged
    assert cut_out[4:].tolist() == [[[255, 255, 255]] * 8] * 4  # transparent pixels composited on white


def test_images_beside_class_folders_are_refused_not_given_the_first_label(tmp_path):
    (tmp_path / "cats").mkdir()
    Image.new("RGB", (16, 16)).save(tmp_path / "cats" / "c.png")
    Image.new("RGB", (16, 16)).save(tmp_path / "stray.png")
    with pytest.raises(InputError, match=r"1 image\(s\) lie directly in .*stray\.png.*Move them into a class folder"):
        ImageFiles(tmp_path, lambda image: image)


def test_an_image_over_the_pixel_limit_is_skipped_as_too_large_not_corrupt(tmp_path, monkeypatch):
    Image.new("RGB", (16, 16)).save(tmp_path / "small.png")
    Image.new("RGB", (60, 60)).save(tmp_path / "huge.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 3,600 px > 2x the limit: a "bomb"
    with pytest.warns(UserWarning, match=r"1 image\(s\) of 2 as too large.*MAX_IMAGE_PIXELS = None") as caught:
        dataset = ImageFiles(tmp_path, lambda image: image)
    assert not any("corrupt" in str(w.message) for w in caught)
    assert [p.name for p in dataset.too_large] == ["huge.png"] and len(dataset) == 1
