"""ttame_lib: T-TAME (Trainable Attention Mechanism for Explanations) for CNNs and ViTs."""

__version__ = "0.1.0"

from .adapter import FeatureMapAdapter, infer_layout, tokens_to_grid  # noqa: E402
from .attention import AttentionMechanism  # noqa: E402
from .backbones import PAPER_PRESETS, Backbone, load_backbone  # noqa: E402
from .errors import (  # noqa: E402
    CheckpointError,
    CheckpointNotFoundError,
    InputError,
    LayerNotFoundError,
    LayoutError,
    TTAMEError,
    UnknownBackboneError,
    WeightsFileError,
    WeightsUnavailableError,
)
from .explainer import TTAME  # noqa: E402
from .features import FeatureExtractor  # noqa: E402
from .loss import LossWeights, TTAMELoss, area_loss, total_variation  # noqa: E402
from .masking import explanation_maps, mask_images, minmax_normalize, upsample  # noqa: E402
from .preprocessing import Preprocessing, load_image  # noqa: E402

__all__ = [
    "AttentionMechanism",
    "Backbone",
    "CheckpointError",
    "CheckpointNotFoundError",
    "FeatureExtractor",
    "FeatureMapAdapter",
    "InputError",
    "LayerNotFoundError",
    "LayoutError",
    "LossWeights",
    "PAPER_PRESETS",
    "Preprocessing",
    "TTAME",
    "TTAMEError",
    "TTAMELoss",
    "UnknownBackboneError",
    "WeightsFileError",
    "WeightsUnavailableError",
    "__version__",
    "area_loss",
    "infer_layout",
    "load_backbone",
    "load_image",
    "explanation_maps",
    "mask_images",
    "minmax_normalize",
    "tokens_to_grid",
    "total_variation",
    "upsample",
]
