"""Backbones: frozen classifiers and what T-TAME needs to know about them.

- :mod:`.backbone`: the :class:`Backbone` type (and :meth:`Backbone.from_model` for your own model).
- :mod:`.loading`: :func:`load_backbone`, a model by name from any registered source.
- :mod:`.sources`: the source registry (torchvision, timm; the offline world adds its scene models).
- :mod:`.presets`: default layers, and what a probe forward says about a model's structure.
- :mod:`.preprocessing`, :mod:`.weights`, :mod:`.pip_weights`: images in, weight files in.
"""

from .backbone import Backbone, Family, architecture_signature, freeze
from .custom import backbone_from_model
from .loading import load_backbone
from .preprocessing import Preprocessing, load_image
from .presets import PAPER_PRESETS
from .sources import SOURCES, BackboneSource, LoadedModel, list_sources, register_source
from .weights import load_state_dict_file

__all__ = [
    "PAPER_PRESETS",
    "SOURCES",
    "Backbone",
    "BackboneSource",
    "Family",
    "LoadedModel",
    "Preprocessing",
    "architecture_signature",
    "backbone_from_model",
    "freeze",
    "list_sources",
    "load_backbone",
    "load_image",
    "load_state_dict_file",
    "register_source",
]
