"""Every explainer by name: ``make_explainer(backbone, "ttame" | "gradcam" | "rise" | ...)``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .backbones.backbone import Backbone
from .errors import InputError
from .evaluation.baselines import BASELINES, CAM_METHODS, RISE, AttentionRollout, CAMExplainer, CentrePrior, UniformMap
from .interface import Explainer
from .method.explainer import TTAME

# Every name make_explainer knows, T-TAME first.
EXPLAINERS: Sequence[str] = ("ttame", *BASELINES)


def make_explainer(backbone: Backbone, method: str, **kwargs: Any) -> Explainer:
    """An explainer for ``backbone`` by name; ``kwargs`` go to its constructor.

    - ``"ttame"``: a new :class:`ttame_lib.TTAME` (``layers=``, ``regularize=``, ...), or a trained
      one with ``checkpoint="path.ttame"``.
    - a CAM method (:data:`ttame_lib.evaluation.baselines.CAM_METHODS`; ``layer=``),
      ``"rise"`` (``n_masks=``), ``"rollout"`` (ViTs), ``"centre"`` or ``"uniform"``.

    Every explainer has ``explain(images, classes=None)`` and ``close()``, and works as a
    context manager.
    """
    if not isinstance(backbone, Backbone):
        raise InputError(
            f"backbone must be a ttame_lib Backbone (from load_backbone or Backbone.from_model); "
            f"got {type(backbone).__name__}"
        )
    if method == "ttame":
        checkpoint = kwargs.pop("checkpoint", None)
        if checkpoint is None:
            return TTAME(backbone, **kwargs)
        if kwargs:
            raise InputError(f"a checkpoint fixes the explainer's settings; drop {sorted(kwargs)} or the checkpoint")
        return TTAME.load(Path(checkpoint), backbone)
    if method in CAM_METHODS:
        return CAMExplainer(backbone, method, **kwargs)
    builders = {"rise": RISE, "rollout": AttentionRollout, "centre": CentrePrior, "uniform": UniformMap}
    if method not in builders:
        raise InputError(f"unknown method {method!r}; choose one of {list(EXPLAINERS)}")
    return builders[method](backbone, **kwargs)
