"""The method: T-TAME itself, in the order data flows through it.

features (hook layers) -> adapter (tokens to grids) -> attention (the trainable mechanism)
-> masking (maps to masks) -> loss -> training (the loop, resume) -> explainer (``TTAME``)
-> checkpoint (files) and diagnostics (coverage, attention levels).
"""

from .adapter import FeatureMapAdapter, infer_layout, tokens_to_grid
from .attention import AttentionMechanism
from .explainer import TTAME
from .features import FeatureExtractor
from .loss import LossWeights, TTAMELoss, area_loss, total_variation
from .masking import explanation_maps, mask_images, minmax_normalize, upsample
from .training import fit

__all__ = [
    "TTAME",
    "AttentionMechanism",
    "FeatureExtractor",
    "FeatureMapAdapter",
    "LossWeights",
    "TTAMELoss",
    "area_loss",
    "explanation_maps",
    "fit",
    "infer_layout",
    "mask_images",
    "minmax_normalize",
    "tokens_to_grid",
    "total_variation",
    "upsample",
]
