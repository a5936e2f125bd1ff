"""Training images drawn from several image sets at chosen shares, e.g. photos and composite scenes.

An ImageNet explainer trained only on large, centred photos learns maps for that framing; the
benchmark's composite scenes show smaller objects anywhere in the frame. :class:`ImageMixture`
draws each item from one of its parts, so both framings can be trained at once. Item ``i`` is a
pure function of ``(seed, i)``, like the parts themselves.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import InputError


class ImageMixture(Dataset):
    """``length`` images, each taken from one of ``parts`` with probability ``shares[k]``.

    Args:
        parts: datasets whose items are an image tensor or a tuple starting with one (scenes'
            labels and masks are dropped: T-TAME trains on the classifier's own predictions).
        shares: non-negative weights, one per part (normalised to sum to 1).
        length: number of items.
        seed: picks the part of every item; the same (seed, index) always gives the same image.
    """

    def __init__(self, parts: Sequence[Dataset], shares: Sequence[float], length: int, seed: int = 0):
        if len(parts) == 0 or len(parts) != len(shares):
            raise InputError(f"ImageMixture needs one share per part; got {len(parts)} parts and {len(shares)} shares")
        weights = np.asarray(shares, dtype=np.float64)
        if (weights < 0).any() or weights.sum() <= 0:
            raise InputError(f"shares must be non-negative and not all zero; got {list(shares)}")
        if length < 1:
            raise InputError(f"length must be >= 1; got {length}")
        empty = [k for k, part in enumerate(parts) if len(part) == 0]  # type: ignore[arg-type]
        if empty:
            raise InputError(f"parts {empty} are empty; give each part at least one item")
        self.parts, self.length, self.seed = list(parts), int(length), int(seed)
        self.shares = weights / weights.sum()
        # Draw every item's part once: cheap, and lets `part_of` report the exact mixture.
        self._part = np.random.default_rng([self.seed, 3]).choice(len(parts), size=self.length, p=self.shares)

    def __len__(self) -> int:
        return self.length

    def part_of(self, index: int) -> int:
        """Which part item ``index`` comes from."""
        return int(self._part[index])

    def __getitem__(self, index: int) -> torch.Tensor:
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for a mixture of {self.length}")
        part = self.parts[self.part_of(index)]
        item = part[index % len(part)]  # type: ignore[arg-type]
        return item[0] if isinstance(item, (tuple, list)) else item
