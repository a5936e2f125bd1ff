"""Debugging misclassifications with explanations: find errors, explain them, intervene, verify.

:mod:`census` finds and sorts the errors, :mod:`contrast` explains "why this class and not that
one", :mod:`intervention` edits a region and measures what changes. Notebook 05 walks through
three case studies with them.
"""

from .census import ErrorCensus, error_census
from .contrast import ContrastiveMaps, contrastive_maps
from .intervention import FILLS, InterventionResult, fill_regions, region_intervention, top_region

__all__ = [
    "FILLS",
    "ContrastiveMaps",
    "ErrorCensus",
    "InterventionResult",
    "contrastive_maps",
    "error_census",
    "fill_regions",
    "region_intervention",
    "top_region",
]
