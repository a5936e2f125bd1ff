"""Figures for the notebooks: images, feature maps, explanation overlays, method comparisons."""

from .debugging import plot_accuracy_by, plot_confusion_matrix, show_intervention
from .explorer import ExplanationExplorer, explore, front_end_available
from .plotting import (
    compare_methods,
    overlay,
    prediction_title,
    show_explanation_grid,
    show_feature_maps,
    show_images,
    to_numpy_image,
)

__all__ = [
    "ExplanationExplorer",
    "explore",
    "front_end_available",
    "compare_methods",
    "overlay",
    "plot_accuracy_by",
    "plot_confusion_matrix",
    "show_intervention",
    "prediction_title",
    "show_explanation_grid",
    "show_feature_maps",
    "show_images",
    "to_numpy_image",
]
