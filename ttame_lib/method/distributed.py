"""Multi-process training under ``torchrun`` (PyTorch DistributedDataParallel).

``torchrun --nproc_per_node N script.py`` starts N processes and sets ``RANK``/``WORLD_SIZE``;
:func:`init_distributed` joins them (NCCL on CUDA, gloo on CPU). :func:`ttame_lib.method.training.fit`
then trains the attention mechanism with DDP (gradients averaged across processes), BatchNorm
statistics over the global batch, epoch metrics and class counts summed or averaged across
processes, and checkpoints written by rank 0 only. A loader with a ``DistributedSampler`` gives
each process its share of every global batch; with one process the same sampler gives the same
global batches, so one process and N processes train the same weights (for ``regularize="own"``;
the paper's ``"batch"`` scope regularises each process's own B x B maps, as it would per GPU).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.nn.functional import all_reduce as differentiable_all_reduce


def init_distributed() -> bool:
    """Join the process group ``torchrun`` describes (no-op without it); True when running distributed."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and dist.is_available() and not dist.is_initialized():
        use_cuda = torch.cuda.is_available()
        dist.init_process_group("nccl" if use_cuda else "gloo")
        if use_cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    return is_distributed()


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    """Rank 0 (or a single process): the one that writes files and prints."""
    return rank() == 0


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def sum_across(tensor: torch.Tensor) -> torch.Tensor:
    """The sum of ``tensor`` over every process (a copy; the input is left as it is)."""
    total = tensor.clone()
    if is_distributed():
        dist.all_reduce(total)
    return total


def average_across(values: dict[str, float]) -> dict[str, float]:
    """The mean of each value over every process (every process had the same number of images)."""
    if not is_distributed():
        return dict(values)
    keys = sorted(values)
    stacked = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64)
    dist.all_reduce(stacked)
    return {k: float(v) / world_size() for k, v in zip(keys, stacked.tolist(), strict=True)}


class GlobalBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm whose training statistics are those of the global batch, on any device.

    Written here because ``torch.nn.SyncBatchNorm`` refuses CPU tensors, and CPU processes (gloo)
    are how the multi-process path is tested; on CUDA :func:`synchronise_batchnorm` uses
    SyncBatchNorm. Sums are all-reduced with the differentiable all_reduce, so gradients also flow
    through the global statistics, as with one process and the whole batch.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and is_distributed()):
            return super().forward(x)
        count = torch.tensor([x.shape[0] * x.shape[2] * x.shape[3]], dtype=x.dtype, device=x.device)
        sums = torch.cat([x.sum(dim=(0, 2, 3)), (x * x).sum(dim=(0, 2, 3)), count])
        sums = differentiable_all_reduce(sums)
        channels = x.shape[1]
        total = sums[-1]
        mean = sums[:channels] / total
        var = sums[channels : 2 * channels] / total - mean * mean  # biased: what normalises the batch
        with torch.no_grad():
            self.num_batches_tracked += 1
            momentum = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
            unbiased = var * total / (total - 1).clamp_min(1)
            self.running_mean.mul_(1 - momentum).add_(momentum * mean.detach())
            self.running_var.mul_(1 - momentum).add_(momentum * unbiased.detach())
        shape = (1, channels, 1, 1)
        normalised = (x - mean.view(shape)) / torch.sqrt(var.view(shape) + self.eps)
        return normalised * self.weight.view(shape) + self.bias.view(shape)


def _swap_batchnorm(module: nn.Module, make: type[nn.BatchNorm2d]) -> dict[str, nn.Module]:
    """Replace every BatchNorm2d child (recursively) by ``make``, sharing its parameters and buffers."""
    originals = {}
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d) and type(child) is not make:
            swapped = make(child.num_features, child.eps, child.momentum, child.affine, child.track_running_stats)
            swapped.weight, swapped.bias = child.weight, child.bias
            swapped.running_mean, swapped.running_var = child.running_mean, child.running_var
            swapped.num_batches_tracked = child.num_batches_tracked
            swapped.train(child.training)
            setattr(module, name, swapped)
            originals[name] = child
        else:
            for sub, original in _swap_batchnorm(child, make).items():
                originals[f"{name}.{sub}"] = original
    return originals


@contextmanager
def synchronise_batchnorm(module: nn.Module) -> Iterator[None]:
    """Inside the block, ``module``'s BatchNorm layers use global-batch statistics (when distributed)."""
    if not is_distributed():
        yield
        return
    kind = nn.SyncBatchNorm if next(module.parameters()).is_cuda else GlobalBatchNorm2d
    originals = _swap_batchnorm(module, kind)
    try:
        yield
    finally:
        for name, original in originals.items():
            parent = module.get_submodule(name.rpartition(".")[0]) if "." in name else module
            original.train(parent.get_submodule(name.rpartition(".")[2]).training)
            setattr(parent, name.rpartition(".")[2], original)
