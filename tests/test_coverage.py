"""Class coverage: an explainer records how often each class was a training target and warns when asked for a
class it barely saw."""

import warnings

import pytest
import torch

from ttame_lib import TTAME
from ttame_lib.method.diagnostics import class_coverage


@pytest.fixture
def trained(small_cnn, tmp_path):
    images = torch.rand(8, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    explainer = TTAME(small_cnn, seed=0)
    loader = torch.utils.data.DataLoader(images, batch_size=4)
    explainer.fit(loader, epochs=2, progress=False)
    yield explainer, images
    explainer.close()


def test_counts_are_the_training_targets(trained, small_cnn):
    explainer, images = trained
    with torch.no_grad():
        predicted = small_cnn(images).argmax(1)
    expected = 2 * torch.bincount(predicted, minlength=10)  # two epochs over the same eight images
    assert torch.equal(explainer.target_counts, expected)
    coverage = class_coverage(explainer, min_targets=3)
    assert coverage["targets"] == 16
    assert coverage["trained"] == int((expected > 0).sum())
    assert coverage["well_trained"] == int((expected >= 3).sum())


def test_counts_survive_save_and_load(trained, small_cnn, tmp_path):
    explainer, _ = trained
    loaded = TTAME.load(explainer.save(tmp_path / "x.ttame"), small_cnn)
    assert torch.equal(loaded.target_counts, explainer.target_counts)
    loaded.close()


def test_explain_warns_once_per_barely_trained_class(trained):
    explainer, images = trained
    unseen = int((explainer.target_counts == 0).nonzero()[0])
    with pytest.warns(UserWarning, match=rf"class {unseen} .* was never a training target for this explainer"):
        explainer.explain(images[:2], classes=unseen)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        explainer.explain(images[:2], classes=unseen)  # once per class only
        explainer.min_targets = 1
        seen = int(explainer.target_counts.argmax())
        explainer.explain(images[:2], classes=seen)  # trained class: silent


def test_untrained_explainer_has_no_counts_and_does_not_warn(cnn_explainer, images_cnn):
    assert cnn_explainer.target_counts is None
    assert class_coverage(cnn_explainer)["target_counts"] is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cnn_explainer.explain(images_cnn)
