"""Composite scenes: real photo cut-outs pasted on real backgrounds, with exact object masks.

The offline world of this project. Each scene is drawn deterministically from
``(seed, split, index)``: a background crop, one target object (a stamp of the scene's class)
at a random scale, position, flip and colour jitter, optional smaller distractors of other
classes underneath it, and optionally a spurious cue (a small watermark correlated with one
class) for debugging case studies. The target's alpha channel, after all transforms, is the
ground-truth mask used by localisation metrics.

Splits:
* ``holdout="composition"`` (default): train and test share object instances but test uses
  backgrounds never seen in training (every 5th background) and its own placements/scales.
* ``holdout="instance"``: additionally every 5th instance of each class appears only in test
  (a hard few-shot test of generalisation).
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from PIL import Image, ImageEnhance
from torch.utils.data import Dataset

from ..errors import InputError

DATA_DIR = Path(__file__).resolve().parents[2] / "data"
RESTORE_HINT = "restore it with `git checkout -- data/` or rebuild data/ with `python scripts/fetch_assets.py`"
HOLDOUT_EVERY = 5  # every 5th background (and, with holdout="instance", every 5th instance) is test-only

Split = Literal["train", "test"]


class AssetError(InputError, FileNotFoundError):
    """A committed asset is missing or corrupt."""


@dataclass(frozen=True)
class Assets:
    """The stamp files per class, the other photographic cut-outs and the background files,
    checked against MANIFEST.csv."""

    classes: tuple[str, ...]
    stamps: dict[str, tuple[Path, ...]]
    backgrounds: tuple[Path, ...]
    photos: tuple[Path, ...] = ()


@lru_cache(maxsize=4)
def load_assets(data_dir: Path = DATA_DIR, verify: bool = True) -> Assets:
    """Read data/MANIFEST.csv; with ``verify`` check every file's sha256 (about 10 MB, fast)."""
    manifest = Path(data_dir) / "MANIFEST.csv"
    if not manifest.is_file():
        raise AssetError(f"asset manifest {manifest} is missing; {RESTORE_HINT}")
    stamps: dict[str, list[Path]] = {}
    backgrounds, photos = [], []
    with open(manifest, newline="") as handle:
        for row in csv.DictReader(handle):
            path = Path(data_dir) / row["file"]
            if not path.is_file():
                raise AssetError(f"asset {path} is missing; {RESTORE_HINT}")
            if verify and hashlib.sha256(path.read_bytes()).hexdigest() != row["sha256"]:
                raise AssetError(f"asset {path} is corrupt (sha256 differs from MANIFEST.csv); {RESTORE_HINT}")
            folder = row["file"].split("/", 1)[0]
            if folder == "stamps":
                stamps.setdefault(path.parent.name, []).append(path)
            elif folder == "photos":
                photos.append(path)
            elif folder == "backgrounds":
                backgrounds.append(path)
            else:
                raise AssetError(f"MANIFEST.csv lists {row['file']!r} outside stamps/, photos/ and backgrounds/")
    classes = tuple(sorted(stamps))
    stamp_files = {c: tuple(sorted(stamps[c])) for c in classes}
    return Assets(classes, stamp_files, tuple(sorted(backgrounds)), tuple(sorted(photos)))


@lru_cache(maxsize=512)
def _open(path: Path, mode: str) -> Image.Image:
    try:
        with Image.open(path) as image:
            return image.convert(mode)
    except OSError as err:
        raise AssetError(f"asset {path} cannot be decoded ({err}); {RESTORE_HINT}") from err


@dataclass(frozen=True)
class Scene:
    """One composite: the image (3, H, W) in [0, 1], its class, the target's mask (H, W) and how it was made."""

    image: torch.Tensor
    label: int
    mask: torch.Tensor
    instance: str
    background: str
    box: tuple[int, int, int, int]  # target's (top, left, height, width)
    has_cue: bool


def jitter_colours(rgb: Image.Image, rng: np.random.Generator, strength: float = 0.25) -> Image.Image:
    """Random brightness, contrast and saturation, each by a factor in [1 - strength, 1 + strength]."""
    for enhancer in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
        rgb = enhancer(rgb).enhance(float(rng.uniform(1 - strength, 1 + strength)))
    return rgb


def cut_out(path: Path, longest: int, rng: np.random.Generator) -> Image.Image:
    """A photographic cut-out (RGBA) scaled to ``longest`` px on its longer side, randomly flipped and jittered."""
    stamp = _open(path, "RGBA")
    factor = longest / max(stamp.size)
    stamp = stamp.resize(
        (max(1, round(stamp.width * factor)), max(1, round(stamp.height * factor))), Image.Resampling.BILINEAR
    )
    if rng.random() < 0.5:
        stamp = stamp.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    rgb, alpha = stamp.convert("RGB"), stamp.getchannel("A")
    rgb = jitter_colours(rgb, rng)
    rgb.putalpha(alpha)
    return rgb


def background_crop(
    path: Path, size: tuple[int, int], rng: np.random.Generator, share: tuple[float, float] = (0.6, 1.0)
) -> Image.Image:
    """A random crop of a background with the output's aspect ratio (its width a ``share`` of the widest
    such crop), resized to ``size`` = (H, W)."""
    height, width = size
    background = _open(path, "RGB")
    crop_w = min(background.width, int(background.height * width / height))
    crop_w = int(crop_w * rng.uniform(*share))
    crop_h = int(crop_w * height / width)
    left = int(rng.integers(background.width - crop_w + 1))
    top = int(rng.integers(background.height - crop_h + 1))
    canvas = background.crop((left, top, left + crop_w, top + crop_h))
    return canvas.resize((width, height), Image.Resampling.BILINEAR)


class CompositeScenes(Dataset):
    """Deterministic composite scenes; ``dataset[i]`` is ``(image, label, mask)``.

    Args:
        split: "train" or "test" (disjoint backgrounds; see the module docstring).
        length: number of scenes in the split.
        size: output resolution (int or (H, W)), at least 64.
        seed: changes every scene; the same (seed, split, index) always gives the same scene.
        holdout: "composition" or "instance".
        scale: range of the target's longer side as a fraction of the shorter image side.
        distractors: maximum number of smaller other-class objects under the target.
        cue_class: class index that carries the spurious watermark (None: no cue).
        cue_rate: probability of the watermark on ``cue_class`` images (other classes get it
            with probability ``cue_leak``).
        classes: restrict to these class names (default: all 12).
    """

    def __init__(
        self,
        split: Split = "train",
        length: int = 1000,
        size: int | tuple[int, int] = 64,
        seed: int = 0,
        *,
        holdout: Literal["composition", "instance"] = "composition",
        scale: tuple[float, float] = (0.4, 0.8),
        distractors: int = 0,
        cue_class: int | None = None,
        cue_rate: float = 0.9,
        cue_leak: float = 0.0,
        classes: Sequence[str] | None = None,
        data_dir: Path = DATA_DIR,
    ):
        if split not in ("train", "test"):
            raise InputError(f"split must be 'train' or 'test'; got {split!r}")
        if holdout not in ("composition", "instance"):
            raise InputError(f"holdout must be 'composition' or 'instance'; got {holdout!r}")
        self.size = (size, size) if isinstance(size, int) else tuple(size)
        if min(self.size) < 64:
            raise InputError(f"size must be at least 64 pixels; got {self.size}")
        if not 0 < scale[0] <= scale[1] <= 1:
            raise InputError(f"scale must satisfy 0 < low <= high <= 1; got {scale}")
        assets = load_assets(Path(data_dir))
        self.classes = tuple(classes) if classes is not None else assets.classes
        unknown = set(self.classes) - set(assets.classes)
        if unknown:
            raise InputError(f"unknown classes {sorted(unknown)}; available: {list(assets.classes)}")
        if cue_class is not None and not 0 <= cue_class < len(self.classes):
            raise InputError(f"cue_class {cue_class} out of range for {len(self.classes)} classes")
        test = split == "test"
        self.split, self.length, self.seed, self.holdout = split, int(length), int(seed), holdout
        self.scale, self.distractors = scale, int(distractors)
        self.cue_class, self.cue_rate, self.cue_leak = cue_class, cue_rate, cue_leak
        self.backgrounds = [b for i, b in enumerate(assets.backgrounds) if (i % HOLDOUT_EVERY == 0) == test]
        self.instances: dict[str, list[Path]] = {}
        for name in self.classes:
            files = assets.stamps[name]
            if holdout == "instance":
                files = [f for i, f in enumerate(files) if (i % HOLDOUT_EVERY == HOLDOUT_EVERY - 1) == test]
            self.instances[name] = list(files)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, torch.Tensor]:
        scene = self.scene(index)
        return scene.image, scene.label, scene.mask

    def class_name(self, label: int) -> str:
        return self.classes[label]

    def _rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, 1 if self.split == "test" else 0, index])

    def scene(self, index: int) -> Scene:
        """The full record of scene ``index`` (image, label, mask and how it was composed)."""
        if not 0 <= index < self.length:
            raise IndexError(f"scene index {index} out of range for a dataset of {self.length}")
        rng = self._rng(index)
        height, width = self.size
        label = int(rng.integers(len(self.classes)))
        name = self.classes[label]
        instance = self.instances[name][int(rng.integers(len(self.instances[name])))]
        background_path = self.backgrounds[int(rng.integers(len(self.backgrounds)))]
        canvas = background_crop(background_path, (height, width), rng).convert("RGBA")
        side = min(height, width)
        others = [c for c in self.classes if c != name]
        for _ in range(int(rng.integers(self.distractors + 1)) if self.distractors else 0):
            other = others[int(rng.integers(len(others)))]
            path = self.instances[other][int(rng.integers(len(self.instances[other])))]
            item = cut_out(path, int(side * rng.uniform(0.2, 0.4)), rng)
            canvas.alpha_composite(
                item, (int(rng.integers(width - item.width + 1)), int(rng.integers(height - item.height + 1)))
            )
        target = cut_out(instance, int(side * rng.uniform(*self.scale)), rng)
        x = int(rng.integers(width - target.width + 1))
        y = int(rng.integers(height - target.height + 1))
        canvas.alpha_composite(target, (x, y))
        mask = np.zeros((height, width), dtype=np.float32)
        mask[y : y + target.height, x : x + target.width] = np.asarray(target.getchannel("A"), dtype=np.float32) / 255
        cue_p = self.cue_rate if label == self.cue_class else self.cue_leak
        has_cue = self.cue_class is not None and rng.random() < cue_p
        image = np.asarray(canvas.convert("RGB"), dtype=np.float32) / 255
        if has_cue:
            _draw_watermark(image)
        return Scene(
            image=torch.from_numpy(image).permute(2, 0, 1).contiguous(),
            label=label,
            mask=torch.from_numpy(mask > 0.5),
            instance=f"{name}/{instance.name}",
            background=background_path.name,
            box=(y, x, target.height, target.width),
            has_cue=bool(has_cue),
        )


def watermark_cells(height: int, width: int) -> list[tuple[int, int, int, float]]:
    """The spurious cue's geometry: a 3x3 black-and-white checkerboard in the bottom-right corner,
    as (top, left, cell size, value) per cell."""
    cell = max(2, min(height, width) // 32)
    return [
        (height - (4 - i) * cell, width - (4 - j) * cell, cell, 1.0 if (i + j) % 2 == 0 else 0.0)
        for i in range(3)
        for j in range(3)
    ]


def _draw_watermark(image: np.ndarray) -> None:
    """Paint the spurious cue into an (H, W, 3) image in place."""
    for y0, x0, cell, value in watermark_cells(*image.shape[:2]):
        image[y0 : y0 + cell, x0 : x0 + cell] = value
