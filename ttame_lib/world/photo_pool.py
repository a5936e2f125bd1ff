"""A pool of real photos at an ImageNet-like scale, to train explainers of ImageNet classifiers offline.

An ImageNet explainer learns one map per class, and a class that is never a training target keeps
its random initial map. Composite scenes (small objects, 12 kinds) make an ImageNet classifier
predict only a few dozen classes; this pool gives it as many different real photographs as the
offline world holds, framed the way ImageNet frames them (the object fills much of the image):

* every photographic cut-out in ``data/`` (the 12 scene classes under ``stamps/`` and every other
  photographic stamp under ``photos/``), pasted large on a crop of a training background;
* plain crops of the training backgrounds (scenes: halls, beaches, walls, fields);

each with a random-resized crop, a horizontal flip and colour jitter. Like
:class:`~ttame_lib.world.scenes.CompositeScenes`, item ``i`` is a pure function of ``(seed, i)``, and the
backgrounds held out for the scenes' test split are never used, so the benchmark's test scenes
stay unseen. There are no labels: T-TAME's targets are the classifier's own predictions.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from ..errors import InputError
from .scenes import DATA_DIR, HOLDOUT_EVERY, background_crop, cut_out, jitter_colours, load_assets


class PhotoPool(Dataset):
    """Augmented views of every real photo in ``data/``; ``pool[i]`` is a (3, size, size) tensor in [0, 1].

    Args:
        length: number of views (any number: views are drawn, not stored).
        size: output side in pixels.
        seed: changes every view; the same (seed, index) always gives the same view.
        object_share: probability that a view shows a cut-out (else a plain background crop).
        object_scale: the cut-out's longer side as a fraction of the canvas side before the final crop.
        crop_scale: area of the final random-resized crop as a fraction of the canvas.
    """

    def __init__(
        self,
        length: int = 10000,
        size: int = 224,
        seed: int = 0,
        *,
        object_share: float = 0.85,
        object_scale: tuple[float, float] = (0.6, 1.0),
        crop_scale: tuple[float, float] = (0.5, 1.0),
        data_dir: Path = DATA_DIR,
    ):
        if length < 1 or size < 32:
            raise InputError(f"PhotoPool needs length >= 1 and size >= 32; got length={length}, size={size}")
        if not 0 <= object_share <= 1:
            raise InputError(f"object_share must be in [0, 1]; got {object_share}")
        for name, (low, high) in (("object_scale", object_scale), ("crop_scale", crop_scale)):
            if not 0 < low <= high <= 1:
                raise InputError(f"{name} must satisfy 0 < low <= high <= 1; got {(low, high)}")
        assets = load_assets(Path(data_dir))
        self.cutouts = [p for c in assets.classes for p in assets.stamps[c]] + list(assets.photos)
        # The scenes' test backgrounds (every HOLDOUT_EVERY-th) stay out, as in CompositeScenes("train").
        self.backgrounds = [b for i, b in enumerate(assets.backgrounds) if i % HOLDOUT_EVERY != 0]
        self.length, self.size, self.seed = int(length), int(size), int(seed)
        self.object_share, self.object_scale, self.crop_scale = object_share, object_scale, crop_scale

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.view(index)[0]

    def view(self, index: int) -> tuple[torch.Tensor, str]:
        """View ``index`` and the name of the photo it shows (a cut-out's or background's file)."""
        if not 0 <= index < self.length:
            raise IndexError(f"view index {index} out of range for a pool of {self.length}")
        rng = np.random.default_rng([self.seed, 2, index])
        canvas_side = int(self.size * 1.25)  # room for the final crop
        background = self.backgrounds[int(rng.integers(len(self.backgrounds)))]
        canvas = background_crop(background, (canvas_side, canvas_side), rng, share=(0.4, 1.0))
        source = background.name
        if rng.random() < self.object_share:
            path = self.cutouts[int(rng.integers(len(self.cutouts)))]
            item = cut_out(path, int(canvas_side * rng.uniform(*self.object_scale)), rng)
            x = int(rng.integers(canvas_side - item.width + 1))
            y = int(rng.integers(canvas_side - item.height + 1))
            canvas = canvas.convert("RGBA")
            canvas.alpha_composite(item, (x, y))
            canvas = canvas.convert("RGB")
            # Crop around the object so that it stays in view, as in an ImageNet photo.
            centre = (x + item.width / 2, y + item.height / 2)
            source = f"{path.parent.name}/{path.name}"
        else:
            canvas = jitter_colours(canvas, rng)
            centre = (canvas_side / 2, canvas_side / 2)
        side = canvas_side * float(np.sqrt(rng.uniform(*self.crop_scale)))
        left = float(np.clip(centre[0] - side / 2 + rng.uniform(-0.15, 0.15) * side, 0, canvas_side - side))
        top = float(np.clip(centre[1] - side / 2 + rng.uniform(-0.15, 0.15) * side, 0, canvas_side - side))
        crop = canvas.crop((round(left), round(top), round(left + side), round(top + side)))
        crop = crop.resize((self.size, self.size), Image.Resampling.BILINEAR)
        if rng.random() < 0.5:
            crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        image = torch.from_numpy(np.asarray(crop, dtype=np.float32) / 255).permute(2, 0, 1).contiguous()
        return image, source
