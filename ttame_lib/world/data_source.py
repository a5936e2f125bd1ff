"""Where a notebook's images come from: the offline world's scenes, or an image folder.

Every notebook that trains or evaluates takes one parameter, ``data``, and passes it here:

- ``"scenes"`` (the default): composite scenes of the offline world, drawn on the fly, with the
  true object mask of every scene (what the pointing game needs). Training scenes use training
  backgrounds; evaluation and validation scenes use held-out ones, with different seeds.
- the path of an ImageNet-style folder with ``train/`` and ``val/``, one subfolder per class
  (ImageNet's synsets, in which case folder index = ImageNet class index). Images get the
  paper's preprocessing for the backbone (:mod:`.paper_data`); corrupt files are skipped and
  counted. Evaluation and validation images are two disjoint seeded subsets of ``val/`` (the
  paper's 2,000 + 2,000 draw, :func:`.paper_data.paper_subsets`). Folders carry no object
  masks, so localisation metrics are unavailable (``masks is None``); faithfulness metrics
  (AD / IC, ROAD) need none.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset

from ..backbones.backbone import Backbone
from ..errors import InputError
from ..evaluation.faithfulness import confidence_drop
from ..evaluation.localisation import pointing_game
from .paper_data import image_folder, paper_subsets
from .scenes import CompositeScenes

SCENES = "scenes"
# Seed offsets of the scene splits: the validation scenes are never the evaluated ones.
VALIDATION_SEED_OFFSET = 1000


@dataclass(frozen=True)
class EvaluationImages:
    """Images held in memory for evaluation, with what is known about them."""

    images: torch.Tensor  # (N, 3, H, W) in [0, 1]
    labels: torch.Tensor  # (N,) class index in ``class_names``
    masks: torch.Tensor | None  # (N, H, W) bool true object masks; None for image folders
    class_names: list[str]
    labels_are_backbone_classes: bool  # label k is the backbone's class k (scene backbones; ImageNet folders)
    description: str

    def __len__(self) -> int:
        return len(self.images)

    def loader(self, batch_size: int = 64) -> DataLoader:
        """Batches of (images, labels), in order (e.g. ``fit``'s ``val_loader``)."""
        return DataLoader(TensorDataset(self.images, self.labels), batch_size=batch_size)


def _scene_size(backbone: Backbone, size: int | None) -> tuple[int, int]:
    return tuple(backbone.input_size) if size is None else (int(size), int(size))


def _folder(data: str | Path, split: str) -> Path:
    root = Path(data).expanduser()
    if not root.is_dir():
        raise InputError(
            f"data={str(data)!r} is neither 'scenes' (the offline world) nor an existing folder; pass 'scenes' or "
            "the path of a folder with train/ and val/ (one subfolder per class, as ImageNet's)"
        )
    folder = root / split
    if not folder.is_dir():
        raise InputError(
            f"data={str(data)!r} has no {split}/ folder; an image-folder data source needs {root}/train and "
            f"{root}/val, each with one subfolder per class (ImageNet's layout)"
        )
    return folder


def _check_folder_size(data: str | Path, size: int | None, backbone: Backbone) -> None:
    if size is not None and (int(size), int(size)) != tuple(backbone.input_size):
        raise InputError(
            f"size={size} applies to the offline scenes only: images from data={str(data)!r} get the backbone's "
            f"own preprocessing ({tuple(backbone.input_size)}); pass size=None"
        )


def is_scenes(data: str | Path) -> bool:
    """True for the offline world's scenes (``data="scenes"``)."""
    return str(data) == SCENES


def training_set(
    data: str | Path, backbone: Backbone, count: int, *, seed: int = 0, size: int | None = None, **scene_options
) -> Dataset:
    """``count`` training images for ``backbone`` (items ``(image, label, ...)``, images in [0, 1]).

    ``size`` (scenes only) defaults to the backbone's input size; ``scene_options`` go to
    :class:`.scenes.CompositeScenes` (e.g. ``scale``). From a folder: a seeded random subset of
    ``train/`` with the paper's training preprocessing.
    """
    if count < 1:
        raise InputError(f"count must be at least 1 training image; got {count}")
    if is_scenes(data):
        return CompositeScenes("train", length=count, size=_scene_size(backbone, size), seed=seed, **scene_options)
    _check_folder_size(data, size, backbone)
    folder = image_folder(_folder(data, "train"), backbone, train=True, check="header")
    if count > len(folder):
        raise InputError(f"count={count} training images asked, but {folder.root} holds {len(folder)}; lower it")
    order = torch.randperm(len(folder), generator=torch.Generator().manual_seed(seed))[:count]
    return Subset(folder, sorted(order.tolist()))


def evaluation_set(
    data: str | Path,
    backbone: Backbone,
    count: int,
    *,
    seed: int = 0,
    validation: bool = False,
    size: int | None = None,
    **scene_options,
) -> EvaluationImages:
    """``count`` held-out images in memory; ``validation=True`` gives other images (to tune on).

    Scenes: held-out backgrounds, seed ``seed`` (``seed + 1000`` for validation), with masks.
    Folders: from ``val/``, the evaluation images are the first ``count`` of the seeded
    permutation that :func:`.paper_data.paper_subsets` draws and the validation images the
    ``count`` after the paper's 2,000 evaluation images (fewer in a folder too small for them),
    so the two do not overlap while at most 2,000 images are evaluated.
    """
    if count < 1:
        raise InputError(f"count must be at least 1 image; got {count}")
    if is_scenes(data):
        scenes = CompositeScenes(
            "test",
            length=count,
            size=_scene_size(backbone, size),
            seed=seed + (VALIDATION_SEED_OFFSET if validation else 0),
            **scene_options,
        )
        items = [scenes[i] for i in range(count)]
        split = "validation" if validation else "held-out"
        return EvaluationImages(
            images=torch.stack([item[0] for item in items]),
            labels=torch.tensor([item[1] for item in items]),
            masks=torch.stack([item[2] for item in items]),
            class_names=list(scenes.classes),
            labels_are_backbone_classes=list(scenes.classes) == list(backbone.class_names or []),
            description=f"{count} {split} scenes (backgrounds never seen in training)",
        )
    _check_folder_size(data, size, backbone)
    folder = image_folder(_folder(data, "val"), backbone, train=False)
    # The paper's evaluation share comes first in the permutation; validation images follow it.
    reserved = max(1, min(2000, len(folder) - count))
    if validation:
        indices = paper_subsets(folder, evaluation=reserved, validation=count, seed=seed).validation
    else:
        indices = paper_subsets(folder, evaluation=count, validation=0, seed=seed).evaluation
    items = [folder[i] for i in indices]
    split = "validation" if validation else "evaluation"
    return EvaluationImages(
        images=torch.stack([item[0] for item in items]),
        labels=torch.tensor([int(item[1]) for item in items]),
        masks=None,
        class_names=list(folder.classes),
        labels_are_backbone_classes=len(folder.classes) == backbone.num_classes,
        description=f"{count} {split} images of {folder.root} ({len(folder.classes)} classes; no object masks)",
    )


@torch.no_grad()
def headline_score(explainer, evaluation: EvaluationImages, batch_size: int = 50) -> tuple[str, float]:
    """One number to compare explainers in a notebook: the pointing game (higher is better) where
    the images have object masks, else AD at 15 % of the pixels kept (lower is better), in %.

    Maps are for each image's predicted class. Returns ``(label, value)``, the label saying which.
    """
    maps = torch.cat(
        [explainer.explain(evaluation.images[i : i + batch_size]).cpu() for i in range(0, len(evaluation), batch_size)]
    )
    if evaluation.masks is not None:
        return "pointing game ↑", 100 * float(pointing_game(maps, evaluation.masks).mean())
    drop = confidence_drop(explainer.backbone, evaluation.images, maps, percents=(15,))
    return "AD(15 %) ↓", float(drop.summary()["AD(15%)"])
