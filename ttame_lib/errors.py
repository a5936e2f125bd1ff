"""Exceptions raised by ttame_lib.

Every error names the problem and the fix. They subclass the built-in exception a
user would naturally catch (``ValueError``, ``FileNotFoundError``, ...) so generic
handlers keep working.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence


class TTAMEError(Exception):
    """Base class of every error raised by ttame_lib."""


class InputError(TTAMEError, ValueError):
    """Images, classes or maps passed to the library have the wrong shape, dtype or range."""


class UnknownBackboneError(TTAMEError, ValueError):
    """The backbone name is neither a torchvision nor a timm model."""


class LayerNotFoundError(TTAMEError, KeyError):
    """A requested layer name does not exist in the backbone."""

    def __init__(self, unknown: Sequence[str], valid: Sequence[str], backbone: str = "backbone"):
        self.unknown = list(unknown)
        self.valid = list(valid)
        hints = []
        for name in self.unknown:
            close = difflib.get_close_matches(name, self.valid, n=3, cutoff=0.6)
            if close:
                hints.append(f"  {name!r}: did you mean {', '.join(map(repr, close))}?")
        message = (
            f"unknown layer name(s) {', '.join(map(repr, self.unknown))} for {backbone}.\n"
            + ("\n".join(hints) + "\n" if hints else "")
            + f"Valid layer names ({len(self.valid)}, from model.named_modules()):\n  "
            + "\n  ".join(self.valid)
        )
        super().__init__(message)

    def __str__(self) -> str:  # KeyError would repr() the message and escape the newlines
        return str(self.args[0])


class WeightsUnavailableError(TTAMEError, RuntimeError):
    """Pretrained weights need a download that failed (usually: no network)."""


class WeightsFileError(TTAMEError, FileNotFoundError):
    """A local weights file is missing, unreadable or does not fit the architecture."""


class CheckpointError(TTAMEError, RuntimeError):
    """A T-TAME checkpoint is corrupt, or was trained for another backbone or layer set."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """No checkpoint file at the given path."""


class LayoutError(TTAMEError, ValueError):
    """A hooked layer's output cannot be turned into a (B, C, H, W) feature map."""


class TrainingError(TTAMEError, RuntimeError):
    """Training cannot go on (e.g. the loss became NaN); the message says what was kept and what to change."""
