"""Matplotlib helpers for the notebooks: images, feature maps and explanation overlays."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch


def to_numpy_image(image: torch.Tensor) -> np.ndarray:
    """(3, H, W) tensor in [0, 1], on any device -> (H, W, 3) array for imshow."""
    return image.detach().cpu().clamp(0, 1).permute(1, 2, 0).numpy()


def show_images(images: Sequence[torch.Tensor], titles: Sequence[str] | None = None, size: float = 3.0):
    """A row of (3, H, W) images."""
    fig, axes = plt.subplots(1, len(images), figsize=(size * len(images), size), squeeze=False)
    for i, (ax, image) in enumerate(zip(axes[0], images)):
        ax.imshow(to_numpy_image(image))
        ax.set_title(titles[i] if titles else "")
        ax.axis("off")
    fig.tight_layout()
    return fig


def show_feature_maps(feature: torch.Tensor, count: int = 8, title: str = "", size: float = 1.6):
    """The ``count`` channels of a (C, h, w) map with the largest spatial variance, plus the mean |activation|."""
    feature = feature.detach().float().cpu()
    variance = feature.flatten(1).var(dim=1)
    channels = variance.argsort(descending=True)[:count].tolist()
    fig, axes = plt.subplots(1, count + 1, figsize=(size * (count + 1), size * 1.15))
    axes[0].imshow(feature.abs().mean(0).numpy(), cmap="magma")
    axes[0].set_title("mean |a|", fontsize=8)
    for ax, c in zip(axes[1:], channels):
        ax.imshow(feature[c].numpy(), cmap="viridis")
        ax.set_title(f"ch {c}", fontsize=8)
    for ax in axes:
        ax.axis("off")
    fig.suptitle(f"{title}  {tuple(feature.shape)}", fontsize=10)
    fig.tight_layout()
    return fig


def overlay(
    image: torch.Tensor, saliency: torch.Tensor, ax=None, alpha: float = 0.5, cmap: str = "jet", title: str = ""
):
    """Draw a (H, W) map in [0, 1] over a (3, H, W) image (tensors on any device: both are moved to the CPU)."""
    ax = ax or plt.gca()
    ax.imshow(to_numpy_image(image))
    ax.imshow(saliency.detach().cpu().numpy(), cmap=cmap, alpha=alpha, vmin=0, vmax=1)
    ax.set_title(title, fontsize=9)
    ax.axis("off")
    return ax


def prediction_title(
    class_names: Sequence[str] | None,
    logits: torch.Tensor,
    true_label: int | None = None,
    short: int = 14,
    sep: str = "\n",
) -> str:
    """``"true: cat\npred: dog (0.62) ✗"`` for one image's logits (C,); without a true label only the prediction.

    Every figure of a prediction should say what the image is, what the model said and whether
    that is right: an explanation of a wrong prediction reads differently.
    """
    probs = logits.detach().float().softmax(-1).cpu()
    predicted = int(probs.argmax())

    def name(index: int) -> str:
        text = class_names[index] if class_names is not None else f"class {index}"
        return text if len(text) <= short else text[: short - 1] + "…"

    title = f"pred: {name(predicted)} ({float(probs[predicted]):.2f})"
    if true_label is None:
        return title
    mark = "✓" if predicted == int(true_label) else "✗"
    return f"true: {name(int(true_label))}{sep}{title} {mark}"


def show_explanation_grid(
    images: torch.Tensor,
    rows: dict[str, torch.Tensor],
    titles: Sequence[str],
    masks: torch.Tensor | None = None,
    size: float = 2.2,
):
    """Images in the first row, then one row of overlays per method (``rows``: name -> (B, H, W) maps).

    ``titles`` label the image columns (e.g. :func:`prediction_title`); with ``masks`` (B, H, W)
    the true object's outline is drawn on every panel.
    """
    count = images.shape[0]
    fig, axes = plt.subplots(1 + len(rows), count, figsize=(size * count, size * (1 + len(rows))), squeeze=False)
    for j in range(count):
        axes[0, j].imshow(to_numpy_image(images[j]))
        axes[0, j].set_title(titles[j], fontsize=8)
        axes[0, j].axis("off")
        for i, (method, maps) in enumerate(rows.items(), start=1):
            overlay(images[j], maps[j], axes[i, j])
            if j == 0:
                axes[i, j].text(
                    -0.08, 0.5, method, transform=axes[i, j].transAxes, rotation=90, va="center", ha="right"
                )
        if masks is not None:
            for i in range(1 + len(rows)):
                axes[i, j].contour(masks[j].detach().cpu().float().numpy(), levels=[0.5], colors="white", linewidths=1)
    fig.tight_layout()
    return fig


def compare_methods(rows: Sequence[dict], metrics: Sequence[tuple[str, str]], size: float = 3.2):
    """One bar chart per metric, one bar per method (``rows`` as returned for each method by
    :func:`ttame_lib.evaluation.evaluate_explainer`, with a ``"method"`` key)."""
    methods = [row["method"] for row in rows]
    fig, axes = plt.subplots(1, len(metrics), figsize=(size * len(metrics), size), squeeze=False)
    colours = ["tab:red" if m == "ttame" else "tab:gray" for m in methods]
    for ax, (key, label) in zip(axes[0], metrics):
        ax.bar(range(len(rows)), [row[key] for row in rows], color=colours)
        ax.set_xticks(range(len(rows)), methods, rotation=60, ha="right", fontsize=8)
        ax.set_title(label, fontsize=10)
    fig.tight_layout()
    return fig
