"""An interactive explanation explorer (ipywidgets) that also draws static figures headless.

Pick an image (errors first, most confident first), a method, the class to explain (predicted,
true or any) and the overlay opacity; see the image with the true object's outline, the map with
a colour bar and the top class probabilities. Every map shown by default is computed up front,
so the controls respond at once; a class picked by hand is explained on demand and cached.

Under papermill or nbval there is no front end to draw widgets, so the committed notebooks would
lose their pictures: there (and without ipywidgets, outside a kernel, or when the environment
variable ``TTAME_STATIC_FIGURES`` is set, as ``make notebooks`` and ``make test`` do) the same
call draws static figures of the default view and a few errors instead.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import matplotlib.pyplot as plt
import torch

from ..backbones.backbone import Backbone
from ..errors import InputError
from ..interface import Explainer
from .plotting import overlay, prediction_title, to_numpy_image

Which = Literal["predicted", "true", "class"]
STATIC_ENV = "TTAME_STATIC_FIGURES"


def front_end_available() -> bool:
    """Can widgets be shown? ipywidgets importable, inside an IPython kernel, and not asked for static figures."""
    if os.environ.get(STATIC_ENV):
        return False
    try:
        import ipywidgets  # noqa: F401
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


class ExplanationExplorer:
    """Explore the explanations of several methods on a batch of images.

    Args:
        backbone: the classifier the explainers explain.
        images: (N, 3, H, W) in [0, 1].
        explainers: method name -> explainer (T-TAME, baselines: anything with ``explain``).
        labels: true classes (N,), if known: enables "true" and marks predictions right or wrong.
        masks: true object masks (N, H, W), drawn as an outline.
        top_k: how many class probabilities to show.
    """

    def __init__(
        self,
        backbone: Backbone,
        images: torch.Tensor,
        explainers: Mapping[str, Explainer],
        *,
        labels: torch.Tensor | Sequence[int] | None = None,
        masks: torch.Tensor | None = None,
        top_k: int = 3,
    ):
        if not explainers:
            raise InputError("explainers is empty; pass e.g. {'T-TAME': ttame, 'Grad-CAM': gradcam}")
        self.backbone = backbone
        self.images = backbone.check_images(images).cpu()
        self.explainers = dict(explainers)
        self.labels = None if labels is None else torch.as_tensor(labels, dtype=torch.long).cpu()
        if self.labels is not None and self.labels.shape != (len(self.images),):
            raise InputError(
                f"labels must hold one class per image ({len(self.images)}); got {tuple(self.labels.shape)}"
            )
        if masks is not None and tuple(masks.shape) != (len(self.images), *self.images.shape[-2:]):
            raise InputError(f"masks must be (N, H, W) = {(len(self.images), *self.images.shape[-2:])}")
        self.masks = None if masks is None else masks.cpu().bool()
        self.top_k = top_k
        self.logits = backbone(self.images).float().cpu()
        self.probabilities = self.logits.softmax(dim=1)
        self.predicted = self.probabilities.argmax(dim=1)
        self._cache: dict[tuple[str, int, int], torch.Tensor] = {}
        self._precompute()

    # ------------------------------------------------------------------ data
    @property
    def order(self) -> list[int]:
        """Image indices to browse: errors first (most confident first), then the rest (least confident first)."""
        confidence = self.probabilities.max(dim=1).values
        if self.labels is None:
            return confidence.argsort(stable=True).tolist()
        wrong = self.predicted != self.labels
        errors = [i for i in confidence.argsort(descending=True, stable=True).tolist() if wrong[i]]
        right = [i for i in confidence.argsort(stable=True).tolist() if not wrong[i]]
        return errors + right

    @property
    def errors(self) -> list[int]:
        return [] if self.labels is None else [i for i in self.order if self.predicted[i] != self.labels[i]]

    def _precompute(self) -> None:
        """Maps for the predicted (and true) class of every image, per method: instant redraws."""
        wanted = [self.predicted] + ([self.labels] if self.labels is not None else [])
        for method, explainer in self.explainers.items():
            for classes in wanted:
                maps = explainer.explain(self.images, classes).detach().float().cpu()
                for index, (cls, single) in enumerate(zip(classes.tolist(), maps)):
                    self._cache[(method, index, cls)] = single

    def class_for(self, index: int, which: Which = "predicted", class_index: int | None = None) -> int:
        """The class shown for ``which``: the prediction, the true class, or ``class_index``."""
        if which == "predicted":
            return int(self.predicted[index])
        if which == "true":
            if self.labels is None:
                raise InputError("which='true' needs labels; pass labels= to the explorer")
            return int(self.labels[index])
        if which == "class" and class_index is not None and 0 <= class_index < self.probabilities.shape[1]:
            return int(class_index)
        raise InputError(
            f"which must be 'predicted', 'true' or 'class' with class_index in 0..{self.probabilities.shape[1] - 1}"
        )

    def map(self, method: str, index: int, cls: int) -> torch.Tensor:
        """(H, W) map of ``method`` for class ``cls`` of image ``index`` (computed once, then cached)."""
        if method not in self.explainers:
            raise InputError(f"unknown method {method!r}; the explorer has {list(self.explainers)}")
        key = (method, index, cls)
        if key not in self._cache:
            self._cache[key] = self.explainers[method].explain(self.images[index : index + 1], [cls])[0].float().cpu()
        return self._cache[key]

    def title(self, index: int) -> str:
        label = None if self.labels is None else int(self.labels[index])
        return prediction_title(self.backbone.class_names, self.logits[index], label, short=18)

    # ------------------------------------------------------------------ drawing
    def draw(
        self,
        index: int,
        method: str,
        which: Which = "predicted",
        class_index: int | None = None,
        opacity: float = 0.5,
        axes: Sequence[Any] | None = None,
    ):
        """Image with outline | map overlay with colour bar | top-k probabilities, for one image."""
        cls = self.class_for(index, which, class_index)
        if axes is None:
            fig, axes = plt.subplots(1, 3, figsize=(10.5, 3.4), gridspec_kw={"width_ratios": [1, 1.15, 1]})
        else:
            fig = axes[0].figure
        image = self.images[index]
        axes[0].imshow(to_numpy_image(image))
        axes[0].set_title(self.title(index), fontsize=9)
        axes[0].axis("off")
        overlay(image, self.map(method, index, cls), axes[1], alpha=opacity)
        mappable = plt.cm.ScalarMappable(cmap="jet", norm=plt.Normalize(0, 1))
        fig.colorbar(mappable, ax=axes[1], fraction=0.046, pad=0.04, label="map (min-max per image)")
        axes[1].set_title(f"{method}: {self.backbone.class_name(cls)}", fontsize=9)
        if self.masks is not None:
            for ax in axes[:2]:
                ax.contour(self.masks[index].float().numpy(), levels=[0.5], colors="white", linewidths=1)
        probs, classes = self.probabilities[index].topk(min(self.top_k, self.probabilities.shape[1]))
        names = [self.backbone.class_name(int(c))[:18] for c in classes]
        true = None if self.labels is None else int(self.labels[index])
        colours = ["tab:green" if int(c) == true else "tab:gray" for c in classes]
        axes[2].barh(range(len(names))[::-1], probs.numpy(), color=colours)
        axes[2].set_yticks(range(len(names))[::-1], names, fontsize=8)
        axes[2].set_xlim(0, 1)
        axes[2].set_title("top classes (green: true)" if true is not None else "top classes", fontsize=9)
        fig.tight_layout()
        return fig

    def static_figure(self, count: int = 4, which: Which = "predicted", opacity: float = 0.5):
        """Rows = the default image and the most confident errors; columns = the image, then each method's map."""
        chosen = list(dict.fromkeys([self.order[0], *self.errors, *self.order]))[:count]  # then the rest
        methods = list(self.explainers)
        fig, axes = plt.subplots(
            len(chosen), 1 + len(methods), figsize=(2.3 * (1 + len(methods)), 2.5 * len(chosen)), squeeze=False
        )
        for row, index in enumerate(chosen):
            cls = self.class_for(index, which)
            axes[row, 0].imshow(to_numpy_image(self.images[index]))
            axes[row, 0].set_title(self.title(index), fontsize=8)
            axes[row, 0].axis("off")
            for col, method in enumerate(methods, start=1):
                overlay(
                    self.images[index],
                    self.map(method, index, cls),
                    axes[row, col],
                    alpha=opacity,
                    title=f"{method}\n{which}: {self.backbone.class_name(cls)[:16]}",
                )
            if self.masks is not None:
                for ax in axes[row]:
                    ax.contour(self.masks[index].float().numpy(), levels=[0.5], colors="white", linewidths=1)
        fig.tight_layout()
        return fig

    # ------------------------------------------------------------------ widgets
    def widget(self):
        """The interactive view: controls on top, the figure below (needs ipywidgets and a front end)."""
        import ipywidgets as widgets
        from IPython.display import Image as PNG

        options = [
            (f"{'✗' if i in set(self.errors) else '✓'} #{i}: {self.title(i).replace(chr(10), ' | ')}", i)
            for i in self.order
        ]
        image = widgets.Dropdown(
            options=options, value=self.order[0], description="image", layout=widgets.Layout(width="520px")
        )
        method = widgets.Dropdown(options=list(self.explainers), description="method")
        which_options = ["predicted", "true", "class"] if self.labels is not None else ["predicted", "class"]
        which = widgets.ToggleButtons(options=which_options, value="predicted", description="explain")
        names = [(f"{c}: {self.backbone.class_name(c)}", c) for c in range(self.probabilities.shape[1])]
        class_index = widgets.Dropdown(options=names, value=0, description="class", disabled=True)
        opacity = widgets.FloatSlider(value=0.5, min=0.0, max=1.0, step=0.05, description="opacity")
        output = widgets.Output()

        def redraw(*_):
            class_index.disabled = which.value != "class"
            fig = self.draw(image.value, method.value, which.value, class_index.value, opacity.value)
            buffer = io.BytesIO()
            fig.savefig(buffer, format="png", dpi=90)
            plt.close(fig)
            # Replace the output's content directly (not `with output:`), which works from any thread
            # and outside a kernel too, so the redraw is testable without a front end.
            output.outputs = ()
            output.append_display_data(PNG(data=buffer.getvalue(), format="png"))

        for control in (image, method, which, class_index, opacity):
            control.observe(redraw, names="value")
        redraw()
        return widgets.VBox([widgets.HBox([image, method]), widgets.HBox([which, class_index]), opacity, output])

    def show(self, mode: Literal["auto", "widget", "static"] = "auto", count: int = 4):
        """The widget where a front end can draw it; otherwise (or with ``mode="static"``) a static figure.

        Either is returned (not displayed): make it a cell's last expression, or ``display(...)`` it.
        """
        if mode not in ("auto", "widget", "static"):
            raise InputError(f"mode must be 'auto', 'widget' or 'static'; got {mode!r}")
        if mode == "widget" or (mode == "auto" and front_end_available()):
            return self.widget()
        fig = self.static_figure(count)
        # Closed, so that the inline backend does not draw it a second time: as a cell's last expression
        # (like the widget) the returned figure is displayed once.
        plt.close(fig)
        return fig


def explore(
    backbone: Backbone,
    images: torch.Tensor,
    explainers: Mapping[str, Explainer],
    *,
    labels: torch.Tensor | Sequence[int] | None = None,
    masks: torch.Tensor | None = None,
    mode: Literal["auto", "widget", "static"] = "auto",
    count: int = 4,
):
    """Build an :class:`ExplanationExplorer` and show it (widget, or static figures headless)."""
    return ExplanationExplorer(backbone, images, explainers, labels=labels, masks=masks).show(mode, count)
