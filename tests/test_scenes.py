import csv
import shutil

import pytest
import torch

from ttame_lib.world.scenes import DATA_DIR, AssetError, CompositeScenes, load_assets


def test_assets_match_the_manifest():
    assets = load_assets()
    assert len(assets.classes) == 12
    assert all(len(files) >= 8 for files in assets.stamps.values())
    assert len(assets.backgrounds) >= 50


def test_scenes_are_deterministic_by_seed_and_index():
    a = CompositeScenes("train", length=10, size=80, seed=3)
    b = CompositeScenes("train", length=10, size=80, seed=3)
    c = CompositeScenes("train", length=10, size=80, seed=4)
    for i in (0, 7):
        ia, la, ma = a[i]
        ib, lb, mb = b[i]
        assert torch.equal(ia, ib) and la == lb and torch.equal(ma, mb)
    assert not torch.equal(a[0][0], c[0][0])


@pytest.mark.parametrize("size", [64, (96, 128), 224])
def test_shapes_ranges_and_masks(size):
    ds = CompositeScenes("test", length=6, size=size, distractors=2)
    h, w = (size, size) if isinstance(size, int) else size
    for i in range(len(ds)):
        scene = ds.scene(i)
        assert scene.image.shape == (3, h, w) and scene.image.dtype == torch.float32
        assert 0 <= scene.image.min() and scene.image.max() <= 1
        assert scene.mask.shape == (h, w) and scene.mask.dtype == torch.bool
        top, left, bh, bw = scene.box
        inside = torch.zeros_like(scene.mask)
        inside[top : top + bh, left : left + bw] = True
        assert scene.mask.any() and not (scene.mask & ~inside).any()
        assert 0 <= scene.label < 12 and scene.instance.startswith(ds.classes[scene.label] + "/")


def test_splits_hold_out_backgrounds_and_optionally_instances():
    train, test = CompositeScenes("train"), CompositeScenes("test")
    assert not set(train.backgrounds) & set(test.backgrounds)
    assert train.instances == test.instances
    train_i, test_i = CompositeScenes("train", holdout="instance"), CompositeScenes("test", holdout="instance")
    for name in train_i.classes:
        assert train_i.instances[name] and test_i.instances[name]
        assert not set(train_i.instances[name]) & set(test_i.instances[name])
    seen = {test_i.scene(i).instance for i in range(40)}
    assert not seen & {f"{n}/{p.name}" for n in train_i.classes for p in train_i.instances[n]}


def test_spurious_cue_follows_the_cue_class():
    ds = CompositeScenes("train", length=200, size=64, cue_class=2, cue_rate=1.0)
    scenes = [ds.scene(i) for i in range(200)]
    assert all(s.has_cue == (s.label == 2) for s in scenes)
    cued = next(s for s in scenes if s.has_cue)
    corner = cued.image[:, -8:-2, -8:-2]
    assert set(corner.unique().tolist()) == {0.0, 1.0}


def test_bad_arguments():
    with pytest.raises(ValueError, match="at least 64"):
        CompositeScenes(size=32)
    with pytest.raises(ValueError, match="split"):
        CompositeScenes("val")
    with pytest.raises(ValueError, match="unknown classes"):
        CompositeScenes(classes=["bird", "unicorn"])
    with pytest.raises(IndexError):
        CompositeScenes(length=3).scene(3)


def _copy_data(tmp_path):
    target = tmp_path / "data"
    shutil.copytree(DATA_DIR, target)
    with open(target / "MANIFEST.csv") as handle:
        first = next(csv.DictReader(handle))["file"]
    return target, target / first


def test_missing_asset_names_file_and_restore_command(tmp_path):
    data, first = _copy_data(tmp_path)
    first.unlink()
    with pytest.raises(AssetError, match=f"{first.name} is missing.*git checkout -- data/"):
        CompositeScenes(data_dir=data)


def test_corrupt_asset_names_file_and_restore_command(tmp_path):
    data, first = _copy_data(tmp_path)
    first.write_bytes(b"garbage")
    with pytest.raises(AssetError, match=f"{first.name} is corrupt.*fetch_assets.py"):
        CompositeScenes(data_dir=data)
