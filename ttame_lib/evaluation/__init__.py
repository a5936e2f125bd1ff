"""Evaluation: how good is an explanation?

- :mod:`.faithfulness`: AD / IC (keep the top of the map) and ROAD (remove it, impute, re-classify).
- :mod:`.imputation`: ROAD's noisy linear imputation.
- :mod:`.localisation`: pointing game, energy pointing game, top-k IoU against object masks.
- :mod:`.baselines`: the explainers T-TAME is compared with, and model-agnostic reference rows.
- :mod:`.runner`: every metric for an explainer on a set of images, with bootstrap intervals.
"""

from .faithfulness import AD_IC_LEVELS, ROAD_LEVELS, confidence_drop, keep_masks, removal_masks, road
from .imputation import linear_impute
from .localisation import energy_pointing_game, mask_area, pointing_game, top_k_iou
from .runner import (
    FAITHFULNESS_COLUMNS,
    SUMMARY_COLUMNS,
    ImageScores,
    bootstrap_interval,
    evaluate_explainer,
    format_cell,
    paired_difference,
    results_table,
    score_explainer,
)

__all__ = [
    "AD_IC_LEVELS",
    "ROAD_LEVELS",
    "FAITHFULNESS_COLUMNS",
    "SUMMARY_COLUMNS",
    "ImageScores",
    "bootstrap_interval",
    "confidence_drop",
    "energy_pointing_game",
    "evaluate_explainer",
    "format_cell",
    "keep_masks",
    "linear_impute",
    "mask_area",
    "paired_difference",
    "pointing_game",
    "removal_masks",
    "results_table",
    "road",
    "score_explainer",
    "top_k_iou",
]
