"""The offline world: everything needed to learn and test T-TAME without a network.

- :mod:`.scenes`: composite scenes (real photographic objects on real backgrounds) with masks.
- :mod:`.photo_pool`: random views of every shipped photo, for the ImageNet explainer.
- :mod:`.image_files`: a folder of your own images.
- :mod:`.data_source`: the notebooks' ``data`` parameter (the scenes, or an ImageNet-style folder).
- :mod:`.scene_backbones`: the world's own classifiers (the ``"scenes"`` backbone source).
- :mod:`.shipped`: ready-trained explainers from ``data/explainers``.
- :mod:`.distillation`: how the scene ViT learns from the scene CNN.
"""

from .classifier_training import train_classifier
from .data_source import EvaluationImages, evaluation_set, headline_score, training_set
from .image_files import ImageFiles
from .photo_pool import PhotoPool
from .scene_backbones import SCENE_BACKBONES, build_scene_model, scene_backbone_report
from .scenes import DATA_DIR, CompositeScenes, load_assets
from .shipped import SHIPPED_EXPLAINERS, load_shipped_explainer, shipped_explainer_for, shipped_explainer_path

__all__ = [
    "DATA_DIR",
    "SCENE_BACKBONES",
    "SHIPPED_EXPLAINERS",
    "CompositeScenes",
    "EvaluationImages",
    "ImageFiles",
    "PhotoPool",
    "build_scene_model",
    "evaluation_set",
    "headline_score",
    "load_assets",
    "load_shipped_explainer",
    "scene_backbone_report",
    "shipped_explainer_for",
    "shipped_explainer_path",
    "train_classifier",
    "training_set",
]
