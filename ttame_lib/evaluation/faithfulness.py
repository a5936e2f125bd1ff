"""Faithfulness metrics: does the classifier's confidence follow what the map says matters?

- AD / IC (docs/method.md): keep the top 100 / 50 / 15 % of pixels as a *soft* mask (the map's own
  values above its quantile), classify the masked image and compare the probability of the
  originally predicted class with the unmasked one.
- ROAD (Rong et al. 2022): remove the most (MoRF) or least (LeRF) relevant p % of pixels, fill
  them by noisy linear imputation, and count how often the top-1 prediction survives.

Maps are (B, H, W) in [0, 1] at the image size, for the class being checked (by default the
predicted one), e.g. ``explainer.explain(images)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from ..backbones.backbone import Backbone
from ..errors import InputError
from ..validation import resolve_classes
from .imputation import Solver, linear_impute
from .localisation import check_maps

AD_IC_LEVELS: tuple[float, ...] = (100.0, 50.0, 15.0)
ROAD_LEVELS: tuple[float, ...] = (10.0, 20.0, 30.0, 40.0, 50.0, 70.0, 90.0)


def _check_percents(percents: Sequence[float], *, allow_100: bool) -> tuple[float, ...]:
    if isinstance(percents, (str, bytes)) or not isinstance(percents, Sequence):
        raise InputError(f"percents must be a list of percentages such as [100, 50, 15]; got {percents!r}")
    values = tuple(float(p) for p in percents)
    if values and all(0 < p < 1 for p in values):
        raise InputError(
            f"percents are percentages (0-100), and all of {list(percents)} are below 1 %: did you mean fractions? "
            f"Pass {[round(100 * p, 6) for p in values]}"
        )
    upper_ok = (lambda p: p <= 100) if allow_100 else (lambda p: p < 100)
    bad = [p for p in values if not (p > 0 and upper_ok(p))]
    if bad or not values:
        bound = "(0, 100]" if allow_100 else "(0, 100)"
        raise InputError(f"percentages must lie in {bound}; got {list(percents)}")
    return values


def _check_inputs(
    backbone: Backbone, images: torch.Tensor, maps: torch.Tensor, *, unit_range: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Validated images and maps, both on the backbone's device (maps may come from another device)."""
    images = backbone.check_images(images).to(backbone.device)
    if isinstance(maps, torch.Tensor) and not maps.is_meta:
        maps = maps.to(backbone.device)
    check_maps(maps, images, "images")
    if unit_range:
        lo, hi = float(maps.min()), float(maps.max())
        if lo < -1e-6 or hi > 1 + 1e-6:
            raise InputError(
                f"maps must be in [0, 1] (they become soft masks); got values in [{lo:.3g}, {hi:.3g}]. "
                "Normalise them with ttame_lib.minmax_normalize(maps)."
            )
    return images, maps.to(images.dtype)


def keep_masks(maps: torch.Tensor, percent: float) -> torch.Tensor:
    """Soft masks keeping the top ``percent`` % of each map: values below the map's own
    (1 - percent/100) quantile become 0, the rest keep their value (docs/method.md).

    All pixels tied at the threshold are kept; a constant map therefore keeps every pixel at
    its (constant) value at every level: a map that ranks nothing removes nothing.
    """
    (percent,) = _check_percents([percent], allow_100=True)
    flat = maps.flatten(1)
    threshold = torch.quantile(flat.float(), 1 - percent / 100, dim=1, keepdim=True).to(flat.dtype)
    return (flat * (flat >= threshold)).view_as(maps)


# Masked copies of a batch go through the backbone this many at a time, to bound memory.
FORWARD_CHUNK = 64


def _logits(backbone: Backbone, inputs: torch.Tensor) -> torch.Tensor:
    return torch.cat([backbone.model(chunk) for chunk in inputs.split(FORWARD_CHUNK)])


def _given_or_computed(backbone: Backbone, images: torch.Tensor, logits: torch.Tensor | None) -> torch.Tensor:
    """The backbone's logits on ``images``: the ones given (checked for shape) or one forward."""
    if logits is None:
        return _logits(backbone, backbone.normalize(images))
    expected = (images.shape[0], backbone.num_classes)
    if not isinstance(logits, torch.Tensor) or tuple(logits.shape) != expected:
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise InputError(
            f"logits must be the backbone's output on these images, shape {expected}; got {shape}. "
            "Pass logits=None to let the metric run the backbone itself"
        )
    return logits.to(images.device)


def _probabilities(backbone: Backbone, inputs: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    return _logits(backbone, inputs).softmax(dim=1).gather(1, classes.view(-1, 1)).squeeze(1)


@dataclass
class ConfidenceResult:
    """Per-image probabilities behind AD / IC. ``masked[p]`` holds O at p % kept."""

    original: torch.Tensor
    masked: dict[float, torch.Tensor] = field(default_factory=dict)

    def average_drop(self, percent: float) -> float:
        """AD in %: 100 / N * sum(max(0, Y - O) / Y); lower is better."""
        y, o = self.original, self.masked[percent]
        return float(100 * ((y - o).clamp_min(0) / y.clamp_min(1e-12)).mean())

    def increase_in_confidence(self, percent: float) -> float:
        """IC in %: the share of images whose confidence rose (O > Y); higher is better."""
        return float(100 * (self.masked[percent] > self.original).float().mean())

    def summary(self) -> dict[str, float]:
        out = {}
        for p in self.masked:
            out[f"AD({p:g}%)"] = self.average_drop(p)
            out[f"IC({p:g}%)"] = self.increase_in_confidence(p)
        return out

    @staticmethod
    def concat(parts: Sequence[ConfidenceResult]) -> ConfidenceResult:
        """Join results computed batch by batch."""
        merged = ConfidenceResult(torch.cat([r.original for r in parts]))
        for p in parts[0].masked:
            merged.masked[p] = torch.cat([r.masked[p] for r in parts])
        return merged


@torch.no_grad()
def confidence_drop(
    backbone: Backbone,
    images: torch.Tensor,
    maps: torch.Tensor,
    percents: Sequence[float] = AD_IC_LEVELS,
    classes: torch.Tensor | Sequence[int] | int | None = None,
    *,
    logits: torch.Tensor | None = None,
) -> ConfidenceResult:
    """Probabilities of the class (default: the predicted one) on full and soft-masked images.

    The soft masks multiply the raw [0, 1] image for every backbone, ViTs included, and the
    result is then normalised (the paper's evaluation; only ViT *training* masks the normalised
    image). All levels of a batch go through the backbone in one forward. ``logits``: the
    backbone's logits on the unmasked ``images`` when the caller has them already (saves a forward).
    """
    with backbone.evaluating():
        levels = _check_percents(percents, allow_100=True)
        images, maps = _check_inputs(backbone, images, maps, unit_range=True)
        logits = _given_or_computed(backbone, images, logits)
        chosen = resolve_classes(classes, logits)
        if chosen.ndim != 1:
            raise InputError("confidence_drop takes one class per image")
        original = logits.softmax(dim=1).gather(1, chosen.view(-1, 1)).squeeze(1)
        masks = torch.cat([keep_masks(maps, p) for p in levels])
        inputs = backbone.normalize(images.repeat(len(levels), 1, 1, 1) * masks.unsqueeze(1))
        probs = _probabilities(backbone, inputs, chosen.repeat(len(levels))).view(len(levels), -1)
        return ConfidenceResult(original, {p: probs[i] for i, p in enumerate(levels)})


def removal_masks(
    maps: torch.Tensor, percent: float, order: str = "morf", generator: torch.Generator | None = None
) -> torch.Tensor:
    """Boolean (B, H, W) masks of the ``percent`` % most (``"morf"``) or least (``"lerf"``)
    relevant pixels of each map: exactly round(percent/100 * H*W) pixels per image.

    Ties (a constant map, or plateaus) are broken in a random order drawn from ``generator``,
    so a constant map is scored like a random one instead of by pixel position.
    """
    (percent,) = _check_percents([percent], allow_100=False)
    if order not in ("morf", "lerf"):
        raise InputError(f"order must be 'morf' or 'lerf'; got {order!r}")
    flat = maps.flatten(1)
    count = round(flat.shape[1] * percent / 100)
    # Sort by a random permutation first, then stably by value: equal values stay in random order.
    shuffle = torch.rand(flat.shape, generator=generator).argsort(dim=1).to(flat.device)
    shuffled = flat.gather(1, shuffle)
    order_in_shuffled = shuffled.argsort(dim=1, descending=(order == "morf"), stable=True)
    ranked = shuffle.gather(1, order_in_shuffled)
    removed = torch.zeros_like(flat, dtype=torch.bool)
    removed.scatter_(1, ranked[:, :count], True)
    return removed.view_as(maps)


@dataclass
class RoadResult:
    """Per-image booleans: ``morf[p]`` / ``lerf[p]`` is True where the top-1 class survived."""

    morf: dict[float, torch.Tensor] = field(default_factory=dict)
    lerf: dict[float, torch.Tensor] = field(default_factory=dict)

    def curve(self, order: str) -> dict[float, float]:
        """Share (%) of images whose prediction is unchanged, per removal level."""
        return {p: float(100 * v.float().mean()) for p, v in getattr(self, order).items()}

    def summary(self) -> dict[str, float]:
        out = {}
        for order in ("morf", "lerf"):
            curve = self.curve(order)
            for p, value in curve.items():
                out[f"ROAD-{order.upper()}({p:g}%)"] = value
            if curve:
                out[f"ROAD-{order.upper()}(mean)"] = sum(curve.values()) / len(curve)
        return out

    @staticmethod
    def concat(parts: Sequence[RoadResult]) -> RoadResult:
        merged = RoadResult()
        for order in ("morf", "lerf"):
            for p in getattr(parts[0], order):
                getattr(merged, order)[p] = torch.cat([getattr(r, order)[p] for r in parts])
        return merged


@torch.no_grad()
def road(
    backbone: Backbone,
    images: torch.Tensor,
    maps: torch.Tensor,
    percents: Sequence[float] = ROAD_LEVELS,
    orders: Sequence[str] = ("morf", "lerf"),
    *,
    noise: float = 0.01,
    seed: int = 0,
    solver: Solver = "auto",
    return_images: bool = False,
    logits: torch.Tensor | None = None,
) -> RoadResult | tuple[RoadResult, dict[tuple[str, float], torch.Tensor]]:
    """ROAD: does the top-1 prediction survive removing p % of pixels ranked by the map?

    MoRF (most relevant first): lower is better. LeRF (least relevant first): higher is better.
    Imputation (and its noise) works where the reference code works: on the raw [0, 1] image for
    CNNs, on the normalised model input for ViTs. All levels and orders of a batch are imputed
    and classified together. Deterministic by ``seed``. With ``return_images`` the imputed
    *model inputs* (normalised) come back too, keyed by (order, percent). ``logits``: the
    backbone's logits on the unmasked ``images`` when the caller has them already (saves a forward).
    """
    if isinstance(orders, str) or not set(orders) <= {"morf", "lerf"} or not orders:
        raise InputError(f"orders must be a list drawn from 'morf' and 'lerf', e.g. ['morf', 'lerf']; got {orders!r}")
    if not (isinstance(noise, (int, float)) and noise >= 0 and noise == noise):
        raise InputError(
            f"noise is the standard deviation of the imputation noise: a number >= 0 (ROAD: 0.01); got {noise!r}"
        )
    with backbone.evaluating():
        levels = _check_percents(percents, allow_100=False)
        images, maps = _check_inputs(backbone, images, maps, unit_range=False)
        generator = torch.Generator().manual_seed(seed)
        inputs = backbone.normalize(images)
        predicted = _given_or_computed(backbone, images, logits).argmax(dim=1)
        keys = [(order, p) for order in orders for p in levels]
        removed = torch.cat([removal_masks(maps, p, order, generator) for order, p in keys])
        batch = images.shape[0]
        raw_domain = backbone.family == "cnn"
        domain = images if raw_domain else inputs
        imputed = linear_impute(
            domain.repeat(len(keys), 1, 1, 1), removed, noise=noise, solver=solver, generator=generator
        )
        if raw_domain:
            imputed = backbone.normalize(imputed)
        survived = (_logits(backbone, imputed).argmax(dim=1) == predicted.repeat(len(keys))).view(len(keys), batch)
        result = RoadResult()
        for i, (order, p) in enumerate(keys):
            getattr(result, order)[p] = survived[i]
        if return_images:
            return result, {key: imputed[i * batch : (i + 1) * batch] for i, key in enumerate(keys)}
        return result
