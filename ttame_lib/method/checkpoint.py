"""Atomic checkpoint files and their validation.

A checkpoint is a plain dict of tensors and primitives, so it loads with
``torch.load(weights_only=True)`` (no arbitrary code runs when opening a file someone sent you).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError, CheckpointNotFoundError

FORMAT = "ttame-checkpoint"
FORMAT_VERSION = 1

# Metadata keys that must match between a checkpoint and the explainer it is loaded into.
STRICT_KEYS = ("backbone", "architecture", "layers", "num_classes", "channels", "mean", "std", "family")
# Keys older checkpoints do not have: compared only when the checkpoint records them.
RECORDED_SINCE_V1 = frozenset({"architecture"})


def atomic_save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` to a temporary file in the same folder, fsync, then rename over ``path``.

    A crash mid-write leaves the previous checkpoint intact: ``os.replace`` is atomic.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(obj, handle)
            handle.flush()
            os.fsync(handle.fileno())
        # mkstemp creates the file private (0600); give it the permissions a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


# What every checkpoint holds, whatever its version.
REQUIRED_KEYS = ("attention", "meta")


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a T-TAME checkpoint with ``weights_only=True`` and clear errors."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointNotFoundError(
            f"no T-TAME checkpoint at {path}. Check the path, or create one with "
            "explainer.fit(..., checkpoint=PATH) or explainer.save(PATH)."
        )
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - truncated zip, wrong format, pickle with code...
        raise CheckpointError(
            f"could not read checkpoint {path} ({type(err).__name__}: {err}). The file is corrupt, truncated or "
            "not a T-TAME checkpoint; use an earlier copy or retrain."
        ) from err
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(
            f"{path} is not a T-TAME checkpoint (no '{FORMAT}' marker); TTAME.load reads files written by "
            "explainer.save(PATH) or explainer.fit(..., checkpoint=PATH)"
        )
    version = data.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise CheckpointError(
            f"{path} has {'no' if version is None else f'a non-integer ({version!r})'} format_version, so it was "
            "not written by explainer.save (or was edited afterwards); save the explainer again or retrain"
        )
    missing = [key for key in REQUIRED_KEYS if key not in data]
    if missing:
        raise CheckpointError(
            f"{path} lacks {missing}: it is incomplete (edited or written by a broken tool); use an earlier copy "
            "or retrain"
        )
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} was written by a newer ttame_lib (format {data['format_version']}, this one reads "
            f"{FORMAT_VERSION}); upgrade ttame_lib"
        )
    return data


def check_compatible(saved: dict[str, Any], current: dict[str, Any], path: str | Path) -> None:
    """Raise :class:`CheckpointError` naming every metadata field that differs."""
    diffs = [
        f"  {key}: checkpoint has {saved.get(key)!r}, this explainer has {current.get(key)!r}"
        for key in STRICT_KEYS
        if not (key in RECORDED_SINCE_V1 and key not in saved)
        and _normalise(saved.get(key)) != _normalise(current.get(key))
    ]
    if diffs:
        raise CheckpointError(
            f"checkpoint {path} was trained for another backbone or layer set:\n"
            + "\n".join(diffs)
            + f"\nLoad it with load_backbone({saved.get('backbone')!r}, ...) and layers={saved.get('layers')!r}."
        )


def _normalise(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_normalise(v) for v in value]
    if isinstance(value, float):
        return round(value, 6)
    return value
