"""One call to score an explainer on images with ground-truth masks: every metric, plus latency.

Any object with ``explain(images, classes=None) -> (B, H, W)`` works: :class:`ttame_lib.TTAME`
or a baseline from :mod:`ttame_lib.baselines`. Metrics are computed for each image's predicted
class, batch by batch, and the explainer's latency is compared with one plain backbone forward
on the same batch, timed right next to it.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from tqdm.auto import tqdm

from .backbones import Backbone
from .faithfulness import AD_IC_LEVELS, ROAD_LEVELS, ConfidenceResult, RoadResult, confidence_drop, road
from .metrics import energy_pointing_game, pointing_game, top_k_iou


def timed(fn: Callable[[], Any], device: torch.device) -> tuple[float, Any]:
    """Seconds taken by ``fn()`` (synchronising CUDA) and its result."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    result = fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start, result


def evaluate_explainer(
    explainer: Any,
    backbone: Backbone,
    images: torch.Tensor,
    masks: torch.Tensor,
    *,
    batch_size: int = 16,
    ad_ic_levels: Sequence[float] = AD_IC_LEVELS,
    road_levels: Sequence[float] = ROAD_LEVELS,
    iou_percent: float = 10.0,
    seed: int = 0,
    progress: bool = True,
    desc: str = "evaluate",
) -> dict[str, float]:
    """Every metric for ``explainer`` on ``images`` (B, 3, H, W) in [0, 1] with true ``masks`` (B, H, W).

    Returns a flat dict: AD/IC per level, ROAD MoRF/LeRF per level and mean (% of predictions
    unchanged), pointing game, energy pointing game and top-k IoU (means over images), and
    ``ms_per_image`` with ``latency_ratio`` (explain time / plain forward time, median over batches).
    """
    device = backbone.device
    confidence, removal, hits, energy, iou = [], [], [], [], []
    ratios, explain_seconds = [], 0.0
    starts = range(0, len(images), batch_size)
    for index, start in enumerate(tqdm(starts, desc=desc, disable=not progress, leave=False)):
        batch = images[start : start + batch_size].to(device)
        truth = masks[start : start + batch_size].to(device).bool()
        # Alternate the order of the two timings so neither always runs on a warmer cache.
        if index % 2:
            plain_s, _ = timed(lambda: backbone(batch), device)  # noqa: B023 (called right here)
            explain_s, maps = timed(lambda: explainer.explain(batch), device)  # noqa: B023
        else:
            explain_s, maps = timed(lambda: explainer.explain(batch), device)  # noqa: B023
            plain_s, _ = timed(lambda: backbone(batch), device)  # noqa: B023
        ratios.append(explain_s / plain_s)
        explain_seconds += explain_s
        maps = maps.float()
        confidence.append(confidence_drop(backbone, batch, maps, ad_ic_levels))
        removal.append(road(backbone, batch, maps, road_levels, seed=seed + start))
        hits.append(pointing_game(maps, truth))
        energy.append(energy_pointing_game(maps, truth))
        iou.append(top_k_iou(maps, truth, iou_percent))
    result: dict[str, float] = {}
    result.update(ConfidenceResult.concat(confidence).summary())
    result.update(RoadResult.concat(removal).summary())
    result["pointing_game"] = float(100 * torch.cat(hits).mean())
    result["energy_pointing_game"] = float(100 * torch.cat(energy).mean())
    result[f"top{iou_percent:g}%_iou"] = float(100 * torch.cat(iou).mean())
    result["ms_per_image"] = 1000 * explain_seconds / len(images)
    result["latency_ratio"] = statistics.median(ratios)
    return result


# (key in evaluate_explainer's result, short column label); arrows say which way is better.
SUMMARY_COLUMNS: tuple[tuple[str, str], ...] = (
    ("AD(100%)", "AD100↓"),
    ("AD(50%)", "AD50↓"),
    ("AD(15%)", "AD15↓"),
    ("IC(100%)", "IC100↑"),
    ("IC(50%)", "IC50↑"),
    ("IC(15%)", "IC15↑"),
    ("ROAD-MORF(mean)", "MoRF↓"),
    ("ROAD-LERF(mean)", "LeRF↑"),
    ("pointing_game", "PG↑"),
    ("energy_pointing_game", "EPG↑"),
    ("top10%_iou", "IoU10↑"),
    ("ms_per_image", "ms/img"),
    ("latency_ratio", "×forward"),
)


def results_table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]] = SUMMARY_COLUMNS) -> str:
    """A Markdown table, one row per method (``row["method"]``), of the chosen result columns."""
    lines = ["| method | " + " | ".join(label for _, label in columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for row in rows:
        cells = [f"{row[key]:.2f}" if key == "latency_ratio" else f"{row[key]:.1f}" for key, _ in columns]
        lines.append(f"| {row['method']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
