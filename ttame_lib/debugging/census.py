"""Where does a classifier go wrong? An error census: predictions, confidences, a confusion
matrix, accuracy broken down by any attribute of the images, and the most confident mistakes.

The first step of the debugging loop (find errors -> explain -> hypothesise -> intervene ->
verify): explanations are most useful on the errors that matter, so find those first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from ..backbones.backbone import Backbone
from ..errors import InputError


@dataclass
class ErrorCensus:
    """Predictions of a classifier on labelled images, and views of its errors.

    ``attributes`` maps an attribute name (e.g. ``"instance"``) to one value per image (e.g.
    ``"seen"``/``"unseen"``), for :meth:`accuracy_by`.
    """

    labels: torch.Tensor  # (N,) true classes
    probabilities: torch.Tensor  # (N, C) softmax of the logits
    class_names: list[str]
    attributes: dict[str, list[str]] = field(default_factory=dict)

    @property
    def predictions(self) -> torch.Tensor:
        return self.probabilities.argmax(dim=1)

    @property
    def confidence(self) -> torch.Tensor:
        """Probability of the predicted class, per image."""
        return self.probabilities.max(dim=1).values

    @property
    def correct(self) -> torch.Tensor:
        return self.predictions == self.labels

    @property
    def accuracy(self) -> float:
        return float(self.correct.float().mean())

    def confusion_matrix(self) -> torch.Tensor:
        """(C, C) counts: row = true class, column = predicted class."""
        classes = self.probabilities.shape[1]
        flat = self.labels * classes + self.predictions
        return torch.bincount(flat, minlength=classes * classes).view(classes, classes)

    def accuracy_by(self, attribute: str) -> dict[str, tuple[float, int]]:
        """Accuracy and image count for each value of ``attribute``, values sorted."""
        if attribute not in self.attributes:
            raise InputError(f"unknown attribute {attribute!r}; the census has {sorted(self.attributes)}")
        values = self.attributes[attribute]
        result = {}
        for value in sorted(set(values)):
            chosen = torch.tensor([v == value for v in values])
            result[value] = (float(self.correct[chosen].float().mean()), int(chosen.sum()))
        return result

    def errors(self, min_confidence: float = 0.0) -> torch.Tensor:
        """Indices of the misclassified images, most confident first."""
        wrong = (~self.correct & (self.confidence >= min_confidence)).nonzero().flatten()
        return wrong[self.confidence[wrong].argsort(descending=True, stable=True)]

    def most_confused_pairs(self, count: int = 5) -> list[tuple[str, str, int]]:
        """The ``count`` most frequent (true, predicted, count) confusions."""
        matrix = self.confusion_matrix().clone()
        matrix.fill_diagonal_(0)
        top = matrix.flatten().argsort(descending=True, stable=True)[:count]
        classes = matrix.shape[0]
        return [
            (self.class_names[int(i) // classes], self.class_names[int(i) % classes], int(matrix.flatten()[i]))
            for i in top
            if matrix.flatten()[i] > 0
        ]


@torch.no_grad()
def error_census(
    backbone: Backbone,
    images: torch.Tensor,
    labels: torch.Tensor | Sequence[int],
    *,
    attributes: Mapping[str, Sequence[str]] | None = None,
    batch_size: int = 64,
    progress: bool = False,
) -> ErrorCensus:
    """Classify ``images`` (N, 3, H, W) in [0, 1] and return the :class:`ErrorCensus` against ``labels``."""
    labels = torch.as_tensor(labels, dtype=torch.long).cpu()
    if labels.ndim != 1 or len(labels) != len(images):
        raise InputError(f"labels must hold one class per image ({len(images)}); got shape {tuple(labels.shape)}")
    attributes = {name: [str(v) for v in values] for name, values in (attributes or {}).items()}
    for name, values in attributes.items():
        if len(values) != len(images):
            raise InputError(f"attribute {name!r} has {len(values)} values for {len(images)} images; give one each")
    probabilities = []
    for start in tqdm(range(0, len(images), batch_size), desc="census", disable=not progress, leave=False):
        batch = backbone.check_images(images[start : start + batch_size])
        probabilities.append(backbone(batch).softmax(dim=1).float().cpu())
    probabilities = torch.cat(probabilities)
    if int(labels.max()) >= probabilities.shape[1] or int(labels.min()) < 0:
        raise InputError(f"labels must lie in 0..{probabilities.shape[1] - 1} (the backbone's classes)")
    names = [backbone.class_name(i) for i in range(probabilities.shape[1])]
    return ErrorCensus(labels, probabilities, names, attributes)
