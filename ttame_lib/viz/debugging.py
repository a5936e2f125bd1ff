"""Figures for debugging misclassifications: confusion matrix, accuracy breakdowns and before/after
interventions (contrastive maps are drawn with :func:`ttame_lib.viz.plotting.show_explanation_grid`)."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import torch

from ..debugging.census import ErrorCensus
from ..debugging.intervention import InterventionResult
from .plotting import to_numpy_image


def plot_confusion_matrix(census: ErrorCensus, ax=None, short: int = 10):
    """Row-normalised confusion matrix (rows: true class) with the counts written in each cell."""
    matrix = census.confusion_matrix().float()
    shares = matrix / matrix.sum(dim=1, keepdim=True).clamp_min(1)
    ax = ax or plt.subplots(figsize=(6.5, 5.5))[1]
    image = ax.imshow(shares.numpy(), cmap="Blues", vmin=0, vmax=1)
    names = [n[:short] for n in census.class_names]
    ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for (i, j), count in zip(
        torch.cartesian_prod(torch.arange(len(names)), torch.arange(len(names))).tolist(), matrix.flatten().tolist()
    ):
        if count:
            ax.text(
                j, i, int(count), ha="center", va="center", fontsize=7, color="white" if shares[i, j] > 0.5 else "black"
            )
    ax.set_title(f"confusion matrix (accuracy {census.accuracy:.2f})")
    ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    return ax.figure


def plot_accuracy_by(census: ErrorCensus, attributes: Sequence[str], size: float = 3.2):
    """One bar chart per attribute: accuracy for each value, with its image count."""
    fig, axes = plt.subplots(1, len(attributes), figsize=(size * len(attributes), 2.8), squeeze=False)
    for ax, attribute in zip(axes[0], attributes):
        breakdown = census.accuracy_by(attribute)
        values = list(breakdown)
        ax.bar(range(len(values)), [breakdown[v][0] for v in values], color="tab:blue")
        ax.set_xticks(range(len(values)), [f"{v}\n(n={breakdown[v][1]})" for v in values], fontsize=8)
        ax.axhline(census.accuracy, color="black", linestyle="--", linewidth=1, label="overall")
        ax.set_ylim(0, 1)
        ax.set_title(f"accuracy by {attribute}", fontsize=10)
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def show_intervention(result: InterventionResult, titles: Sequence[str], class_names: Sequence[str], size: float = 2.6):
    """Per image: the edited image with the region outlined, and the top class before -> after."""
    count = len(result.edited)
    fig, axes = plt.subplots(1, count, figsize=(size * count, size + 0.6), squeeze=False)
    for j, ax in enumerate(axes[0]):
        ax.imshow(to_numpy_image(result.edited[j]))
        ax.contour(result.regions[j].float().numpy(), levels=[0.5], colors="red", linewidths=1)
        before, after = int(result.predicted_before[j]), int(result.predicted_after[j])
        ax.set_title(
            f"{titles[j]}\nbefore: {class_names[before][:14]} ({float(result.before[j, before]):.2f})\n"
            f"after: {class_names[after][:14]} ({float(result.after[j, after]):.2f})",
            fontsize=8,
        )
        ax.axis("off")
    fig.tight_layout()
    return fig
