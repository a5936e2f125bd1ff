"""The one interface every explainer shares: T-TAME and every baseline.

``explain(images, classes=None) -> (B, H, W)`` maps in [0, 1] for [0, 1] images (B, 3, H, W),
``close()`` to release whatever the explainer attached to the backbone (hooks), and use as a
context manager so that happens even when an error interrupts the work::

    with make_explainer(backbone, "gradcam") as cam:
        maps = cam.explain(images)
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch


@runtime_checkable
class Explainer(Protocol):
    """What the metrics, the benchmark and the notebooks rely on."""

    name: str

    def explain(self, images: torch.Tensor, classes: Any = None) -> torch.Tensor:
        """(B, H, W) maps in [0, 1] for ``classes`` (default: each image's predicted class)."""
        ...

    def close(self) -> None:
        """Release hooks and other resources; the backbone is left as it was."""
        ...

    def __enter__(self) -> Explainer: ...

    def __exit__(self, *exc_info: object) -> None: ...


class ExplainerBase:
    """Context-manager behaviour and a no-op ``close`` for explainers that attach nothing."""

    name: str = "explainer"

    def close(self) -> None:
        """Nothing to release by default (no hooks)."""

    def __enter__(self) -> ExplainerBase:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
