"""The explanation explorer: static figures headless, and a widget whose controls redraw the figure."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from ttame_lib import InputError, make_explainer  # noqa: E402
from ttame_lib.viz import ExplanationExplorer, front_end_available  # noqa: E402


@pytest.fixture
def explorer(cnn_explainer, images_cnn):
    labels = cnn_explainer.backbone(images_cnn).argmax(1)
    labels[1] = (labels[1] + 1) % 10  # image 1 is now an error
    masks = torch.zeros(4, 64, 64, dtype=torch.bool)
    masks[:, 16:48, 16:48] = True
    with make_explainer(cnn_explainer.backbone, "gradcam") as cam:
        yield ExplanationExplorer(
            cnn_explainer.backbone, images_cnn, {"T-TAME": cnn_explainer, "Grad-CAM": cam}, labels=labels, masks=masks
        )
    plt.close("all")


def test_errors_come_first_and_maps_are_precomputed(explorer):
    assert explorer.order[0] == 1 and explorer.errors == [1]
    # predicted + true class maps of every image for both methods: no explain call when browsing them
    assert len(explorer._cache) == 2 * (4 + 1)
    before = dict(explorer._cache)
    explorer.draw(1, "T-TAME", "true")
    assert explorer._cache == before
    other = next(c for c in range(10) if (("Grad-CAM", 0, c)) not in explorer._cache)
    explorer.map("Grad-CAM", 0, other)  # any other class is explained on demand, once
    explorer.map("Grad-CAM", 0, other)
    assert len(explorer._cache) == len(before) + 1


def test_static_path_draws_the_default_and_the_errors(explorer, monkeypatch):
    monkeypatch.setenv("TTAME_STATIC_FIGURES", "1")
    assert not front_end_available()
    fig = explorer.show()  # "auto": no front end -> a static figure, not a widget
    assert isinstance(fig, matplotlib.figure.Figure)
    assert len(fig.axes) == 4 * 3  # 4 images (default = the error, then the rest) x (image + 2 methods)
    assert "✗" in fig.axes[0].get_title()


def test_the_widget_redraws_when_a_control_changes(explorer):
    pytest.importorskip("ipywidgets")
    box = explorer.show(mode="widget")
    (image, method), (which, class_index), opacity, output = (
        box.children[0].children,
        box.children[1].children,
        *box.children[2:],
    )

    def drawn():
        return [o["data"]["image/png"] for o in output.outputs if "image/png" in o.get("data", {})]

    pictures = [drawn()]
    image.value = explorer.order[1]
    pictures.append(drawn())
    method.value = "Grad-CAM"
    pictures.append(drawn())
    assert class_index.disabled  # only used with "class"
    shown = {int(explorer.predicted[image.value]), int(explorer.labels[image.value])}
    class_index.value = next(c for c in range(10) if c not in shown)
    which.value = "class"
    assert not class_index.disabled
    pictures.append(drawn())
    opacity.value = 0.9
    pictures.append(drawn())
    assert all(len(p) == 1 for p in pictures)
    assert len({p[0] for p in pictures}) == len(pictures), "a control change did not redraw the figure"


def test_bad_arguments(explorer, cnn_explainer, images_cnn):
    with pytest.raises(InputError, match="explainers is empty"):
        ExplanationExplorer(cnn_explainer.backbone, images_cnn, {})
    with pytest.raises(InputError, match="mode must be"):
        explorer.show(mode="gui")
    with pytest.raises(InputError, match="unknown method"):
        explorer.map("LIME", 0, 0)
