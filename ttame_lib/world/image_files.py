"""A folder of the user's own images as a dataset, skipping unreadable files with one counted warning.

torchvision's ``ImageFolder`` fails in the middle of an epoch on the first unreadable file;
here every file is decoded once, up front (``check="decode"``: ``PIL.Image.verify`` alone reads
headers, so a truncated JPEG would pass it and still stop training later), so a long training
run never dies on a truncated download. Images come out as the rest of the library reads
them: 16-bit greyscale rescaled, transparency composited on white.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import torch
from PIL import Image
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from ..backbones.preprocessing import load_image, too_large_message
from ..errors import InputError

EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
# Label of images in a folder without class subfolders: the dataset is unlabelled
# (T-TAME trains on the backbone's own predictions, so it needs no labels).
UNLABELLED = -1


class ImageFiles(Dataset):
    """Every image below ``root``; ``dataset[i]`` is ``(transform(image), label)``.

    Labels are the index of the image's first-level subfolder (sorted, ``dataset.classes``).
    A folder with images and no subfolders is unlabelled: every label is ``UNLABELLED`` (-1).
    Images directly in ``root`` next to class folders are refused: they have no class.
    Use ``backbone.preprocessing.transform()`` as ``transform``.

    Args:
        check: ``"decode"`` (default) decodes every file once up front, so training never meets
            an unreadable file; ``"header"`` only reads headers (fast for millions of files; a
            file that then fails to decode raises an error naming it).
        progress: show a progress bar while checking (default: for more than 500 files).
    """

    def __init__(
        self,
        root: str | Path,
        transform: Callable[[Image.Image], torch.Tensor],
        *,
        check: Literal["decode", "header"] = "decode",
        progress: bool | None = None,
    ):
        if check not in ("decode", "header"):
            raise InputError(f"check must be 'decode' or 'header'; got {check!r}")
        self.root = Path(root)
        if not self.root.is_dir():
            raise InputError(f"image folder not found: {self.root}")
        candidates = sorted(p for p in self.root.rglob("*") if p.suffix.lower() in EXTENSIONS and p.is_file())
        self.files: list[Path] = []
        self.skipped: list[Path] = []  # corrupt or not an image
        self.too_large: list[Path] = []  # over Pillow's decompression-bomb limit
        show = progress if progress is not None else len(candidates) > 500
        for path in tqdm(candidates, desc=f"checking images ({check})", disable=not show):
            try:
                with Image.open(path) as image:
                    image.load() if check == "decode" else image.verify()
                self.files.append(path)
            except Image.DecompressionBombError:
                self.too_large.append(path)
            except Exception:  # noqa: BLE001 - any decoding failure means "skip this file"
                self.skipped.append(path)
        self._warn_skipped(len(candidates))
        if not self.files:
            raise InputError(f"no readable images ({', '.join(EXTENSIONS)}) in {self.root}")
        loose = [p for p in self.files if p.parent == self.root]
        self.classes = sorted({p.relative_to(self.root).parts[0] for p in self.files if p.parent != self.root})
        if loose and self.classes:
            raise InputError(
                f"{len(loose)} image(s) lie directly in {self.root} ({loose[0].name}, ...) next to class folders "
                f"{self.classes[:5]}: they have no class. Move them into a class folder, or delete them."
            )
        self.transform = transform

    def _warn_skipped(self, total: int) -> None:
        if self.skipped:
            shown = ", ".join(str(p.relative_to(self.root)) for p in self.skipped[:5])
            warnings.warn(
                f"skipped {len(self.skipped)} corrupt image(s) of {total} in {self.root}: {shown}"
                + (" ..." if len(self.skipped) > 5 else ""),
                stacklevel=3,
            )
        if self.too_large:
            warnings.warn(
                f"skipped {len(self.too_large)} image(s) of {total} as too large: "
                + too_large_message(self.too_large[0], ValueError("over the pixel limit")),
                stacklevel=3,
            )

    def label_of(self, path: Path) -> int:
        """The class index of a file (``UNLABELLED`` in a folder without class subfolders)."""
        return self.classes.index(path.relative_to(self.root).parts[0]) if self.classes else UNLABELLED

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        path = self.files[index]
        return self.transform(load_image(path)), self.label_of(path)
