import pytest
import torch

from ttame_lib import CheckpointNotFoundError, InputError
from ttame_lib.baselines import make_baseline
from ttame_lib.evaluation import SUMMARY_COLUMNS, evaluate_explainer, results_table
from ttame_lib.scenes import CompositeScenes
from ttame_lib.shipped import SHIPPED_EXPLAINERS, load_shipped_explainer


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
    explainer.remove_hooks()


def test_results_table_lists_every_method(scenes):
    explainer = load_shipped_explainer("scenes_cnn")
    images, masks = scenes
    gradcam = make_baseline(explainer.backbone, "gradcam")
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
    import ttame_lib.shipped as shipped

    monkeypatch.setattr(shipped, "DATA_DIR", tmp_path)
    with pytest.raises(CheckpointNotFoundError, match="git checkout -- data/explainers"):
        load_shipped_explainer("scenes_cnn")
    assert set(SHIPPED_EXPLAINERS) == {"scenes_cnn", "scenes_vit", "tf_efficientnet_lite0"}
