"""Noisy linear imputation (ROAD, Rong et al. 2022): fill removed pixels from their neighbours.

Each removed pixel becomes the weighted mean of its 8 neighbours (1/6 for the 4 direct ones,
1/12 for the diagonals, out-of-image neighbours dropped), where neighbours may themselves be
removed. That couples all removed pixels into one sparse linear system per image (a discrete
harmonic interpolation); small Gaussian noise is then added to the filled pixels so that the
classifier cannot read the imputation pattern. This is the same system as pytorch-grad-cam's
``NoisyLinearImputer`` (tests check equality to 1e-4), solved differently:

- ``solver="direct"``: a sparse LU per image (scipy). Exact; CPU only. The matrix is built
  with vectorised index arithmetic instead of element-wise ``lil_matrix`` writes.
- ``solver="multigrid"``: conjugate gradients preconditioned by a multigrid V-cycle, on the
  whole batch (all images, levels and channels) at once in torch. Runs on any device (it is
  the CUDA path); accurate to the relative residual ``tol``.

Where each wins on a CPU (``benchmarks/road_solvers.py``, 2-core AMD EPYC, 224-px scenes): the
direct solver's cost grows with the number of removed pixels, multigrid's hardly does. With
90 % removed, multigrid is 2-5x faster at every batch size (0.03 vs 0.15 s per image at 16
images); at 50 % about 2x faster for 4-16 images; at 10 % it is 2.6-7x slower. For one whole
``road()`` call (7 levels x 2 orders) of 16 images direct is faster (0.067 vs 0.086 s per
image), of a single image multigrid is (0.030 vs 0.064 s). So ``"auto"`` picks direct on the
CPU and multigrid elsewhere; pass ``solver="multigrid"`` for heavy removal on few images. No
GPU was available to measure the CUDA path.

pytorch-grad-cam solves one image at a time on the CPU, so it is both the reference for the
numbers and the baseline for speed (``make bench`` reports the ratio).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import scipy.sparse
import scipy.sparse.linalg
import torch
import torch.nn.functional as F

from ..errors import InputError

# (dy, dx) -> weight; the weights sum to 1. These are the ROAD paper's interpolation weights.
NEIGHBOUR_WEIGHTS: dict[tuple[int, int], float] = {
    (-1, -1): 1 / 12,
    (-1, 0): 1 / 6,
    (-1, 1): 1 / 12,
    (0, -1): 1 / 6,
    (0, 1): 1 / 6,
    (1, -1): 1 / 12,
    (1, 0): 1 / 6,
    (1, 1): 1 / 12,
}

Solver = Literal["auto", "direct", "multigrid"]


def _check(images: torch.Tensor, removed: torch.Tensor) -> None:
    if images.ndim != 4:
        raise InputError(f"images must be (B, C, H, W); got {tuple(images.shape)}")
    if removed.shape != (images.shape[0], *images.shape[-2:]):
        raise InputError(
            f"removed must be a (B, H, W) mask matching images {tuple(images.shape)}; got {tuple(removed.shape)}"
        )
    if removed.device != images.device:
        raise InputError(f"images are on {images.device} but the mask on {removed.device}; move one with .to(...)")
    full = removed.flatten(1).all(dim=1)
    if full.any():
        raise InputError(
            f"every pixel of images {full.nonzero().flatten().tolist()} is removed; "
            "imputation needs at least one kept pixel (remove less than 100 %)"
        )


def _solve_direct(image: np.ndarray, removed: np.ndarray) -> np.ndarray:
    """Solve one image's system exactly; ``image`` is (C, H, W) float64, ``removed`` (H, W) bool."""
    channels, height, width = image.shape
    unknown = np.flatnonzero(removed.ravel())
    count = unknown.size
    if count == 0:
        return image
    index_of = np.full(height * width, -1, dtype=np.int64)
    index_of[unknown] = np.arange(count)
    ys, xs = np.divmod(unknown, width)
    flat = image.reshape(channels, -1)
    removed_flat = removed.ravel()
    diagonal = np.zeros(count)
    rhs = np.zeros((count, channels))
    rows, cols, vals = [], [], []
    for (dy, dx), weight in NEIGHBOUR_WEIGHTS.items():
        ny, nx = ys + dy, xs + dx
        inside = (ny >= 0) & (ny < height) & (nx >= 0) & (nx < width)
        equation = np.flatnonzero(inside)
        neighbour = ny[inside] * width + nx[inside]
        diagonal[equation] += weight
        free = removed_flat[neighbour]
        # Known neighbours go to the right-hand side, removed ones couple into the matrix.
        rhs[equation[~free]] += weight * flat[:, neighbour[~free]].T
        rows.append(equation[free])
        cols.append(index_of[neighbour[free]])
        vals.append(np.full(int(free.sum()), -weight))
    rows.append(np.arange(count))
    cols.append(np.arange(count))
    vals.append(diagonal)
    # diag(sum of weights) - W is symmetric and diagonally dominant: no pivoting needed.
    matrix = scipy.sparse.csc_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(count, count)
    )
    lu = scipy.sparse.linalg.splu(
        matrix, permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0, options={"SymmetricMode": True}
    )
    solution = lu.solve(rhs)
    out = flat.copy()
    out[:, unknown] = solution.T
    return out.reshape(image.shape)


def _slices(dy: int, dx: int, height: int, width: int) -> tuple[tuple[slice, slice], tuple[slice, slice]]:
    """Index pairs (target, source) such that target[y, x] reads source[y + dy, x + dx] inside the image."""
    rows = (slice(max(0, -dy), height - max(0, dy)), slice(max(0, dy), height - max(0, -dy)))
    cols = (slice(max(0, -dx), width - max(0, dx)), slice(max(0, dx), width - max(0, -dx)))
    return (rows[0], cols[0]), (rows[1], cols[1])


def _neighbour_sum(v: torch.Tensor) -> torch.Tensor:
    """sum_o w_o * v[. + o] with zeros outside the image: the imputation stencil.

    Shifted in-place adds on slices cost about a quarter of ``conv2d`` with a single-channel
    3x3 kernel on the CPU, which is this solver's most frequent operation.
    """
    height, width = v.shape[-2:]
    out = torch.zeros_like(v)
    for (dy, dx), weight in NEIGHBOUR_WEIGHTS.items():
        (ty, tx), (sy, sx) = _slices(dy, dx, height, width)
        out[..., ty, tx].add_(v[..., sy, sx], alpha=weight)
    return out


def _shift(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """out[..., y, x] = x[..., y + dy, x + dx], zero outside the image."""
    height, width = x.shape[-2:]
    padded = F.pad(x, (1, 1, 1, 1))
    return padded[..., 1 + dy : 1 + dy + height, 1 + dx : 1 + dx + width]


# Multigrid settings: damped Jacobi smoothing, and a coarse correction scaled up, which
# compensates for the piecewise-constant interpolation of 2x2 aggregation (a scalar factor
# keeps the preconditioner symmetric, so conjugate gradients stay valid).
_OMEGA, _SWEEPS, _COARSE_SWEEPS, _OVER_CORRECTION = 0.7, 2, 60, 1.6
# Relative residuals below this need a float64 outer iteration.
_SINGLE_PRECISION_TOL = 1e-4


class _Level:
    """One grid of the multigrid hierarchy: the operator A v = diag * v - sum_o coef_o * v[. + o]
    on the free (removed) pixels, stored as per-pixel coefficient fields (N, 1, h, w)."""

    def __init__(self, free: torch.Tensor, diag: torch.Tensor, coef: dict[tuple[int, int], torch.Tensor]):
        self.free, self.diag, self.coef = free, diag, coef
        inv_diag = torch.where(diag > 0, 1 / diag.clamp_min(1e-30), torch.zeros_like(diag))
        self.step = _OMEGA * inv_diag  # damped Jacobi: x += step * residual
        self.keep = 1 - _OMEGA * free
        self.constant = False  # the finest level applies the constant stencil (cheaper than coefficient fields)

    def add_neighbours(self, out: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """out += sum_o coupling_o * v[. + o] (in place; exact on free pixels when v is zero elsewhere)."""
        height, width = v.shape[-2:]
        for (dy, dx), coef in self.coef.items():
            (ty, tx), (sy, sx) = _slices(dy, dx, height, width)
            if self.constant:
                out[..., ty, tx].add_(v[..., sy, sx], alpha=NEIGHBOUR_WEIGHTS[(dy, dx)])
            else:
                out[..., ty, tx].addcmul_(coef[..., ty, tx], v[..., sy, sx])
        return out

    def apply(self, v: torch.Tensor) -> torch.Tensor:
        """A v, zero outside the free pixels."""
        return (self.diag * v - self.add_neighbours(torch.zeros_like(v), v)) * self.free

    def smooth(self, x: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
        """One damped Jacobi sweep x + w D^-1 (rhs - A x), fused into few passes over memory:
        since D^-1 diag = 1 on free pixels, it equals x (1 - w free) + w D^-1 (rhs + neighbours(x))."""
        return torch.addcmul(x * self.keep, self.step, self.add_neighbours(rhs.clone(), x))

    def coarsen(self) -> _Level:
        """Galerkin coarse operator P^T A P for 2x2 aggregation (P copies a coarse value to its children)."""
        n, _, h, w = self.free.shape
        diag = 4 * F.avg_pool2d(self.diag * self.free, 2)
        coef = {offset: torch.zeros(n, 1, h // 2, w // 2, dtype=self.diag.dtype, device=self.diag.device)
                for offset in NEIGHBOUR_WEIGHTS}  # fmt: skip
        rows = torch.arange(h, device=self.diag.device).view(h, 1) % 2
        cols = torch.arange(w, device=self.diag.device).view(1, w) % 2
        for (dy, dx), fine in self.coef.items():
            for py in (0, 1):
                for px in (0, 1):
                    # Fine couplings from children at parity (py, px) to offset (dy, dx) land in this coarse offset.
                    parity = ((rows == py) & (cols == px)).to(fine.dtype)
                    summed = 4 * F.avg_pool2d(fine * parity, 2)
                    target = ((py + dy) // 2, (px + dx) // 2)
                    if target == (0, 0):
                        diag = diag - summed
                    else:
                        coef[target] = coef[target] + summed
        free = F.max_pool2d(self.free, 2)
        return _Level(free, diag * free, {o: c * free for o, c in coef.items()})


def _hierarchy(free: torch.Tensor, min_size: int = 7) -> list[_Level]:
    degree = _neighbour_sum(torch.ones_like(free[:1]))
    coef = {(dy, dx): w * free * _shift(free, dy, dx) for (dy, dx), w in NEIGHBOUR_WEIGHTS.items()}
    finest = _Level(free, degree * free, coef)
    finest.constant = True
    levels = [finest]
    while all(s % 2 == 0 and s // 2 >= min_size for s in levels[-1].free.shape[-2:]):
        levels.append(levels[-1].coarsen())
    return levels


def _v_cycle(levels: list[_Level], residual: torch.Tensor, depth: int = 0) -> torch.Tensor:
    level = levels[depth]
    x = level.step * residual  # the first sweep from zero
    if depth == len(levels) - 1:
        for _ in range(_COARSE_SWEEPS - 1):
            x = level.smooth(x, residual)
        return x
    for _ in range(_SWEEPS - 1):
        x = level.smooth(x, residual)
    coarse = 4 * F.avg_pool2d(residual - level.apply(x), 2)
    correction = _v_cycle(levels, coarse, depth + 1)
    x = x + _OVER_CORRECTION * F.interpolate(correction, scale_factor=2, mode="nearest") * level.free
    for _ in range(_SWEEPS):
        x = level.smooth(x, residual)
    return x


def _solve_multigrid(images: torch.Tensor, removed: torch.Tensor, tol: float, max_iter: int) -> torch.Tensor:
    """Conjugate gradients preconditioned by an algebraic multigrid V-cycle, on the whole batch at once.

    Written here because no library offers a batched sparse solver that runs on both CPU and
    CUDA. Iterations stay near 10-15 whatever the image size, where plain CG needs hundreds.
    The V-cycle (most of the work) runs in float32. The outer iteration runs in float64 when
    ``tol`` asks for more than float32 can give: the system's condition number (~1e4 at 224 px)
    times float32's rounding caps the accuracy near 1e-4 of the pixel range.
    """
    outer = torch.float64 if tol < _SINGLE_PRECISION_TOL else torch.float32
    free = removed.unsqueeze(1).to(outer)
    levels = _hierarchy(removed.unsqueeze(1).float())
    degree = _neighbour_sum(torch.ones_like(free[:1])) * free

    def operator(v: torch.Tensor) -> torch.Tensor:
        return (degree * v - _neighbour_sum(v)) * free

    def precondition(r: torch.Tensor) -> torch.Tensor:
        return _v_cycle(levels, r.float()).to(outer)

    known = images.to(outer) * (1 - free)
    rhs = _neighbour_sum(known) * free
    solution = torch.zeros_like(rhs)
    residual = rhs.clone()
    z = precondition(residual)
    direction = z.clone()
    rz = (residual * z).sum(dim=(2, 3), keepdim=True)
    target = tol * rhs.flatten(2).norm(dim=2).clamp_min(1e-30)[..., None, None]
    for _ in range(max_iter):
        mapped = operator(direction)
        alpha = rz / (direction * mapped).sum(dim=(2, 3), keepdim=True).clamp_min(1e-30)
        solution += alpha * direction
        residual -= alpha * mapped
        # One host sync per step is cheap next to a V-cycle.
        if bool((residual.flatten(2).norm(dim=2)[..., None, None] <= target).all()):
            break
        z = precondition(residual)
        rz_next = (residual * z).sum(dim=(2, 3), keepdim=True)
        direction = z + (rz_next / rz.clamp_min(1e-30)) * direction
        rz = rz_next
    return (known + solution * free).to(images.dtype)


def linear_impute(
    images: torch.Tensor,
    removed: torch.Tensor,
    *,
    noise: float = 0.01,
    solver: Solver = "auto",
    generator: torch.Generator | None = None,
    tol: float | None = None,
    max_iter: int = 200,
) -> torch.Tensor:
    """Fill the ``removed`` pixels of ``images`` by noisy linear imputation.

    Args:
        images: (B, C, H, W) float, in whatever domain the classifier reads (ROAD imputes the
            normalised input, like pytorch-grad-cam).
        removed: (B, H, W) bool, True where a pixel is removed.
        noise: standard deviation of the Gaussian noise added to imputed pixels (0 = none).
        solver: ``"direct"`` (exact, CPU), ``"multigrid"`` (batched, any device) or ``"auto"``
            (direct on CPU, multigrid elsewhere).
        generator: random generator for the noise (reproducible results).
        tol, max_iter: relative residual and step limit of the multigrid solver. By default
            1e-6 without noise (within ~1e-5 of the exact solution: for comparisons) and 1e-4
            with noise (errors ~4e-4 at 224 px, far below the noise of 0.01 that ROAD adds,
            in a third of the time).

    Returns:
        The imputed images, same shape, dtype and device as ``images``.
    """
    _check(images, removed)
    removed = removed.bool()
    if solver == "auto":
        solver = "direct" if images.device.type == "cpu" else "multigrid"
    if solver == "direct":
        if images.device.type != "cpu":
            raise InputError(
                f"solver='direct' runs on the CPU only; use solver='multigrid' for images on {images.device}"
            )
        source = images.detach().double().numpy()
        mask = removed.numpy()
        filled = torch.from_numpy(np.stack([_solve_direct(source[i], mask[i]) for i in range(len(source))]))
        filled = filled.to(images.dtype)
    elif solver == "multigrid":
        # Smoothing spreads values geometrically thin; float32 subnormals would make the CPU
        # crawl (10x), so flush them to zero for the solve (torch's default, off, is restored).
        if tol is None:
            tol = 1e-6 if noise == 0 else 1e-4
        flushing = torch.set_flush_denormal(True)
        try:
            filled = _solve_multigrid(images.detach(), removed, tol, max_iter)
        finally:
            if flushing:
                torch.set_flush_denormal(False)
    else:
        raise InputError(f"solver must be 'auto', 'direct' or 'multigrid'; got {solver!r}")
    if noise > 0:
        jitter = torch.randn(filled.shape, generator=generator, dtype=filled.dtype, device="cpu").to(filled.device)
        filled = filled + noise * jitter * removed.unsqueeze(1)
    return filled
