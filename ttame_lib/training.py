"""Training loop for the attention mechanism (docs/method.md, "Training").

SGD (momentum 0.9, weight decay 5e-4) with a one-cycle schedule peaking at 1e-3, mixed
precision on CUDA, a checkpoint written atomically after every epoch, and exact resumption:
the checkpoint carries the optimiser, scheduler, grad-scaler and RNG states (global and the
data loader's generator), so ``resume=True`` replays the remaining epochs bit for bit.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from tqdm.auto import tqdm

from .checkpoint import atomic_save, check_compatible, read_checkpoint
from .errors import CheckpointError, InputError

if TYPE_CHECKING:
    from .explainer import TTAME

TERMS = ("loss", "ce", "area", "tv")


def batch_images(batch: Any) -> torch.Tensor:
    """Images from a loader batch: a tensor, an (images, labels, ...) tuple or a dict with 'image'."""
    if isinstance(batch, torch.Tensor):
        return batch
    if isinstance(batch, (tuple, list)) and batch and isinstance(batch[0], torch.Tensor):
        return batch[0]
    if isinstance(batch, dict):
        for key in ("image", "images", "pixel_values"):
            if key in batch:
                return batch[key]
    raise InputError(
        f"cannot find images in a batch of type {type(batch).__name__}; yield tensors, (images, labels) "
        "tuples or dicts with an 'image' key"
    )


def _loader_generators(loader: Any) -> list[torch.Generator]:
    """RNGs that decide a DataLoader's order (its own generator and its sampler's)."""
    found = []
    for owner in (
        loader,
        getattr(loader, "sampler", None),
        getattr(getattr(loader, "batch_sampler", None), "sampler", None),
    ):
        generator = getattr(owner, "generator", None)
        if isinstance(generator, torch.Generator) and all(generator is not g for g in found):
            found.append(generator)
    return found


def _rng_state(loader: Any) -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "loader": [g.get_state() for g in _loader_generators(loader)]}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any], loader: Any) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    generators = _loader_generators(loader)
    if len(generators) != len(state["loader"]):
        raise CheckpointError("the data loader differs from the checkpointed run (its random generators do not match)")
    for generator, saved in zip(generators, state["loader"], strict=True):
        generator.set_state(saved)


def _mean_terms(sums: dict[str, float], count: int, prefix: str = "") -> dict[str, float]:
    return {f"{prefix}{k}": v / max(count, 1) for k, v in sums.items()}


@torch.no_grad()
def evaluate_loss(
    explainer: TTAME, loader: Iterable, *, amp: bool = False, max_steps: int | None = None
) -> dict[str, float]:
    """Mean loss terms over a loader, without gradients (attention in eval mode)."""
    explainer.attention.eval()
    sums = dict.fromkeys(TERMS, 0.0)
    count = 0
    device = explainer.device
    for step, batch in enumerate(loader):
        if max_steps is not None and step >= max_steps:
            break
        images = explainer.prepare(batch_images(batch))
        with torch.autocast(device.type, enabled=amp):
            total, terms = explainer.loss(images)
        for key, value in {"loss": total, **terms}.items():
            sums[key] += float(value) * images.shape[0]
        count += images.shape[0]
    return _mean_terms(sums, count)


def fit(
    explainer: TTAME,
    train_loader: Iterable,
    epochs: int = 8,
    *,
    val_loader: Iterable | None = None,
    lr: float = 1e-3,
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    steps_per_epoch: int | None = None,
    checkpoint: str | Path | None = None,
    resume: bool = False,
    amp: bool | None = None,
    progress: bool = True,
    on_epoch_end: Callable[[TTAME, dict[str, float]], None] | None = None,
) -> list[dict[str, float]]:
    """Train ``explainer.attention``; return the per-epoch history (loss terms, lr, time).

    Args:
        train_loader: yields [0, 1] image batches (labels, if any, are ignored: the
            targets are the backbone's own predictions).
        epochs: total number of epochs of the run (also when resuming).
        val_loader: optional; its mean loss terms are logged as ``val_*`` each epoch.
        lr, momentum, weight_decay: SGD settings; ``lr`` is the one-cycle peak.
        steps_per_epoch: cap on batches per epoch (default: ``len(train_loader)``).
        checkpoint: file written atomically after every epoch.
        resume: continue the run stored in ``checkpoint`` (starts fresh if it is absent).
        amp: mixed precision; default on for CUDA, off on CPU.
        progress: show a tqdm bar with the running loss terms.
        on_epoch_end: called with (explainer, epoch record) after each epoch's checkpoint,
            e.g. to snapshot maps; it must not change the explainer's weights.
    """
    if epochs < 1:
        raise InputError(f"epochs must be >= 1; got {epochs}")
    if steps_per_epoch is None:
        try:
            steps_per_epoch = len(train_loader)  # type: ignore[arg-type]
        except TypeError:
            raise InputError("train_loader has no len(); pass steps_per_epoch=") from None
    if steps_per_epoch < 1:
        raise InputError("train_loader is empty")
    device = explainer.device
    amp = device.type == "cuda" if amp is None else amp
    if amp and device.type != "cuda":
        raise InputError("mixed precision (amp=True) is only supported on CUDA; pass amp=False on CPU")
    path = Path(checkpoint) if checkpoint is not None else None
    if resume and path is None:
        raise InputError("resume=True needs checkpoint=PATH (the file the interrupted run wrote)")
    if path is not None and path.exists() and not resume:
        raise CheckpointError(
            f"{path} already exists; pass resume=True to continue that run, or another path to start a new one "
            "(nothing is overwritten silently)"
        )

    params = list(explainer.attention.parameters())
    optimizer = torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    total_steps = epochs * steps_per_epoch
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=total_steps)
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    run = {
        "epochs": epochs,
        "steps_per_epoch": steps_per_epoch,
        "lr": lr,
        "momentum": momentum,
        "weight_decay": weight_decay,
    }

    start_epoch = 0
    if resume and path is not None and path.exists():
        data = read_checkpoint(path)
        check_compatible(data["meta"], explainer.metadata(), path)
        training = data.get("training")
        if not training:
            raise CheckpointError(f"{path} holds a finished explainer without training state; it cannot be resumed")
        if training["run"] != run:
            raise CheckpointError(
                f"{path} belongs to a run with settings {training['run']}; resume with the same settings "
                f"(you passed {run})"
            )
        explainer.load_state(data, path)
        optimizer.load_state_dict(training["optimizer"])
        scheduler.load_state_dict(training["scheduler"])
        scaler.load_state_dict(training["scaler"])
        _set_rng_state(training["rng"], train_loader)
        start_epoch = training["epoch"]
        if progress:
            tqdm.write(f"resuming {path} after epoch {start_epoch}/{epochs}")
    elif not resume:
        explainer.history = []

    model = explainer.backbone.model
    for epoch in range(start_epoch, epochs):
        model.eval()  # the backbone's BatchNorm/Dropout stay in inference mode
        explainer.attention.train()
        sums = dict.fromkeys(TERMS, 0.0)
        seen = 0
        started = time.perf_counter()
        bar = tqdm(total=steps_per_epoch, desc=f"epoch {epoch + 1}/{epochs}", disable=not progress, leave=False)
        for step, batch in enumerate(train_loader):
            if step >= steps_per_epoch:
                break
            images = explainer.prepare(batch_images(batch))
            with torch.autocast(device.type, enabled=amp):
                total, terms = explainer.loss(images)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(total).backward()
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            batch_size = images.shape[0]
            values = {"loss": float(total.detach()), **{k: float(v) for k, v in terms.items()}}
            for key, value in values.items():
                sums[key] += value * batch_size
            seen += batch_size
            bar.update(1)
            bar.set_postfix({k: f"{v:.4f}" for k, v in values.items()})
        bar.close()
        if seen == 0:
            raise InputError("train_loader yielded no batches")
        record = {"epoch": epoch + 1, **_mean_terms(sums, seen), "lr": optimizer.param_groups[0]["lr"]}
        if val_loader is not None:
            record.update({f"val_{k}": v for k, v in evaluate_loss(explainer, val_loader, amp=amp).items()})
        record["seconds"] = time.perf_counter() - started
        explainer.history.append(record)
        if progress:
            tqdm.write(
                f"epoch {epoch + 1}/{epochs}: "
                + ", ".join(f"{k}={v:.4f}" for k, v in record.items() if k not in ("epoch", "seconds"))
                + f" ({record['seconds']:.1f}s)"
            )
        if path is not None:
            atomic_save(
                explainer.checkpoint_state(
                    {
                        "epoch": epoch + 1,
                        "run": run,
                        "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(),
                        "scaler": scaler.state_dict(),
                        "rng": _rng_state(train_loader),
                    }
                ),
                path,
            )
        if on_epoch_end is not None:
            on_epoch_end(explainer, record)
            explainer.attention.train()
    explainer.attention.eval()
    return explainer.history
