"""ttame_lib: T-TAME (Trainable Attention Mechanism for Explanations) for CNNs and ViTs.

The package follows the pipeline (docs/architecture.md):
``backbones`` (frozen classifiers) -> ``method`` (T-TAME: hooks, adapter, attention, loss,
training, checkpoints) -> ``evaluation`` (metrics, baselines, runner) -> ``world`` (the offline
data and shipped models) -> ``viz`` (figures).
"""

from . import world  # noqa: E402,F401  (registers the offline world's "scenes" backbone source)
from .backbones import PAPER_PRESETS, Backbone, load_backbone, load_image, register_source  # noqa: E402
from .backbones.preprocessing import Preprocessing  # noqa: E402
from .errors import (  # noqa: E402
    CheckpointError,
    CheckpointNotFoundError,
    InputError,
    LayerNotFoundError,
    LayoutError,
    TrainingError,
    TTAMEError,
    UnknownBackboneError,
    WeightsFileError,
    WeightsUnavailableError,
)
from .factory import EXPLAINERS, make_explainer  # noqa: E402
from .interface import Explainer  # noqa: E402
from .method import (  # noqa: E402
    TTAME,
    AttentionMechanism,
    FeatureExtractor,
    FeatureMapAdapter,
    LossWeights,
    TTAMELoss,
    area_loss,
    explanation_maps,
    infer_layout,
    mask_images,
    minmax_normalize,
    tokens_to_grid,
    total_variation,
    upsample,
)
from .version import __version__

__all__ = [
    "EXPLAINERS",
    "PAPER_PRESETS",
    "TTAME",
    "AttentionMechanism",
    "Backbone",
    "CheckpointError",
    "CheckpointNotFoundError",
    "Explainer",
    "FeatureExtractor",
    "FeatureMapAdapter",
    "InputError",
    "LayerNotFoundError",
    "LayoutError",
    "LossWeights",
    "Preprocessing",
    "TTAMEError",
    "TrainingError",
    "TTAMELoss",
    "UnknownBackboneError",
    "WeightsFileError",
    "WeightsUnavailableError",
    "__version__",
    "area_loss",
    "explanation_maps",
    "infer_layout",
    "load_backbone",
    "load_image",
    "make_explainer",
    "mask_images",
    "minmax_normalize",
    "register_source",
    "tokens_to_grid",
    "total_variation",
    "upsample",
]
