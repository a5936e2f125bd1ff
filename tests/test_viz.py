"""Figures say what the image is, what the model said and whether that is right."""

import matplotlib

matplotlib.use("Agg")

import torch  # noqa: E402

from ttame_lib.viz.plotting import prediction_title, show_explanation_grid  # noqa: E402


def test_prediction_title_marks_right_and_wrong():
    logits = torch.tensor([0.0, 3.0, 1.0])
    names = ["cat", "a very long class name indeed", "dog"]
    right = prediction_title(names, logits, 1)
    assert right.endswith("✓") and "true: a very long c…" in right and "(0.84)" in right
    wrong = prediction_title(names, logits, 2, sep=" · ")
    assert wrong.startswith("true: dog · pred: a very long") and wrong.endswith("✗")
    assert prediction_title(None, logits) == "pred: class 1 (0.84)"


def test_explanation_grid_has_a_row_per_method():
    images, maps = torch.rand(3, 3, 16, 16), torch.rand(3, 16, 16)
    masks = torch.zeros(3, 16, 16)
    masks[:, 4:12, 4:12] = 1
    fig = show_explanation_grid(images, {"a": maps, "b": maps}, ["x", "y", "z"], masks)
    assert len(fig.axes) == 9 and fig.axes[0].get_title() == "x"
