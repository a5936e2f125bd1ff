"""Figures say what the image is, what the model said and whether that is right."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from ttame_lib.viz.plotting import (  # noqa: E402
    overlay,
    prediction_title,
    show_explanation_grid,
    show_feature_maps,
    to_numpy_image,
)


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


class OnAnotherDevice(torch.Tensor):
    """Stands in for a CUDA tensor on a machine without a GPU: numpy() refuses until .cpu() is called."""

    def cpu(self, *args, **kwargs):
        return self.as_subclass(torch.Tensor)

    def numpy(self, *args, **kwargs):
        raise TypeError("can't convert cuda:0 device type tensor to numpy. Use Tensor.cpu() first.")

    def __array__(self, *args, **kwargs):
        return self.numpy()


def test_plotting_helpers_move_tensors_to_the_cpu_themselves():
    images = torch.rand(2, 3, 16, 16).as_subclass(OnAnotherDevice)
    maps = torch.rand(2, 16, 16, requires_grad=True).as_subclass(OnAnotherDevice)
    masks = torch.zeros(2, 16, 16).as_subclass(OnAnotherDevice)
    masks[:, 4:12, 4:12] = 1
    logits = torch.tensor([0.0, 3.0]).as_subclass(OnAnotherDevice)
    try:
        maps.numpy()
    except TypeError:
        pass
    else:
        raise AssertionError("the stand-in should refuse numpy() like a CUDA tensor")
    assert to_numpy_image(images[0]).shape == (16, 16, 3)
    overlay(images[0], maps[0], title="x")
    show_feature_maps(torch.rand(4, 8, 8).as_subclass(OnAnotherDevice), count=2)
    assert prediction_title(["a", "b"], logits, 1).endswith("✓")
    fig = show_explanation_grid(images, {"a": maps}, ["x", "y"], masks)
    assert len(fig.axes) == 4
    plt.close("all")
