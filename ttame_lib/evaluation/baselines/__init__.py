"""Baseline explainers behind T-TAME's interface (:class:`ttame_lib.interface.Explainer`).

- :mod:`.cam`: pytorch-grad-cam's CAM methods on one layer.
- :mod:`.rise`, :mod:`.rollout`: RISE and attention rollout (written here; pytorch-grad-cam has neither).
- :mod:`.reference`: model-agnostic rows, a centre prior and a uniform map.
- :mod:`.layer_selection`: each CAM method at its best single layer, chosen on a validation split.

Build any of them by name with :func:`ttame_lib.make_explainer`.
"""

from collections.abc import Sequence

from .cam import CAM_METHODS, CAMExplainer
from .layer_selection import LAYER_METRICS, candidate_cam_layers, select_cam_layer
from .reference import CentrePrior, UniformMap
from .rise import RISE
from .rollout import AttentionRollout

# Every baseline name. "rollout" needs a ViT; "centre" and "uniform" ignore the model.
BASELINES: Sequence[str] = (*CAM_METHODS, "rise", "rollout", "centre", "uniform")

__all__ = [
    "BASELINES",
    "CAM_METHODS",
    "LAYER_METRICS",
    "RISE",
    "AttentionRollout",
    "CAMExplainer",
    "CentrePrior",
    "UniformMap",
    "candidate_cam_layers",
    "select_cam_layer",
]
