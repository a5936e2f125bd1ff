import pytest
from PIL import Image

from ttame_lib import InputError, load_backbone
from ttame_lib.world.image_files import ImageFiles


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
