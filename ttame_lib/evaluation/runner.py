"""One call to score an explainer on images with ground-truth masks: every metric, plus latency.

Any object with ``explain(images, classes=None) -> (B, H, W)`` works: :class:`ttame_lib.TTAME`
or a baseline from :mod:`ttame_lib.evaluation.baselines`. Metrics are computed for each image's predicted
class, batch by batch, and the explainer's latency is compared with one plain backbone forward
on the same batch, timed right next to it. Every metric that is a mean over images also gets a
95 % bootstrap confidence interval (keys ``KEY_lo`` and ``KEY_hi``).
"""

from __future__ import annotations

import inspect
import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy import stats
from tqdm.auto import tqdm

from ..backbones.backbone import Backbone
from ..errors import InputError
from .faithfulness import AD_IC_LEVELS, ROAD_LEVELS, ConfidenceResult, RoadResult, confidence_drop, road
from .localisation import energy_pointing_game, pointing_game, top_k_iou

# scipy >= 1.15 names the generator argument ``rng``; older releases only know ``random_state``.
_RNG_ARGUMENT = "rng" if "rng" in inspect.signature(stats.bootstrap).parameters else "random_state"


def bootstrap_interval(
    values: Sequence[float] | np.ndarray | torch.Tensor,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean of ``values`` (same units as them).

    Deterministic by ``seed``. A constant sample (one value, or all values equal) has no spread
    to resample: its interval is the value itself, returned without calling scipy (whose
    resampling of a constant sample can warn about a degenerate distribution).
    """
    data = values.detach().cpu().double().numpy() if isinstance(values, torch.Tensor) else np.asarray(values, float)
    data = data.reshape(-1)
    if data.size == 0:
        raise InputError("values is empty: a bootstrap interval needs at least one value")
    if not np.isfinite(data).all():
        raise InputError("values contain NaN or infinite entries; drop or fix them before bootstrapping")
    if not 0 < confidence < 1:
        raise InputError(f"confidence must lie in (0, 1), e.g. 0.95; got {confidence}")
    if n_resamples < 1:
        raise InputError(f"n_resamples must be at least 1 (2000 is typical); got {n_resamples}")
    if np.ptp(data) == 0:
        return float(data[0]), float(data[0])
    result = stats.bootstrap(
        (data,),
        np.mean,
        n_resamples=n_resamples,
        vectorized=True,
        axis=-1,
        confidence_level=confidence,
        method="percentile",
        batch=max(1, min(n_resamples, 2_000_000 // data.size)),  # bounds memory: batch x N resampled values
        **{_RNG_ARGUMENT: np.random.default_rng(seed)},
    )
    low, high = result.confidence_interval
    return float(low), float(high)


def paired_difference(
    values: Sequence[float] | np.ndarray | torch.Tensor,
    reference: Sequence[float] | np.ndarray | torch.Tensor,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Mean of ``values - reference`` over the same images, with its paired bootstrap interval.

    Two methods scored on the same images share each image's difficulty, so their difference is
    judged by resampling the per-image differences (paired), not by whether the two separate
    intervals overlap: overlapping intervals can hide a consistent difference, and an interval of
    the difference that excludes 0 is one.
    """
    a, b = (torch.as_tensor(v).detach().cpu().double().reshape(-1) for v in (values, reference))
    if a.shape != b.shape:
        raise InputError(
            f"values and reference must score the same images: got {a.numel()} and {b.numel()} values; "
            "pass per-image scores of both methods on one image set"
        )
    difference = a - b
    low, high = bootstrap_interval(difference, confidence=confidence, n_resamples=n_resamples, seed=seed)
    return float(difference.mean()), low, high


def timed(fn: Callable[[], Any], device: torch.device) -> tuple[float, Any]:
    """Seconds taken by ``fn()`` (synchronising CUDA) and its result."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    result = fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start, result


@dataclass
class ImageScores:
    """Every metric per image (for the predicted class), plus the explainer's timings.

    :meth:`summary` turns it into :func:`evaluate_explainer`'s flat dict; :meth:`subset` keeps
    some images only (e.g. to break results down by group) with the same timings.
    """

    confidence: ConfidenceResult
    removal: RoadResult
    # (N,) in [0, 1]; None when there were no ground-truth masks (e.g. ImageNet, the paper's protocol)
    pointing_game: torch.Tensor | None
    energy_pointing_game: torch.Tensor | None
    iou: torch.Tensor | None
    iou_percent: float
    ms_per_image: float
    latency_ratio: float

    def __len__(self) -> int:
        return len(self.confidence.original)

    @property
    def localisation(self) -> dict[str, torch.Tensor]:
        """The localisation metrics per image (empty without masks)."""
        if self.pointing_game is None:
            return {}
        return {
            "pointing_game": self.pointing_game,
            "energy_pointing_game": self.energy_pointing_game,
            f"top{self.iou_percent:g}%_iou": self.iou,
        }

    @property
    def road_images(self) -> int:
        """How many (leading) images ROAD was computed on."""
        return len(next(iter(self.removal.morf.values() or self.removal.lerf.values()), ()))

    def per_image(self) -> dict[str, torch.Tensor]:
        """Each mean-over-images metric as its per-image terms, in %: their mean is the metric."""
        y = self.confidence.original
        out: dict[str, torch.Tensor] = {}
        for p, o in self.confidence.masked.items():
            out[f"AD({p:g}%)"] = 100 * (y - o).clamp_min(0) / y.clamp_min(1e-12)  # as ConfidenceResult.average_drop
            out[f"IC({p:g}%)"] = 100 * (o > y).float()
        for order in ("morf", "lerf"):
            levels = getattr(self.removal, order)
            if levels:
                survived = torch.stack([v.float() for v in levels.values()])
                out[f"ROAD-{order.upper()}(mean)"] = 100 * survived.mean(dim=0)
        out.update({key: 100 * values for key, values in self.localisation.items()})
        return out

    def subset(self, index: torch.Tensor | Sequence[int]) -> ImageScores:
        """The scores of the images ``index`` (indices or a boolean mask); timings stay the whole run's."""
        index = torch.as_tensor(index)
        if index.dtype == torch.bool:
            if len(index) != len(self):
                raise InputError(f"index is a boolean mask of {len(index)} entries for {len(self)} images")
            index = index.nonzero().flatten()
        if index.numel() == 0:
            raise InputError("index selects no image; a subset needs at least one")
        index = index.to(self.confidence.original.device)
        confidence = ConfidenceResult(
            self.confidence.original[index], {p: v[index] for p, v in self.confidence.masked.items()}
        )
        # ROAD may cover only the first images (score_explainer's road_images): keep those of the subset.
        road_index = index[index < self.road_images]
        removal = RoadResult(
            {p: v[road_index] for p, v in self.removal.morf.items()},
            {p: v[road_index] for p, v in self.removal.lerf.items()},
        )
        local = {key: values[index] for key, values in self.localisation.items()}
        return ImageScores(
            confidence,
            removal,
            local.get("pointing_game"),
            local.get("energy_pointing_game"),
            local.get(f"top{self.iou_percent:g}%_iou"),
            self.iou_percent,
            self.ms_per_image,
            self.latency_ratio,
        )

    def summary(self, *, confidence_level: float = 0.95, n_resamples: int = 2000, seed: int = 0) -> dict[str, float]:
        """The flat dict of :func:`evaluate_explainer` (``n_resamples=0``: no ``_lo``/``_hi`` keys)."""
        result: dict[str, float] = {}
        result.update(self.confidence.summary())
        result.update(self.removal.summary())
        result.update({key: float(100 * values.mean()) for key, values in self.localisation.items()})
        result["ms_per_image"] = self.ms_per_image
        result["latency_ratio"] = self.latency_ratio
        if n_resamples:
            for key, values in self.per_image().items():
                low, high = bootstrap_interval(values, confidence_level, n_resamples, seed)
                result[f"{key}_lo"], result[f"{key}_hi"] = low, high
        return result


def score_explainer(
    explainer: Any,
    backbone: Backbone,
    images: torch.Tensor,
    masks: torch.Tensor | None,
    *,
    batch_size: int = 16,
    ad_ic_levels: Sequence[float] = AD_IC_LEVELS,
    road_levels: Sequence[float] = ROAD_LEVELS,
    iou_percent: float = 10.0,
    road_images: int | None = None,
    seed: int = 0,
    progress: bool = True,
    desc: str = "evaluate",
) -> ImageScores:
    """Explain ``images`` (B, 3, H, W) in [0, 1] and score every map against ``masks`` (B, H, W), per image.

    ``masks=None`` (no ground truth, as on ImageNet) scores faithfulness only: AD/IC and ROAD.

    ``road_images`` limits ROAD (14 sparse solves per image; about a second per 224-px image on a
    CPU) to the first that many images; every other metric uses all images.
    """
    if road_images is not None and road_images < 1:
        raise InputError(f"road_images must be None (all images) or >= 1; got {road_images}")
    images = backbone.check_images(images)
    if masks is not None and (
        not isinstance(masks, torch.Tensor) or masks.ndim != 3 or masks.shape[0] != images.shape[0]
    ):
        shape = tuple(masks.shape) if isinstance(masks, torch.Tensor) else type(masks).__name__
        raise InputError(
            f"masks must hold one true-object mask per image, shape ({images.shape[0]}, H, W) for "
            f"{images.shape[0]} images; got {shape}"
        )
    device = backbone.device
    confidence, removal, hits, energy, iou = [], [], [], [], []
    ratios, explain_seconds = [], 0.0
    starts = range(0, len(images), batch_size)
    for index, start in enumerate(tqdm(starts, desc=desc, disable=not progress, leave=False)):
        batch = images[start : start + batch_size].to(device)
        truth = None if masks is None else masks[start : start + batch_size].to(device).bool()
        # Alternate the order of the two timings so neither always runs on a warmer cache.
        # The plain forward is timed as the latency reference and its logits serve every metric,
        # so the backbone sees each unmasked batch once besides the explainer's own forward.
        if index % 2:
            plain_s, logits = timed(lambda: backbone(batch), device)  # noqa: B023 (called right here)
            explain_s, maps = timed(lambda: explainer.explain(batch), device)  # noqa: B023
        else:
            explain_s, maps = timed(lambda: explainer.explain(batch), device)  # noqa: B023
            plain_s, logits = timed(lambda: backbone(batch), device)  # noqa: B023
        ratios.append(explain_s / plain_s)
        explain_seconds += explain_s
        maps = maps.float()
        confidence.append(confidence_drop(backbone, batch, maps, ad_ic_levels, logits=logits))
        road_count = len(batch) if road_images is None else min(len(batch), road_images - start)
        if road_count > 0:
            removal.append(
                road(
                    backbone,
                    batch[:road_count],
                    maps[:road_count],
                    road_levels,
                    seed=seed + start,
                    logits=logits[:road_count],
                )
            )
        if truth is not None:
            hits.append(pointing_game(maps, truth))
            energy.append(energy_pointing_game(maps, truth))
            iou.append(top_k_iou(maps, truth, iou_percent))
    return ImageScores(
        ConfidenceResult.concat(confidence),
        RoadResult.concat(removal),
        torch.cat(hits) if hits else None,
        torch.cat(energy) if energy else None,
        torch.cat(iou) if iou else None,
        iou_percent,
        1000 * explain_seconds / len(images),
        statistics.median(ratios),
    )


def evaluate_explainer(
    explainer: Any,
    backbone: Backbone,
    images: torch.Tensor,
    masks: torch.Tensor | None,
    *,
    confidence_level: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
    **score_kwargs: Any,
) -> dict[str, float]:
    """Every metric for ``explainer`` on ``images`` (B, 3, H, W) in [0, 1] with true ``masks`` (B, H, W).

    Returns a flat dict: AD/IC per level, ROAD MoRF/LeRF per level and mean (% of predictions
    unchanged), pointing game, energy pointing game and top-k IoU (means over images), and
    ``ms_per_image`` with ``latency_ratio`` (explain time / plain forward time, median over batches).
    Each mean over images (AD/IC per level, ROAD means, the three localisation metrics) also
    gets a ``confidence_level`` bootstrap interval of that mean over images, ``KEY_lo`` and ``KEY_hi``
    in the same units (percentile method, ``n_resamples`` resamples seeded by ``seed``;
    ``n_resamples=0`` leaves them out). Per-level ROAD values get none. Other keyword arguments
    (``batch_size``, levels, ``iou_percent``, ``road_images``, ``progress``, ``desc``) are
    :func:`score_explainer`'s.
    """
    scores = score_explainer(explainer, backbone, images, masks, seed=seed, **score_kwargs)
    return scores.summary(confidence_level=confidence_level, n_resamples=n_resamples, seed=seed)


# (key in evaluate_explainer's result, short column label); arrows say which way is better.
# The faithfulness columns are the paper's protocol (no ground-truth masks needed).
FAITHFULNESS_COLUMNS: tuple[tuple[str, str], ...] = (
    ("AD(100%)", "AD100↓"),
    ("AD(50%)", "AD50↓"),
    ("AD(15%)", "AD15↓"),
    ("IC(100%)", "IC100↑"),
    ("IC(50%)", "IC50↑"),
    ("IC(15%)", "IC15↑"),
    ("ROAD-MORF(mean)", "MoRF↓"),
    ("ROAD-LERF(mean)", "LeRF↑"),
)
SUMMARY_COLUMNS: tuple[tuple[str, str], ...] = (
    *FAITHFULNESS_COLUMNS,
    ("pointing_game", "PG↑"),
    ("energy_pointing_game", "EPG↑"),
    ("top10%_iou", "IoU10↑"),
    ("ms_per_image", "ms/img"),
    ("latency_ratio", "×forward"),
)


def format_cell(row: dict[str, Any], key: str, intervals: bool = False) -> str:
    """One result as text: ``45.2``, or ``45.2 [41.0, 49.5]`` with ``intervals`` when the row has
    ``KEY_lo`` / ``KEY_hi``. A missing or None value (a metric that does not apply) prints as ``–``."""
    value = row.get(key)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    spec = ".2f" if key == "latency_ratio" else ".1f"
    text = f"{value:{spec}}"
    low, high = row.get(f"{key}_lo"), row.get(f"{key}_hi")
    if intervals and low is not None and high is not None:
        text += f" [{low:{spec}}, {high:{spec}}]"
    return text


def results_table(
    rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]] = SUMMARY_COLUMNS, *, intervals: bool = False
) -> str:
    """A Markdown table, one row per method (``row["method"]``), of the chosen result columns.

    With ``intervals`` each metric that has ``KEY_lo`` / ``KEY_hi`` keys prints as
    ``45.2 [41.0, 49.5]`` (value and its bootstrap interval). Columns no row has (the localisation
    metrics of images without object masks) are left out; a value one row lacks prints as ``–``.
    """
    columns = [(key, label) for key, label in columns if any(key in row for row in rows)]
    lines = ["| method | " + " | ".join(label for _, label in columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for row in rows:
        cells = [format_cell(row, key, intervals) for key, _ in columns]
        lines.append(f"| {row['method']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
