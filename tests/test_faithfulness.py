import pytest
import torch

from ttame_lib import InputError, load_backbone
from ttame_lib.evaluation.faithfulness import ConfidenceResult, confidence_drop, keep_masks, removal_masks, road
from ttame_lib.world.scenes import CompositeScenes


@pytest.fixture(scope="module")
def scenes_cnn():
    return load_backbone("scenes_cnn", weights="DEFAULT")


@pytest.fixture(scope="module")
def scenes():
    data = CompositeScenes("test", length=24, size=(64, 64), seed=0)
    items = [data[i] for i in range(len(data))]
    return torch.stack([i[0] for i in items]), torch.stack([i[2] for i in items]).float()


def test_keep_masks_threshold_at_the_maps_own_quantile():
    maps = torch.linspace(0, 1, 100).view(1, 10, 10)
    assert torch.equal(keep_masks(maps, 100), maps)
    kept = keep_masks(maps, 15)
    assert int((kept > 0).sum()) == 15
    assert torch.equal(kept[kept > 0], maps[kept > 0])  # soft: kept pixels keep their value
    constant = torch.full((1, 4, 4), 0.3)
    assert torch.equal(keep_masks(constant, 15), constant)  # nothing ranks lower: nothing removed


def test_average_drop_and_increase_formulas():
    result = ConfidenceResult(torch.tensor([0.8, 0.5, 0.4]), {15.0: torch.tensor([0.4, 0.6, 0.0])})
    # drops: 0.5, 0 (rose), 1.0 -> mean 0.5; one of three increased.
    assert result.average_drop(15) == pytest.approx(50.0)
    assert result.increase_in_confidence(15) == pytest.approx(100 / 3)
    assert set(result.summary()) == {"AD(15%)", "IC(15%)"}


def test_confidence_drop_on_a_real_classifier(scenes_cnn, scenes):
    images, masks = scenes
    full = confidence_drop(scenes_cnn, images, torch.ones_like(masks))
    assert full.average_drop(100) == pytest.approx(0.0, abs=1e-4)  # nothing masked: O == Y
    black = confidence_drop(scenes_cnn, images, torch.zeros_like(masks), percents=[15])
    truth = confidence_drop(scenes_cnn, images, masks, percents=[15])
    # Keeping the true object beats keeping nothing (a black image for a CNN).
    assert truth.average_drop(15) < black.average_drop(15)


def test_removal_masks_exact_counts_and_random_ties():
    maps = torch.rand(2, 8, 8, generator=torch.Generator().manual_seed(0))
    morf = removal_masks(maps, 25, "morf", torch.Generator().manual_seed(0))
    lerf = removal_masks(maps, 25, "lerf", torch.Generator().manual_seed(1))
    assert morf.flatten(1).sum(1).tolist() == [16, 16]
    assert maps[morf].min() > maps[lerf].max()
    assert torch.equal(morf, removal_masks(maps, 25, "morf", torch.Generator().manual_seed(5)))  # no ties
    flat = torch.zeros(1, 8, 8)
    a = removal_masks(flat, 50, "morf", torch.Generator().manual_seed(0))
    b = removal_masks(flat, 50, "morf", torch.Generator().manual_seed(1))
    assert int(a.sum()) == int(b.sum()) == 32 and not torch.equal(a, b)


def test_road_on_a_real_classifier(scenes_cnn, scenes):
    images, masks = scenes
    result, imputed = road(scenes_cnn, images, masks, percents=[10, 50], seed=0, return_images=True)
    again = road(scenes_cnn, images, masks, percents=[10, 50], seed=0)
    assert all(torch.equal(result.morf[p], again.morf[p]) for p in (10.0, 50.0))  # deterministic by seed
    assert set(imputed) == {("morf", 10.0), ("morf", 50.0), ("lerf", 10.0), ("lerf", 50.0)}
    summary = result.summary()
    assert set(summary) >= {"ROAD-MORF(10%)", "ROAD-LERF(50%)", "ROAD-MORF(mean)"}
    # Removing the object first destroys more predictions than removing background first.
    assert summary["ROAD-MORF(mean)"] < summary["ROAD-LERF(mean)"]


def test_faithfulness_bad_input(scenes_cnn, scenes):
    images, masks = scenes
    with pytest.raises(InputError, match=r"\(0, 100\)"):
        road(scenes_cnn, images, masks, percents=[100])
    with pytest.raises(InputError, match=r"\(0, 100\]"):
        confidence_drop(scenes_cnn, images, masks, percents=[0])
    with pytest.raises(InputError, match="upsample"):
        confidence_drop(scenes_cnn, images, masks[:, :32, :32])
    with pytest.raises(InputError, match="NaN"):
        road(scenes_cnn, images, torch.full_like(masks, float("nan")))
    with pytest.raises(InputError, match="minmax_normalize"):
        confidence_drop(scenes_cnn, images, masks * 3)
    with pytest.raises(InputError, match="on meta"):
        confidence_drop(scenes_cnn, images, masks.to("meta"))
    with pytest.raises(InputError, match="morf"):
        removal_masks(masks, 10, "most")
