"""A folder of the user's own images as a dataset, skipping corrupt files with one counted warning.

torchvision's ``ImageFolder`` fails in the middle of an epoch on the first unreadable file;
here every file is checked once, up front (``PIL.Image.verify`` reads headers, not pixels),
so a long training run never dies on a truncated download.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import Dataset

from ..backbones.preprocessing import load_image
from ..errors import InputError

EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")


class ImageFiles(Dataset):
    """Every image below ``root``; ``dataset[i]`` is ``(transform(image), label)``.

    Labels are the index of the image's first-level subfolder (sorted), or 0 for images
    directly in ``root``. Use ``backbone.preprocessing.transform()`` as ``transform``.
    """

    def __init__(self, root: str | Path, transform: Callable[[Image.Image], torch.Tensor]):
        self.root = Path(root)
        if not self.root.is_dir():
            raise InputError(f"image folder not found: {self.root}")
        candidates = sorted(p for p in self.root.rglob("*") if p.suffix.lower() in EXTENSIONS and p.is_file())
        self.files, skipped = [], []
        for path in candidates:
            try:
                with Image.open(path) as image:
                    image.verify()
                self.files.append(path)
            except Exception:  # noqa: BLE001 - any decoding failure means "skip this file"
                skipped.append(path)
        self.skipped = skipped
        if skipped:
            shown = ", ".join(str(p.relative_to(self.root)) for p in skipped[:5])
            warnings.warn(
                f"skipped {len(skipped)} corrupt image(s) of {len(candidates)} in {self.root}: {shown}"
                + (" ..." if len(skipped) > 5 else ""),
                stacklevel=2,
            )
        if not self.files:
            raise InputError(f"no readable images ({', '.join(EXTENSIONS)}) in {self.root}")
        self.classes = sorted({p.relative_to(self.root).parts[0] for p in self.files if p.parent != self.root})
        self.transform = transform

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        path = self.files[index]
        label = self.classes.index(path.relative_to(self.root).parts[0]) if path.parent != self.root else 0
        return self.transform(load_image(path)), label
