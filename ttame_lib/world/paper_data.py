"""Image folders at the paper's scale: ImageNet's layout, the paper's preprocessing and subsets.

The ImageNet training set comes as one folder per class (synset); the validation set is laid
out the same way after the usual reorganisation (one folder per synset). Both load with
:class:`ttame_lib.world.image_files.ImageFiles`, which skips and counts corrupt files.

The paper's preprocessing (docs/method.md): CNNs resize to 256 and centre-crop 224 (for training
and evaluation); ViTs train on random crops with horizontal flips and evaluate like CNNs. Its
evaluation uses 2,000 validation images, with another 2,000 for validation:
:func:`paper_subsets` draws both, disjoint, from a seeded permutation, so every run (and every
machine) uses the same images.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset
from torchvision.transforms import InterpolationMode, v2

from ..backbones.backbone import Backbone
from ..errors import InputError
from ..method.distributed import rank, world_size
from .image_files import ImageFiles


def paper_transform(backbone: Backbone, train: bool) -> Callable:
    """PIL image -> (3, H, W) in [0, 1]: the backbone's resize + centre crop, or for training a ViT
    a random resized crop with a horizontal flip (the paper's augmentation)."""
    if not (train and backbone.family == "vit"):
        return backbone.preprocessing.transform()
    interpolation = InterpolationMode(backbone.preprocessing.interpolation)
    return v2.Compose(
        [
            v2.ToImage(),
            v2.RandomResizedCrop(backbone.input_size, interpolation=interpolation, antialias=True),
            v2.RandomHorizontalFlip(),
            v2.ToDtype(torch.float32, scale=True),
        ]
    )


@dataclass(frozen=True)
class PaperSubsets:
    """Indices into a validation folder: ``evaluation`` (the reported numbers) and ``validation``."""

    evaluation: list[int]
    validation: list[int]


def paper_subsets(dataset: Dataset, evaluation: int = 2000, validation: int = 2000, seed: int = 0) -> PaperSubsets:
    """Two disjoint, reproducible random subsets of ``dataset`` (the paper: 2,000 + 2,000)."""
    total = len(dataset)
    if evaluation < 1 or validation < 0 or evaluation + validation > total:
        raise InputError(
            f"evaluation={evaluation} + validation={validation} images do not fit in a folder of {total}; "
            "lower them (the paper uses 2,000 + 2,000 of ImageNet's 50,000 validation images)"
        )
    order = torch.randperm(total, generator=torch.Generator().manual_seed(seed)).tolist()
    return PaperSubsets(sorted(order[:evaluation]), sorted(order[evaluation : evaluation + validation]))


def image_folder(root: str | Path, backbone: Backbone, *, train: bool, check: str = "decode") -> ImageFiles:
    """One split of an ImageNet-style folder (one subfolder per class) with the paper's preprocessing.

    ``check="header"`` skips decoding every file up front (for ImageNet's 1.28 M training images).
    """
    return ImageFiles(root, paper_transform(backbone, train), check=check)  # type: ignore[arg-type]


def make_loader(
    dataset: Dataset,
    batch_size: int,
    *,
    shuffle: bool,
    seed: int = 0,
    workers: int | None = None,
    indices: list[int] | None = None,
    shard: bool = False,
) -> DataLoader:
    """A DataLoader with worker processes and pinned memory on CUDA machines; seeded shuffling.

    ``workers`` defaults to the CPU count (at most 8); 0 loads in the main process. With ``shard``
    a ``DistributedSampler`` gives each ``torchrun`` process its share of every batch (``batch_size``
    is then per process); with one process it yields the same global batches, so one process with
    batch B and N processes with batch B / N see the same images at every step.
    """
    if indices is not None:
        dataset = Subset(dataset, indices)
    workers = min(8, os.cpu_count() or 1) if workers is None else workers
    sampler = None
    if shard:
        sampler = DistributedSampler(
            dataset, num_replicas=world_size(), rank=rank(), shuffle=shuffle, seed=seed, drop_last=True
        )
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle if sampler is None else None,
        sampler=sampler,
        drop_last=shard,
        num_workers=workers,
        pin_memory=torch.cuda.is_available(),
        persistent_workers=workers > 0,
        generator=torch.Generator().manual_seed(seed),
    )
