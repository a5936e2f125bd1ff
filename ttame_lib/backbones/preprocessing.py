"""Image loading and the per-backbone preprocessing (resize, crop, normalisation).

Convention used throughout ttame_lib: images are float tensors in [0, 1] of shape
(B, 3, H, W) at the backbone's input size. Normalisation with the backbone's mean/std is
applied *inside* the library, because T-TAME masks CNN inputs before normalising and ViT
inputs after it (docs/method.md), so it must see both domains.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torchvision.transforms import InterpolationMode, v2

from ..errors import InputError

ImageLike = str | Path | Image.Image | np.ndarray | torch.Tensor


@dataclass(frozen=True)
class Preprocessing:
    """How a backbone expects its images: resize, centre crop, then normalise."""

    input_size: tuple[int, int]
    resize_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bilinear"

    def transform(self) -> v2.Compose:
        """PIL image / uint8 array -> float tensor (3, H, W) in [0, 1], resized and cropped."""
        return v2.Compose(
            [
                v2.ToImage(),
                v2.Resize(self.resize_size, interpolation=InterpolationMode(self.interpolation), antialias=True),
                v2.CenterCrop(self.input_size),
                v2.ToDtype(torch.float32, scale=True),
            ]
        )

    def _stats(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        return mean, std

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """[0, 1] images (B, 3, H, W) -> the backbone's normalised domain."""
        mean, std = self._stats(images)
        return (images - mean) / std

    def denormalize(self, images: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`normalize`."""
        mean, std = self._stats(images)
        return images * std + mean


def load_image(path: str | Path) -> Image.Image:
    """Open an image file as RGB, with a clear error for a missing or corrupt file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image file not found: {path}. Check the path (relative paths start at {Path.cwd()}).")
    try:
        with Image.open(path) as image:
            image.load()
            return image.convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise InputError(
            f"could not decode image {path}: {err}. The file is corrupt or not an image; re-download or re-export it."
        ) from err


def to_pil(image: ImageLike) -> Image.Image:
    """Accept a path, PIL image, HxWx3 uint8 array or (3, H, W) tensor in [0, 1]; return an RGB PIL image."""
    if isinstance(image, (str, Path)):
        return load_image(image)
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    if isinstance(image, torch.Tensor):
        if image.ndim != 3 or image.shape[0] not in (1, 3):
            raise InputError(f"a tensor image must have shape (3, H, W); got {tuple(image.shape)}")
        image = (image.detach().cpu().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    if isinstance(image, np.ndarray):
        if image.ndim == 2:
            image = np.stack([image] * 3, axis=-1)
        if image.ndim != 3 or image.shape[-1] not in (3, 4):
            raise InputError(f"an array image must have shape (H, W, 3); got {image.shape}")
        if image.dtype != np.uint8:
            if image.min() < 0 or image.max() > 1:
                raise InputError(f"a float array image must be in [0, 1]; got range [{image.min()}, {image.max()}]")
            image = (image * 255).round().astype(np.uint8)
        return Image.fromarray(image[..., :3])
    raise InputError(f"cannot read an image from {type(image).__name__}; pass a path, PIL image, array or tensor")
