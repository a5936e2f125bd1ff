import warnings

import numpy as np
import pytest
import torch

from ttame_lib import CheckpointNotFoundError, InputError, make_explainer
from ttame_lib.evaluation import (
    SUMMARY_COLUMNS,
    bootstrap_interval,
    evaluate_explainer,
    format_cell,
    paired_difference,
    results_table,
    score_explainer,
)
from ttame_lib.world.scenes import CompositeScenes
from ttame_lib.world.shipped import SHIPPED_EXPLAINERS, load_shipped_explainer


@pytest.fixture(scope="module")
def scenes():
    data = CompositeScenes("test", length=16, size=(64, 64), seed=0)
    items = [data[i] for i in range(len(data))]
    return torch.stack([i[0] for i in items]), torch.stack([i[2] for i in items])


@pytest.mark.parametrize("name", ["scenes_cnn", "scenes_vit"])
def test_shipped_explainers_load_and_find_objects(name, scenes):
    explainer = load_shipped_explainer(name)
    images, masks = scenes
    result = evaluate_explainer(explainer, explainer.backbone, images, masks, batch_size=8, progress=False)
    assert {key for key, _ in SUMMARY_COLUMNS} <= set(result)
    assert result["ms_per_image"] > 0 and result["latency_ratio"] > 0
    # A trained explainer must beat a uniform map's energy share (the object's area, ~13 %).
    area = 100 * float(masks.float().mean())
    assert result["energy_pointing_game"] > area
    # Every mean over images carries its bootstrap interval, around the value itself.
    means = [f"{m}({p}%)" for m in ("AD", "IC") for p in (100, 50, 15)] + ["ROAD-MORF(mean)", "ROAD-LERF(mean)"]
    means += ["pointing_game", "energy_pointing_game", "top10%_iou"]
    assert {k for k in result if k.endswith(("_lo", "_hi"))} == {f"{k}_{end}" for k in means for end in ("lo", "hi")}
    for key in means:
        assert result[f"{key}_lo"] - 1e-6 <= result[key] <= result[f"{key}_hi"] + 1e-6, key
    assert "ROAD-MORF(10%)_lo" not in result and "ms_per_image_lo" not in result
    explainer.close()


def test_results_table_lists_every_method(scenes):
    explainer = load_shipped_explainer("scenes_cnn")
    images, masks = scenes
    gradcam = make_explainer(explainer.backbone, "gradcam")
    rows = []
    for name, ex in [("ttame", explainer), ("gradcam", gradcam)]:
        rows.append(
            {"method": name, **evaluate_explainer(ex, explainer.backbone, images[:8], masks[:8], progress=False)}
        )
    gradcam.close()
    table = results_table(rows)
    assert table.count("\n") == 3 and "| ttame |" in table and "| gradcam |" in table


def test_shipped_explainer_errors(tmp_path, monkeypatch):
    with pytest.raises(InputError, match="scenes_cnn"):
        load_shipped_explainer("resnet50")
    import ttame_lib.world.shipped as shipped

    monkeypatch.setattr(shipped, "DATA_DIR", tmp_path)
    with pytest.raises(CheckpointNotFoundError, match="git checkout -- data/explainers"):
        load_shipped_explainer("scenes_cnn")
    assert set(SHIPPED_EXPLAINERS) == {"scenes_cnn", "scenes_vit", "tf_efficientnet_lite0"}


def test_bootstrap_interval_contains_the_mean_and_narrows():
    rng = np.random.default_rng(0)
    small, large = ((rng.random(n) < 0.3).astype(float) for n in (50, 5000))
    lo_small, hi_small = bootstrap_interval(small, seed=1)
    lo_large, hi_large = bootstrap_interval(large, seed=1)
    assert lo_small <= small.mean() <= hi_small and lo_large <= large.mean() <= hi_large
    assert lo_large < 0.3 < hi_large
    assert hi_large - lo_large < (hi_small - lo_small) / 4  # width shrinks like 1 / sqrt(n): 10x here
    assert bootstrap_interval(small, seed=1) == (lo_small, hi_small)  # deterministic by seed
    assert bootstrap_interval(torch.tensor(small), seed=1) == (lo_small, hi_small)
    assert bootstrap_interval(large, seed=2) != (lo_large, hi_large)
    lo90, hi90 = bootstrap_interval(small, confidence=0.9, seed=1)
    assert lo_small <= lo90 <= hi90 <= hi_small


def test_bootstrap_interval_of_a_constant_sample_is_the_value():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a degenerate sample must not warn
        assert bootstrap_interval([100.0] * 20) == (100.0, 100.0)
        assert bootstrap_interval(np.zeros(7)) == (0.0, 0.0)
        assert bootstrap_interval([42.5]) == (42.5, 42.5)
    with pytest.raises(InputError, match="empty"):
        bootstrap_interval([])
    with pytest.raises(InputError, match="NaN"):
        bootstrap_interval([1.0, float("nan")])
    with pytest.raises(InputError, match="confidence"):
        bootstrap_interval([1.0, 2.0], confidence=95)
    with pytest.raises(InputError, match="n_resamples"):
        bootstrap_interval([1.0, 2.0], n_resamples=0)


def test_uniform_map_scores_zero_drop_and_chance(scenes):
    """A map that ranks nothing keeps every pixel (AD = IC = 0) and localises at chance level."""
    explainer = load_shipped_explainer("scenes_cnn")
    explainer.close()
    images, masks = scenes[0][:8], scenes[1][:8]
    scores = score_explainer(
        make_explainer(explainer.backbone, "uniform"), explainer.backbone, images, masks, progress=False
    )
    result = scores.summary(seed=3)
    chance = 100 * float(masks.flatten(1).float().mean(1).mean())
    # Every level keeps the whole image: the masked probabilities are the original ones, up to float
    # rounding (the masked copies go through the backbone in another batch, and kernels may differ).
    for level in (100.0, 50.0, 15.0):
        assert torch.allclose(scores.confidence.masked[level], scores.confidence.original, atol=1e-5)
        for key in (f"AD({level:g}%)", f"AD({level:g}%)_lo", f"AD({level:g}%)_hi"):
            assert result[key] == pytest.approx(0.0, abs=1e-3)
    assert result["pointing_game"] == pytest.approx(chance, abs=1e-3)
    assert result["energy_pointing_game"] == pytest.approx(chance, abs=1e-3)
    # The per-image terms average to the reported metrics; subsets keep the timings.
    for key, values in scores.per_image().items():
        assert float(values.mean()) == pytest.approx(result[key], abs=1e-3), key
    assert scores.subset(torch.ones(8, dtype=torch.bool)).summary(seed=3) == result
    half = scores.subset([0, 1, 2, 3])
    assert len(half) == 4 and half.ms_per_image == scores.ms_per_image
    assert "AD(15%)_lo" not in scores.summary(n_resamples=0)
    with pytest.raises(InputError, match="no image"):
        scores.subset([])


def test_results_table_prints_intervals():
    row = {"method": "m", "pointing_game": 45.23, "pointing_game_lo": 41.04, "pointing_game_hi": 49.51}
    row |= {"latency_ratio": 1.234, "ms_per_image": 3.0}
    columns = [("pointing_game", "PG"), ("latency_ratio", "x"), ("ms_per_image", "ms")]
    assert format_cell(row, "pointing_game", intervals=True) == "45.2 [41.0, 49.5]"
    assert format_cell(row, "pointing_game") == "45.2"
    assert "| m | 45.2 [41.0, 49.5] | 1.23 | 3.0 |" in results_table([row], columns, intervals=True)
    assert "| m | 45.2 | 1.23 | 3.0 |" in results_table([row], columns)
    assert format_cell({"accuracy": None}, "accuracy") == "–"


def test_road_can_be_limited_to_the_first_images(scenes):
    images, masks = scenes
    backbone = load_shipped_explainer("scenes_cnn").backbone
    centre = make_explainer(backbone, "centre")
    scores = score_explainer(centre, backbone, images[:6], masks[:6], batch_size=4, road_images=5, progress=False)
    per_image = scores.per_image()
    assert len(per_image["AD(15%)"]) == 6 and len(per_image["ROAD-MORF(mean)"]) == 5
    assert scores.road_images == 5
    assert scores.subset([0, 5]).road_images == 1  # image 5 has no ROAD result
    full = score_explainer(centre, backbone, images[:5], masks[:5], batch_size=4, progress=False)
    assert torch.equal(full.removal.morf[10.0], scores.removal.morf[10.0])  # same seeds per batch start
    with pytest.raises(InputError, match="road_images"):
        score_explainer(centre, backbone, images[:2], masks[:2], road_images=0, progress=False)


def test_paired_difference_sees_a_consistent_gap_that_overlapping_intervals_hide():
    rng = np.random.default_rng(0)
    difficulty = rng.uniform(0, 100, size=200)  # each image's difficulty, shared by both methods
    a, b = difficulty + 3.0, difficulty  # a scores exactly 3 points more on every image
    mean, low, high = paired_difference(a, b, seed=1)
    assert (mean, low, high) == pytest.approx((3.0, 3.0, 3.0))  # constant differences: no spread
    lo_a, hi_a = bootstrap_interval(a, seed=1)
    lo_b, hi_b = bootstrap_interval(b, seed=1)
    assert lo_a < hi_b  # the separate intervals overlap ...
    noisy = a + rng.normal(0, 2, size=200)
    mean, low, high = paired_difference(noisy, b, seed=1)
    assert low > 0 and low < mean < high  # ... but the paired interval excludes 0
    assert paired_difference(torch.tensor(noisy), torch.tensor(b), seed=1) == (mean, low, high)
    mean, low, high = paired_difference(b, noisy, seed=1)  # the other way round: negative
    assert high < 0


def test_paired_difference_needs_the_same_images():
    with pytest.raises(InputError, match="same images"):
        paired_difference([1.0, 2.0, 3.0], [1.0, 2.0])
