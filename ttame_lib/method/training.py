"""Training: the loss on a batch, the epoch loop, checkpoints and exact resumption.

One loop, :func:`run_epochs`, serves both trainers of the project: :func:`fit` (T-TAME's
attention mechanism; docs/method.md, "Training") and ``scripts/train_backbone.py`` (the
offline world's scene classifiers). T-TAME is trained with SGD (momentum 0.9, weight decay
5e-4) under a one-cycle schedule peaking at 1e-3, mixed precision on CUDA (float16 with a
gradient scaler by default, or bfloat16; see :func:`resolve_precision`), a checkpoint
written atomically after every epoch; the checkpoint carries the optimiser, scheduler,
grad-scaler and RNG states (global and the data loader's generator), so ``resume=True``
replays the remaining epochs bit for bit.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn
from tqdm.auto import tqdm

from ..backbones.backbone import Backbone
from ..errors import CheckpointError, InputError, TrainingError
from . import distributed
from .attention import AttentionMechanism
from .checkpoint import atomic_save, check_compatible, read_checkpoint
from .loss import TTAMELoss

TERMS = ("loss", "ce", "area", "tv")
PRECISIONS = {"fp16": torch.float16, "bf16": torch.bfloat16}


def resolve_precision(amp: bool | str | None, device: torch.device) -> str | None:
    """The autocast precision of a run: ``"fp16"``, ``"bf16"`` or ``None`` (full float32).

    ``amp=None`` picks float16 on CUDA and float32 elsewhere; ``True`` means ``"fp16"``; ``False``
    or ``"off"`` turns mixed precision off. float16 needs CUDA (its gradient scaler is CUDA's);
    bfloat16 runs on CUDA GPUs that support it and on CPUs (where it saves memory, rarely time).
    """
    if amp is None:
        return "fp16" if device.type == "cuda" else None
    if amp is False or amp == "off":
        return None
    precision = "fp16" if amp is True else amp
    if precision not in PRECISIONS:
        raise InputError(
            f"amp must be None (float16 on CUDA, off elsewhere), True/'fp16', 'bf16', or False/'off'; got {amp!r}"
        )
    if precision == "fp16" and device.type != "cuda":
        raise InputError(
            f"amp={amp!r} (float16 with a gradient scaler) needs CUDA, and the explainer is on {device.type}; "
            "pass amp='bf16' for mixed precision on this device, or amp=False"
        )
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise InputError("amp='bf16' needs a GPU with bfloat16 support (Ampere or newer); pass amp='fp16' instead")
    return precision


def autocast(device: torch.device | None, precision: str | None) -> torch.autocast:
    """``torch.autocast`` for ``precision`` (a no-op context when it is None)."""
    kind = device.type if device is not None else "cpu"
    dtype = PRECISIONS.get(precision or "", None)
    return torch.autocast(kind, dtype=dtype, enabled=dtype is not None)


class Trainable(Protocol):
    """What training needs of an explainer (:class:`ttame_lib.TTAME` has it all)."""

    backbone: Backbone
    attention: AttentionMechanism
    loss_fn: TTAMELoss
    history: list[dict[str, float]]
    target_counts: torch.Tensor | None

    @property
    def device(self) -> torch.device: ...

    def prepare(self, images: torch.Tensor) -> torch.Tensor: ...

    def backbone_forward(self, images: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]: ...

    def masked_logits(self, images: torch.Tensor, maps: torch.Tensor) -> torch.Tensor: ...

    def metadata(self) -> dict[str, Any]: ...

    def checkpoint_state(self, training: dict[str, Any] | None = None) -> dict[str, Any]: ...

    def load_state(self, data: dict[str, Any], path: str | Path = ...) -> None: ...


def batch_images(batch: Any) -> torch.Tensor:
    """Images from a loader batch: a tensor, an (images, labels, ...) tuple or a dict with 'image'."""
    if isinstance(batch, torch.Tensor):
        return batch
    if isinstance(batch, (tuple, list)) and batch and isinstance(batch[0], torch.Tensor):
        later = [i for i, item in enumerate(batch) if isinstance(item, torch.Tensor) and item.ndim == 4]
        if batch[0].ndim != 4 and later:
            raise InputError(
                f"the first item of each batch must be the images; got a tensor of shape {tuple(batch[0].shape)} "
                f"first and images (4-D) at position {later[0]}. Yield (images, labels), not (labels, images)"
            )
        return batch[0]
    if isinstance(batch, dict):
        for key in ("image", "images", "pixel_values"):
            if key in batch:
                return batch[key]
    raise InputError(
        f"cannot find images in a batch of type {type(batch).__name__}; yield tensors, (images, labels) "
        "tuples or dicts with an 'image' key"
    )


def batch_loss(
    explainer: Trainable, images: torch.Tensor, attention: nn.Module | None = None
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The T-TAME loss for a batch of prepared images; targets are the backbone's own predictions.

    Each image is masked by its own target's map for the cross-entropy; the area and TV terms
    see the maps of ``explainer.loss_fn.regularize``'s scope (B x B for the paper's ``"batch"``).
    In a training step (attention in train mode) the targets are counted per class: an
    explainer only knows the classes it saw (``explainer.target_counts``). ``attention`` is the
    module whose forward makes the maps: ``explainer.attention``, or its DDP wrapper in fit.
    """
    attention = explainer.attention if attention is None else attention
    with torch.no_grad():
        logits, features = explainer.backbone_forward(images)
    targets = logits.argmax(dim=1)
    if explainer.attention.training:
        counts = torch.bincount(targets.detach().cpu(), minlength=explainer.attention.num_classes)
        explainer.target_counts = counts if explainer.target_counts is None else explainer.target_counts + counts
    if explainer.loss_fn.regularize == "batch":
        batch = targets.shape[0]
        maps = attention(features, targets.expand(batch, batch))  # maps[i, j]: target j on image i
        own = maps.diagonal(dim1=0, dim2=1).permute(2, 0, 1)  # (B, h, w): maps[b, b]
    else:
        maps = own = attention(features, targets)
    return explainer.loss_fn(explainer.masked_logits(images, own), targets, maps)


# --------------------------------------------------------------------------- exact resumption


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


def rng_state(loader: Any = None) -> dict[str, Any]:
    """The global RNG states and those of ``loader``'s generators."""
    state = {"torch": torch.get_rng_state(), "loader": [g.get_state() for g in _loader_generators(loader)]}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any], loader: Any = None) -> None:
    """Restore what :func:`rng_state` saved."""
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    generators = _loader_generators(loader)
    if len(generators) != len(state["loader"]):
        raise CheckpointError("the data loader differs from the checkpointed run (its random generators do not match)")
    for generator, saved in zip(generators, state["loader"], strict=True):
        generator.set_state(saved)


class Optimisation:
    """Optimiser, one-cycle scheduler and grad scaler of a run, saved and restored together."""

    def __init__(self, optimizer: torch.optim.Optimizer, total_steps: int, max_lr: float, precision: str | None = None):
        self.optimizer = optimizer
        self.scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=max_lr, total_steps=total_steps)
        # float16 gradients underflow without loss scaling; bfloat16 has float32's range and needs none.
        self.scaler = torch.amp.GradScaler("cuda", enabled=precision == "fp16")

    def step(self, loss: torch.Tensor) -> None:
        """Backward pass and one optimiser + scheduler step."""
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()

    @property
    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def state_dict(self, epoch: int, loader: Any = None) -> dict[str, Any]:
        """Everything needed to continue after ``epoch`` finished epochs."""
        return {
            "epoch": epoch,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": rng_state(loader),
        }

    def load_state_dict(self, state: dict[str, Any], loader: Any = None) -> int:
        """Restore a :meth:`state_dict`; returns the number of finished epochs."""
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        if "rng" in state:
            set_rng_state(state["rng"], loader)
        return int(state["epoch"])


# --------------------------------------------------------------------------- the loop

# One training step: a loader batch -> (loss to minimise, terms to log, batch size).
StepFn = Callable[[Any], tuple[torch.Tensor, dict[str, float], int]]


def run_epochs(
    *,
    epochs: int,
    start_epoch: int,
    steps_per_epoch: int,
    loader: Iterable | Callable[[int], Iterable],
    train_step: StepFn,
    optimisation: Optimisation,
    precision: str | None = None,
    device: torch.device | None = None,
    before_epoch: Callable[[int], None] | None = None,
    after_epoch: Callable[[int, dict[str, float]], None] | None = None,
    progress: bool = True,
) -> None:
    """The epoch loop: ``steps_per_epoch`` steps of ``train_step`` per epoch, with a tqdm bar.

    ``loader`` is an iterable, or a function of the epoch index that returns one (fresh data per
    epoch). After each epoch, ``after_epoch(epoch_index, record)`` gets the mean of every logged
    term over the epoch's images plus ``epoch`` and ``lr``; that is where callers validate,
    write their checkpoint and keep their history.
    """
    for epoch in range(start_epoch, epochs):
        if before_epoch is not None:
            before_epoch(epoch)
        batches = loader(epoch) if callable(loader) else loader
        sums: dict[str, float] = {}
        seen = 0
        bar = tqdm(total=steps_per_epoch, desc=f"epoch {epoch + 1}/{epochs}", disable=not progress, leave=False)
        for step, batch in enumerate(batches):
            if step >= steps_per_epoch:
                break
            with autocast(device, precision):
                loss, terms, batch_size = train_step(batch)
            optimisation.step(loss)
            for key, value in terms.items():
                sums[key] = sums.get(key, 0.0) + value * batch_size
            seen += batch_size
            bar.update(1)
            bar.set_postfix({k: f"{v:.4f}" for k, v in terms.items()})
        bar.close()
        if seen == 0:
            raise InputError("the training loader yielded no batches")
        record = {"epoch": epoch + 1, **{k: v / seen for k, v in sums.items()}, "lr": optimisation.lr}
        if after_epoch is not None:
            after_epoch(epoch, record)


# --------------------------------------------------------------------------- T-TAME


@torch.no_grad()
def evaluate_loss(explainer: Trainable, loader: Iterable, *, precision: str | None = None) -> dict[str, float]:
    """Mean loss terms over a loader, without gradients (attention in eval mode), in ``precision``."""
    with explainer.backbone.evaluating():
        explainer.attention.eval()
        sums = dict.fromkeys(TERMS, 0.0)
        count = 0
        for batch in loader:
            images = explainer.prepare(batch_images(batch))
            with autocast(explainer.device, precision):
                total, terms = batch_loss(explainer, images)
            for key, value in {"loss": total, **terms}.items():
                sums[key] += float(value) * images.shape[0]
            count += images.shape[0]
        return {k: v / max(count, 1) for k, v in sums.items()}


def _steps_per_epoch(train_loader: Iterable, steps_per_epoch: int | None) -> int:
    try:
        available = len(train_loader)  # type: ignore[arg-type]
    except TypeError:
        available = None
    if steps_per_epoch is None:
        if available is None:
            raise InputError("train_loader has no len(); pass steps_per_epoch=")
        steps_per_epoch = available
    if isinstance(steps_per_epoch, bool) or not isinstance(steps_per_epoch, int):
        raise InputError(f"steps_per_epoch must be a whole number of batches; got {steps_per_epoch!r}")
    if available == 0:
        raise InputError("train_loader is empty")
    if steps_per_epoch < 1:
        raise InputError(f"steps_per_epoch must be >= 1; got {steps_per_epoch}")
    if available is not None and steps_per_epoch > available:
        raise InputError(
            f"steps_per_epoch={steps_per_epoch} but train_loader yields only {available} batches per epoch: the "
            "one-cycle schedule would never reach its peak. Pass steps_per_epoch <= len(train_loader) or None."
        )
    return steps_per_epoch


def _checkpoint_path(checkpoint: str | Path | None, resume: bool) -> Path | None:
    path = Path(checkpoint) if checkpoint is not None else None
    if resume and path is None:
        raise InputError("resume=True needs checkpoint=PATH (the file the interrupted run wrote)")
    if path is not None and path.exists() and not resume:
        raise CheckpointError(
            f"{path} already exists; pass resume=True to continue that run, or another path to start a new one "
            "(nothing is overwritten silently)"
        )
    return path


def _resume(explainer: Trainable, path: Path, run: dict[str, Any], optimisation: Optimisation, loader: Any) -> int:
    """Load an interrupted run's checkpoint into the explainer and the optimisation; returns its epoch."""
    data = read_checkpoint(path)
    check_compatible(data["meta"], explainer.metadata(), path)
    training = data.get("training")
    if not training:
        raise CheckpointError(f"{path} holds a finished explainer without training state; it cannot be resumed")
    if training["run"] != run:
        raise CheckpointError(
            f"{path} belongs to a run with settings {training['run']}; resume with the same settings (you passed {run})"
        )
    explainer.load_state(data, path)
    return optimisation.load_state_dict(training, loader)


class _FitEpochs:
    """What :func:`fit` does at each step and around each epoch of the shared loop."""

    def __init__(
        self,
        explainer: Trainable,
        train_loader: Iterable,
        val_loader: Iterable | None,
        optimisation: Optimisation,
        run: dict[str, Any],
        path: Path | None,
        precision: str | None,
        progress: bool,
        on_epoch_end: Callable[[Any, dict[str, float]], None] | None,
        forward: nn.Module | None = None,
    ):
        self.explainer, self.train_loader, self.val_loader = explainer, train_loader, val_loader
        self.forward = forward  # the attention's DDP wrapper when distributed
        self.optimisation, self.run, self.path = optimisation, run, path
        self.precision, self.progress, self.on_epoch_end = precision, progress, on_epoch_end
        self.started = 0.0
        self.step = 0
        self.last_epoch = self._snapshot()

    def _snapshot(self) -> dict[str, Any]:
        explainer = self.explainer
        counts = explainer.target_counts
        return {
            "attention": {k: v.detach().clone() for k, v in explainer.attention.state_dict().items()},
            "history": list(explainer.history),
            "target_counts": None if counts is None else counts.clone(),
            "rng": rng_state(self.train_loader),
        }

    def restore_last_epoch(self) -> None:
        """Put the explainer back to the end of the last finished epoch (or to where fit started)."""
        self.explainer.attention.load_state_dict(self.last_epoch["attention"])
        self.explainer.history = list(self.last_epoch["history"])
        self.explainer.target_counts = self.last_epoch["target_counts"]
        self.explainer.attention.eval()
        set_rng_state(self.last_epoch["rng"], self.train_loader)  # the data order replays from there too

    def before_epoch(self, epoch: int) -> None:
        self.explainer.backbone.model.eval()  # the backbone's BatchNorm/Dropout stay in inference mode
        self.explainer.attention.train()
        self.started = time.perf_counter()
        self.epoch, self.step = epoch, 0
        counts = self.explainer.target_counts
        self.counts_at_start = None if counts is None else counts.clone()

    def train_step(self, batch: Any) -> tuple[torch.Tensor, dict[str, float], int]:
        images = self.explainer.prepare(batch_images(batch))
        total, terms = batch_loss(self.explainer, images, self.forward)
        self.step += 1
        if not torch.isfinite(total.detach()):
            raise TrainingError(
                f"the loss became {float(total)} at epoch {self.epoch + 1}, step {self.step} (terms: "
                f"{ {k: float(v) for k, v in terms.items()} }); training stopped before the weights were updated. "
                "The explainer is back at the end of the last finished epoch (the checkpoint holds the same). "
                "Lower lr, check the images for NaN/inf, or train in float32 (amp=False)."
            )
        values = {"loss": float(total.detach()), **{k: float(v) for k, v in terms.items()}}
        return total, values, images.shape[0]

    def after_epoch(self, epoch: int, record: dict[str, float]) -> None:
        """Validate, log, write the checkpoint (with everything resume needs), call ``on_epoch_end``."""
        explainer = self.explainer
        if self.val_loader is not None:
            val = evaluate_loss(explainer, self.val_loader, precision=self.precision)
            record.update({f"val_{k}": v for k, v in val.items()})
        if distributed.is_distributed():
            # Each process saw its share of every batch: average the logged means, sum the class counts.
            record.update(distributed.average_across(record))
            start = self.counts_at_start if self.counts_at_start is not None else 0
            explainer.target_counts = start + distributed.sum_across(explainer.target_counts - start)
        record["seconds"] = time.perf_counter() - self.started
        explainer.history.append(record)
        if self.progress:
            terms = ", ".join(f"{k}={v:.4f}" for k, v in record.items() if k not in ("epoch", "seconds"))
            tqdm.write(f"epoch {epoch + 1}/{self.run['epochs']}: {terms} ({record['seconds']:.1f}s)")
        if self.path is not None and distributed.is_main():  # one writer; the others wait at the barrier
            training = {**self.optimisation.state_dict(epoch + 1, self.train_loader), "run": self.run}
            atomic_save(explainer.checkpoint_state(training), self.path)
        distributed.barrier()
        self.last_epoch = self._snapshot()
        if self.on_epoch_end is not None:
            self.on_epoch_end(explainer, record)
            explainer.attention.train()


def _ddp(attention: nn.Module) -> nn.Module:
    """The attention mechanism wrapped for DistributedDataParallel (one device per process)."""
    device = next(attention.parameters()).device
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(attention, device_ids=ids)


def _loader_for_epoch(loader: Iterable) -> Iterable | Callable[[int], Iterable]:
    """A loader whose sampler needs its epoch set (``DistributedSampler``) is re-seeded every epoch."""
    sampler = getattr(loader, "sampler", None)
    if not hasattr(sampler, "set_epoch"):
        return loader

    def for_epoch(epoch: int) -> Iterable:
        sampler.set_epoch(epoch)
        return loader

    return for_epoch


def fit(
    explainer: Trainable,
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
    amp: bool | str | None = None,
    progress: bool = True,
    on_epoch_end: Callable[[Any, dict[str, float]], None] | None = None,
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
        amp: mixed precision: None (default) = float16 on CUDA, off on CPU; "bf16" = bfloat16
            (CUDA or CPU); True/"fp16" = float16 with a gradient scaler (CUDA); False = float32.
        progress: show a tqdm bar with the running loss terms.
        on_epoch_end: called with (explainer, epoch record) after each epoch's checkpoint,
            e.g. to snapshot maps; it must not change the explainer's weights.
    """
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise InputError(f"epochs must be a whole number >= 1 (e.g. epochs=8); got {epochs!r}")
    steps_per_epoch = _steps_per_epoch(train_loader, steps_per_epoch)
    device = explainer.device
    precision = resolve_precision(amp, device)
    path = _checkpoint_path(checkpoint, resume)
    optimizer = torch.optim.SGD(explainer.attention.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    optimisation = Optimisation(optimizer, epochs * steps_per_epoch, lr, precision)
    run = {"epochs": epochs, "steps_per_epoch": steps_per_epoch, "lr": lr, "momentum": momentum}
    run["weight_decay"] = weight_decay
    if precision is not None:  # a run resumes in the precision it started in (float32 runs keep their old record)
        run["precision"] = precision
    start_epoch = 0
    if resume and path is not None and path.exists():
        start_epoch = _resume(explainer, path, run, optimisation, train_loader)
        if progress:
            tqdm.write(f"resuming {path} after epoch {start_epoch}/{epochs}")
    elif not resume:
        explainer.history = []
    epoch_steps = None
    try:
        # Under torchrun: BatchNorm over the global batch and gradients averaged by DDP (see distributed.py).
        with explainer.backbone.evaluating(), distributed.synchronise_batchnorm(explainer.attention):
            forward = _ddp(explainer.attention) if distributed.is_distributed() else None
            epoch_steps = _FitEpochs(
                explainer, train_loader, val_loader, optimisation, run, path, precision, progress, on_epoch_end, forward
            )
            run_epochs(
                epochs=epochs,
                start_epoch=start_epoch,
                steps_per_epoch=steps_per_epoch,
                loader=_loader_for_epoch(train_loader),
                train_step=epoch_steps.train_step,
                optimisation=optimisation,
                precision=precision,
                device=device,
                before_epoch=epoch_steps.before_epoch,
                after_epoch=epoch_steps.after_epoch,
                progress=progress,
            )
    except BaseException:
        if epoch_steps is None:
            raise
        # Ctrl-C, a crash or a non-finite loss mid-epoch: no half-trained weights survive. The explainer
        # goes back to the end of the last finished epoch (what the checkpoint holds), so that
        # fit(..., resume=True) continues exactly where the file says.
        epoch_steps.restore_last_epoch()
        raise
    explainer.attention.eval()
    return explainer.history
