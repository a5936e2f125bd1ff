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


# Greyscale modes wider than 8 bits: Pillow opens 16-bit PNGs as one of these.
_WIDE_GREY = ("I;16", "I;16B", "I;16L", "I;16N", "I")


def to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL image as 8-bit RGB, without the two silent corruptions of ``image.convert("RGB")``.

    16-bit greyscale (0..65535) is rescaled to 0..255 (``convert`` clips it, so most pixels turn
    white); transparent pixels are composited on white (``convert`` drops alpha and shows
    whatever colour is stored under them, often black).
    """
    if image.mode in _WIDE_GREY:
        values = np.asarray(image, dtype=np.float64)
        top = 65535.0 if values.max(initial=0) <= 65535 else float(values.max())
        image = Image.fromarray(np.round(values.clip(0) * (255.0 / top)).astype(np.uint8), mode="L")
    elif image.mode == "F":
        values = np.asarray(image, dtype=np.float64)
        if values.size and values.min() >= 0 and values.max() <= 1:  # a float image in [0, 1]
            image = Image.fromarray(np.round(values * 255).astype(np.uint8), mode="L")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def too_large_message(path: str | Path, err: Exception) -> str:
    """The error for an image over Pillow's decompression-bomb limit: what happened and how to allow it."""
    return (
        f"image {path} is too large to open safely ({err}). Pillow refuses images over "
        f"{Image.MAX_IMAGE_PIXELS:,} pixels as possible decompression bombs. If you trust the file, allow it with "
        "PIL.Image.MAX_IMAGE_PIXELS = None (or a larger number) before loading, or downscale it first."
    )


def load_image(path: str | Path) -> Image.Image:
    """Open an image file as RGB, with a clear error for a missing, corrupt or oversized file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image file not found: {path}. Check the path (relative paths start at {Path.cwd()}).")
    try:
        with Image.open(path) as image:
            image.load()
            return to_rgb(image)
    except Image.DecompressionBombError as err:
        raise InputError(too_large_message(path, err)) from err
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise InputError(
            f"could not decode image {path}: {err}. The file is corrupt or not an image; re-download or re-export it."
        ) from err


def to_pil(image: ImageLike) -> Image.Image:
    """Accept a path, PIL image, HxW(x3/4) array or (3, H, W) tensor in [0, 1]; return an RGB PIL image."""
    if isinstance(image, (str, Path)):
        return load_image(image)
    if isinstance(image, Image.Image):
        return to_rgb(image)
    if isinstance(image, torch.Tensor):
        if image.ndim != 3 or image.shape[0] not in (1, 3):
            raise InputError(f"a tensor image must have shape (3, H, W); got {tuple(image.shape)}")
        image = (image.detach().cpu().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    if isinstance(image, np.ndarray):
        if image.ndim == 3 and image.shape[-1] == 1:
            image = image[..., 0]
        if image.ndim == 2:
            image = np.stack([image] * 3, axis=-1)
        if image.ndim != 3 or image.shape[-1] not in (3, 4):
            raise InputError(f"an array image must have shape (H, W, 3) or (H, W, 4); got {image.shape}")
        if image.dtype == np.uint16:
            image = np.round(image / 257.0).astype(np.uint8)  # 0..65535 -> 0..255
        elif image.dtype != np.uint8:
            if not np.issubdtype(image.dtype, np.floating) or image.min() < 0 or image.max() > 1:
                raise InputError(
                    f"an array image must be uint8 (0-255), uint16 (0-65535) or float in [0, 1]; got dtype "
                    f"{image.dtype} with range [{image.min()}, {image.max()}]"
                )
            image = (image * 255).round().astype(np.uint8)
        return to_rgb(Image.fromarray(np.ascontiguousarray(image), mode="RGBA" if image.shape[-1] == 4 else "RGB"))
    raise InputError(f"cannot read an image from {type(image).__name__}; pass a path, PIL image, array or tensor")
