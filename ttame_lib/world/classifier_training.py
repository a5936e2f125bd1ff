"""Train a classifier of your own on the offline world, with the project's shared training loop.

The notebooks use it to give a hand-built model (notebook 01) something worth explaining; it
is the same :func:`ttame_lib.method.training.run_epochs` loop that trains T-TAME and the
shipped scene models, with AdamW and a one-cycle schedule.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ..errors import InputError
from ..method.training import Optimisation, run_epochs


def train_classifier(
    model: nn.Module,
    dataset: Dataset,
    *,
    normalize: Callable[[torch.Tensor], torch.Tensor],
    epochs: int = 3,
    batch_size: int = 64,
    lr: float = 3e-3,
    weight_decay: float = 0.05,
    parameters: Iterable[nn.Parameter] | None = None,
    seed: int = 0,
    progress: bool = True,
) -> list[dict[str, float]]:
    """Fit ``model`` to ``dataset``'s labels (items ``(image, label, ...)``, images in [0, 1]).

    Args:
        normalize: [0, 1] images -> the model's input (e.g. ``Preprocessing(...).normalize``).
        epochs, batch_size, lr, weight_decay: AdamW with a one-cycle schedule peaking at ``lr``.
        parameters: what to train (default: every parameter), e.g. only the last stage for a fine-tune.
        seed: the order of the data. Returns the per-epoch mean loss and accuracy on the training data.

    The model is left in eval mode, and each trained parameter's ``requires_grad`` as it was.
    Pass the model to ``Backbone.from_model`` to explain it.
    """
    if epochs < 1 or batch_size < 1:
        raise InputError(f"epochs and batch_size must be >= 1; got epochs={epochs}, batch_size={batch_size}")
    params = list(model.parameters() if parameters is None else parameters)
    if not params:
        raise InputError("parameters is empty: nothing to train")
    # A frozen model (e.g. one already wrapped by Backbone.from_model) is trained and then frozen again.
    was_trainable = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(True)
    loader = DataLoader(
        dataset, batch_size=batch_size, shuffle=True, drop_last=True, generator=torch.Generator().manual_seed(seed)
    )
    if len(loader) == 0:
        raise InputError(f"the dataset has {len(dataset)} items, fewer than one batch of {batch_size}")
    optimisation = Optimisation(torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay), epochs * len(loader), lr)
    history: list[dict[str, float]] = []

    def train_step(batch: tuple) -> tuple[torch.Tensor, dict[str, float], int]:
        images, labels = batch[0], batch[1]
        logits = model(normalize(images))
        loss = F.cross_entropy(logits, labels)
        accuracy = float((logits.argmax(1) == labels).float().mean())
        return loss, {"loss": float(loss.detach()), "accuracy": accuracy}, len(labels)

    run_epochs(
        epochs=epochs,
        start_epoch=0,
        steps_per_epoch=len(loader),
        loader=loader,
        train_step=train_step,
        optimisation=optimisation,
        before_epoch=lambda epoch: model.train(),
        after_epoch=lambda epoch, record: history.append(record),
        progress=progress,
    )
    model.eval()
    for p, flag in zip(params, was_trainable, strict=True):
        p.requires_grad_(flag)
    return history
