"""Evaluation benchmark: T-TAME and the baselines on held-out composite scenes, per backbone.

    python benchmarks/evaluate.py [--backbones scenes_cnn scenes_vit tf_efficientnet_lite0]
                                  [--scenes 200] [--scenes-224 200] [--val-scenes 48] [--scale 0.3 0.6]
                                  [--methods ttame gradcam ... centre uniform] [--no-skip-slow-224]
                                  [--rise-masks 500] [--resamples 2000] [--road-images 4] [--device cpu]

For each backbone and method: AD / IC at 100, 50, 15 % kept, ROAD MoRF / LeRF at every level
and their means, pointing game, energy pointing game, top-10 % IoU against the true object
masks, each mean over images with its 95 % bootstrap interval, and latency per image with its
ratio to one plain backbone forward (same run, same batches). Scenes are the test split
(backgrounds never seen in training), explained for the backbone's predicted class.

- Each CAM method runs at its best single layer, chosen by pointing game on a separate
  validation set of scenes (never the evaluated ones); the JSON keeps every candidate's score.
- "centre" (a centred Gaussian) and "uniform" (all ones) are model-agnostic reference rows.
- Every other method is also compared with T-TAME scene by scene: the mean of (method - T-TAME)
  for AD(15%), the pointing game and PG obj, with a 95 % *paired* bootstrap interval (row key
  "minus_ttame"); two methods on the same scenes can differ consistently while their separate
  intervals overlap.
- For ImageNet classifiers, "PG obj" is the pointing game for the class the backbone gives the
  object seen alone (cut out on grey); its top-1 on a composite is often the background's class.
- Per backbone the JSON records the chance level (mean object area share), the backbone's
  top-1 accuracy on the evaluated scenes (None for ImageNet classifiers), and, for the scene
  backbones (trained with every 5th object instance held out), pointing game and AD(15%) on
  scenes whose object instance the backbone saw in training vs. never saw.
- Score-CAM, Ablation-CAM and RISE (hundreds of forwards per image, over 10 s per 224-px
  image on CPU) are skipped on 224-px backbones unless --no-skip-slow-224.

A second part times ROAD's noisy linear imputation against pytorch-grad-cam's on the same
images and maps (full MoRF + LeRF curve) and checks they agree.

Results go to outputs/bench/evaluation.json and evaluation.md, rewritten after every method.
The defaults make a long run (several times the earlier defaults of 64 + 8 scenes, which took
about 20 minutes on a 2-core CPU, mostly in Score-CAM, Ablation-CAM and RISE); --scenes,
--scenes-224, --val-scenes, --methods and --rise-masks scale it.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from pytorch_grad_cam.metrics.road import NoisyLinearImputer

from ttame_lib import __version__, load_backbone, make_explainer
from ttame_lib.backbones import Backbone
from ttame_lib.evaluation import ImageScores, format_cell, results_table, score_explainer
from ttame_lib.evaluation.baselines import BASELINES, CAM_METHODS, select_cam_layer
from ttame_lib.evaluation.faithfulness import ROAD_LEVELS, removal_masks
from ttame_lib.evaluation.imputation import linear_impute
from ttame_lib.evaluation.localisation import mask_area, object_classes, pointing_game
from ttame_lib.evaluation.runner import SUMMARY_COLUMNS, bootstrap_interval, paired_difference
from ttame_lib.world.data_source import VALIDATION_SEED_OFFSET
from ttame_lib.world.scene_backbones import SCENE_BACKBONES
from ttame_lib.world.scenes import CompositeScenes
from ttame_lib.world.shipped import SHIPPED_EXPLAINERS, load_shipped_explainer, shipped_explainer_path

# Range of the target object's longer side, as a fraction of the shorter image side. At the scenes'
# default (0.4, 0.8) objects cover the centre so often that a centred Gaussian ignoring the model
# points at them in 41 % of 300 test scenes; at (0.3, 0.6) it does in 23 % (objects cover 7 % of a
# scene), while scenes_cnn still classifies 71 % and scenes_vit 61 % correctly (seen and unseen
# instances together; both were trained on (0.4, 0.8)).
BENCH_SCALE: tuple[float, float] = (0.3, 0.6)

ROOT = Path(__file__).resolve().parents[1]
METHODS = ("ttame", *BASELINES)
# Hundreds of backbone forwards per image: over 10 s per 224-px image on CPU.
SLOW_METHODS = ("scorecam", "ablationcam", "rise")
# The summary columns plus the pointing game for the class the classifier gives the object seen
# alone (localisation.object_classes); only ImageNet classifiers' rows have it, and results_table
# leaves out a column no row has.
BENCH_COLUMNS = tuple(
    column
    for key, label in SUMMARY_COLUMNS
    for column in ([(key, label), ("pointing_game_object", "PG obj↑")] if key == "pointing_game" else [(key, label)])
)
# Seed offset of the validation scenes used to choose CAM layers: the notebooks' (world.data_source).
VAL_SEED_OFFSET = VALIDATION_SEED_OFFSET


@dataclass
class Scenes:
    """A batch of composite scenes: images, object masks, labels and object instance names."""

    images: torch.Tensor
    masks: torch.Tensor
    labels: torch.Tensor
    instances: list[str]


def load_scenes(size: int, count: int, seed: int, scale: tuple[float, float]) -> Scenes:
    """``count`` scenes of the test split (backgrounds never seen in training) at ``size`` px."""
    data = CompositeScenes("test", length=count, size=size, seed=seed, scale=scale)
    scenes = [data.scene(i) for i in range(count)]
    return Scenes(
        torch.stack([s.image for s in scenes]),
        torch.stack([s.mask for s in scenes]),
        torch.tensor([s.label for s in scenes]),
        [s.instance for s in scenes],
    )


def backbone_training_instances() -> set[str]:
    """Object instances the scene backbones trained on (scripts/train_backbone.py holds out every
    5th instance with holdout="instance"); the T-TAME explainers themselves saw every instance."""
    train = CompositeScenes("train", length=1, holdout="instance")
    return {f"{name}/{path.name}" for name, paths in train.instances.items() for path in paths}


def predictions(backbone: Backbone, images: torch.Tensor, batch_size: int) -> torch.Tensor:
    """The backbone's top-1 class for every image."""
    return torch.cat([backbone(chunk).argmax(1).cpu() for chunk in images.split(batch_size)])


def explain_in_batches(explainer, images: torch.Tensor, classes: torch.Tensor | None, batch_size: int) -> torch.Tensor:
    """Maps for every image, for ``classes`` (None: each image's predicted class), on the CPU."""
    starts = range(0, len(images), batch_size)
    return torch.cat(
        [
            explainer.explain(
                images[i : i + batch_size], None if classes is None else classes[i : i + batch_size]
            ).cpu()
            for i in starts
        ]
    )


def pointing_game_hits(maps: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Per image: 100 if the map's peak is on the object, else 0 (ties: the share on it)."""
    return 100 * pointing_game(maps.float(), masks.cpu())


def mean_interval(hits: torch.Tensor, resamples: int, seed: int) -> tuple[float, float, float]:
    """Mean of per-image values with its 95 % bootstrap interval."""
    low, high = bootstrap_interval(hits, n_resamples=max(resamples, 1), seed=seed)
    return float(hits.mean()), low, high


def pointing_game_interval(
    maps: torch.Tensor, masks: torch.Tensor, resamples: int, seed: int
) -> tuple[float, float, float]:
    """Pointing game (%) over images, with its 95 % bootstrap interval."""
    return mean_interval(pointing_game_hits(maps, masks), resamples, seed)


def object_pointing_game(
    explainer, scenes: Scenes, objects: torch.Tensor, args: argparse.Namespace
) -> tuple[dict, torch.Tensor]:
    """Pointing game (%) of the maps for each scene's object class (not the top-1), with its interval,
    and the per-scene hits (for the paired differences)."""
    hits = pointing_game_hits(explain_in_batches(explainer, scenes.images, objects, args.batch_size), scenes.masks)
    value, low, high = mean_interval(hits, args.resamples, args.seed)
    summary = {
        "pointing_game_object": round(value, 3),
        "pointing_game_object_lo": round(low, 3),
        "pointing_game_object_hi": round(high, 3),
    }
    return summary, hits


# Metrics compared scene by scene against T-TAME (per-image terms of ImageScores.per_image, plus PG obj).
PAIRED_METRICS = (("AD(15%)", "AD 15 % ↓"), ("pointing_game", "pointing game ↑"), ("pointing_game_object", "PG obj ↑"))


def paired_against(values: dict[str, torch.Tensor], reference: dict[str, torch.Tensor], args) -> dict[str, list]:
    """For each paired metric both have: [mean of (method - reference), low, high] over the same scenes."""
    out = {}
    for key, _ in PAIRED_METRICS:
        if key in values and key in reference:
            mean, low, high = paired_difference(
                values[key], reference[key], n_resamples=max(args.resamples, 1), seed=args.seed
            )
            out[key] = [round(mean, 3), round(low, 3), round(high, 3)]
    return out


def accuracy(backbone: Backbone, scenes: Scenes, batch_size: int) -> float:
    """Top-1 accuracy (%) of the backbone against the scene labels."""
    return float(100 * (predictions(backbone, scenes.images, batch_size) == scenes.labels).float().mean())


def methods_for(
    backbone: Backbone, name: str, methods: list[str], args: argparse.Namespace
) -> tuple[list[str], dict[str, str]]:
    """The methods to run on this backbone, and those left out with the reason."""
    run, skipped = [], {}
    for method in methods:
        if method == "rollout" and backbone.family != "vit":
            skipped[method] = "needs a ViT"
        elif method in SLOW_METHODS and SHIPPED_EXPLAINERS[name] == 224 and args.skip_slow_224:
            skipped[method] = "slow on 224-px images (--no-skip-slow-224 runs it)"
        else:
            run.append(method)
    return run, skipped


def summarise(scores: ImageScores, args: argparse.Namespace) -> dict[str, float]:
    """Every metric with its bootstrap interval, seeded by the run's seed."""
    return scores.summary(n_resamples=args.resamples, seed=args.seed)


def by_instance(scores: ImageScores, seen: torch.Tensor, args: argparse.Namespace) -> dict[str, dict]:
    """Pointing game and AD(15%), with intervals, on seen and on unseen object instances."""
    keys = [f"{k}{end}" for k in ("pointing_game", "AD(15%)") for end in ("", "_lo", "_hi")]
    out = {}
    for group, chosen in (("seen", seen), ("unseen", ~seen)):
        if chosen.any():
            summary = summarise(scores.subset(chosen), args)
            out[group] = {"images": int(chosen.sum()), **{k: round(summary[k], 3) for k in keys}}
    return out


def bench_backbone(
    name: str, methods: list[str], count: int, args: argparse.Namespace, save, facts: dict[str, dict]
) -> None:
    """Score every method on ``count`` held-out scenes; ``save(row)`` receives each result as it comes.

    ``facts[name]`` gets the backbone's facts (chance level, accuracy, skipped methods) before the first method.
    """
    backbone = load_backbone(name, weights="DEFAULT", device=args.device)
    size, scale = SHIPPED_EXPLAINERS[name], tuple(args.scale)
    test = load_scenes(size, count, args.seed, scale)
    # CAM layers are chosen on other scenes than the evaluated ones: the same test split (held-out
    # backgrounds), but another seed, so every scene (crop, object, placement) is different.
    val = load_scenes(size, args.val_scenes, args.seed + VAL_SEED_OFFSET, scale)
    scene_backbone = name in SCENE_BACKBONES
    seen = None
    if scene_backbone:
        trained_on = backbone_training_instances()
        seen = torch.tensor([instance in trained_on for instance in test.instances])
    run, skipped = methods_for(backbone, name, methods, args)
    objects = None
    if not scene_backbone:
        # An ImageNet classifier's top-1 on a composite is often the background's class; the
        # pointing game against the object's mask is then asked of a map that should not point at it.
        objects = object_classes(backbone, test.images, test.masks, batch_size=args.batch_size)
    info = {
        "images": count,
        "val_scenes": args.val_scenes,
        "chance_level": round(float(100 * mask_area(test.masks).mean()), 3),
        # Only the scene backbones predict the scene classes; ImageNet classes cannot be scored against them.
        "accuracy": round(accuracy(backbone, test, args.batch_size), 3) if scene_backbone else None,
        "unseen_instances": None if seen is None else int((~seen).sum()),
        "road_images": min(count, args.road_scenes_224) if size == 224 else count,
        "skipped": skipped,
        "top1_is_object_class": None
        if objects is None
        else round(float(100 * (objects == predictions(backbone, test.images, args.batch_size)).float().mean()), 3),
    }
    facts[name] = info
    print(
        f"{name}: {count} scenes, chance level {info['chance_level']:.1f} %, accuracy {info['accuracy']} %, "
        f"unseen instances {info['unseen_instances']}; skipped: {skipped or 'none'}",
        flush=True,
    )
    settings: dict = {
        "ttame": {"checkpoint": shipped_explainer_path(name)},
        "rise": {"n_masks": args.rise_masks, "seed": args.seed},
    }
    reference: dict[str, torch.Tensor] | None = None  # T-TAME's per-scene scores, for the paired differences
    for method in run:
        started = time.perf_counter()
        extra: dict = {}
        kwargs = dict(settings.get(method, {}))
        if method in CAM_METHODS:
            layer, layer_scores = select_cam_layer(backbone, method, val.images, val.masks, batch_size=args.batch_size)
            extra = {"layer": layer, "layer_scores": {k: round(v, 3) for k, v in layer_scores.items()}}
            print(f"  {method}: layer {layer} (validation PG: {extra['layer_scores']})", flush=True)
            kwargs = {"layer": layer}
        with make_explainer(backbone, method, **kwargs) as explainer:
            scores = score_explainer(
                explainer,
                backbone,
                test.images,
                test.masks,
                batch_size=args.batch_size,
                road_images=args.road_scenes_224 if size == 224 else None,
                seed=args.seed,
                desc=f"{name}/{method}",
            )
            values = scores.per_image()
            if objects is not None:
                summary, values["pointing_game_object"] = object_pointing_game(explainer, test, objects, args)
                extra.update(summary)
        if method == "ttame":
            reference = values
        elif reference is not None:
            extra["minus_ttame"] = paired_against(values, reference, args)
        row = {"backbone": name, "method": method, "images": count, **extra}
        row.update({k: round(v, 3) for k, v in summarise(scores, args).items()})
        if seen is not None:
            row["instances"] = by_instance(scores, seen, args)
        save(row)  # written after every method: an interrupted run keeps what it measured
        print(
            f"{name:22s} {method:12s} AD15 {row['AD(15%)']:6.2f}  IC15 {row['IC(15%)']:6.2f}  "
            f"MoRF {row['ROAD-MORF(mean)']:6.2f}  LeRF {row['ROAD-LERF(mean)']:6.2f}  "
            f"PG {format_cell(row, 'pointing_game', intervals=True):20s} EPG {row['energy_pointing_game']:6.2f}  "
            f"{row['ms_per_image']:9.1f} ms/img  x{row['latency_ratio']:.2f}  ({time.perf_counter() - started:.0f}s)",
            flush=True,
        )


def bench_road_speed(args: argparse.Namespace) -> dict:
    """Full ROAD curve (MoRF + LeRF, 7 levels) on the same inputs: pytorch-grad-cam vs ours."""
    ttame = load_shipped_explainer("tf_efficientnet_lite0", device="cpu")
    images = load_scenes(224, args.road_images, args.seed, tuple(args.scale)).images
    maps = ttame.explain(images)
    inputs = ttame.backbone.normalize(images)
    keys = [(order, p) for order in ("morf", "lerf") for p in ROAD_LEVELS]
    generator = torch.Generator().manual_seed(args.seed)
    removed = torch.cat([removal_masks(maps, p, order, generator) for order, p in keys])
    stacked = inputs.repeat(len(keys), 1, 1, 1)
    reference_imputer = NoisyLinearImputer(noise=0.0)
    start = time.perf_counter()
    reference = torch.stack([reference_imputer(stacked[i], (~removed[i]).float()) for i in range(len(stacked))])
    reference_s = time.perf_counter() - start
    result = {"images": args.road_images, "size": 224, "levels": list(ROAD_LEVELS), "solves": len(stacked)}
    result["pytorch_grad_cam_s_per_image"] = round(reference_s / args.road_images, 3)
    # (label, solver, tol): exact direct solve; multigrid as tight as a noise-free comparison needs;
    # multigrid at the tolerance ROAD uses with its noise of 0.01 (errors far below the noise).
    variants = [("direct", "direct", None), ("multigrid", "multigrid", 1e-6), ("multigrid_road", "multigrid", 1e-4)]
    for label, solver, tol in variants:
        start = time.perf_counter()
        ours = linear_impute(stacked, removed, noise=0.0, solver=solver, tol=tol)
        seconds = time.perf_counter() - start
        result[f"{label}_s_per_image"] = round(seconds / args.road_images, 3)
        result[f"{label}_speedup"] = round(reference_s / seconds, 2)
        result[f"{label}_max_abs_diff"] = float((ours - reference).abs().max())
    if torch.cuda.is_available():
        on_gpu, removed_gpu = stacked.cuda(), removed.cuda()
        for label, tol in [("cuda_multigrid", 1e-6), ("cuda_multigrid_road", 1e-4)]:
            linear_impute(on_gpu[:2], removed_gpu[:2], noise=0.0, solver="multigrid", tol=tol)  # warm-up
            torch.cuda.synchronize()
            start = time.perf_counter()
            ours = linear_impute(on_gpu, removed_gpu, noise=0.0, solver="multigrid", tol=tol)
            torch.cuda.synchronize()
            seconds = time.perf_counter() - start
            result[f"{label}_s_per_image"] = round(seconds / args.road_images, 4)
            result[f"{label}_speedup"] = round(reference_s / seconds, 2)
            result[f"{label}_max_abs_diff"] = float((ours.cpu() - reference).abs().max())
    print("ROAD imputation speed:", json.dumps(result), flush=True)
    return result


def paired_table(subset: list[dict]) -> list[str]:
    """Markdown: each method minus T-TAME on the same scenes, with paired 95 % intervals."""
    paired = [r for r in subset if r.get("minus_ttame")]
    if not paired:
        return []
    columns = [(key, label) for key, label in PAIRED_METRICS if any(key in r["minus_ttame"] for r in paired)]
    lines = [
        "",
        "Each method minus T-TAME on the same scenes, in points, with the 95 % paired bootstrap interval "
        "(an interval that excludes 0 is a difference; negative AD and positive PG favour the method over T-TAME):",
        "",
        "| method | layer | " + " | ".join(label for _, label in columns) + " |",
        "|---|---|" + "---|" * len(columns),
    ]
    for r in paired:
        cells = []
        for key, _ in columns:
            mean, low, high = r["minus_ttame"].get(key, (None, None, None))
            cells.append("" if mean is None else f"{mean:+.1f} [{low:+.1f}, {high:+.1f}]")
        lines.append(f"| {r['method']} | {r.get('layer', '')} | " + " | ".join(cells) + " |")
    return lines


def backbone_section(name: str, subset: list[dict], info: dict | None) -> list[str]:
    """Markdown for one backbone: facts, the results with intervals, chosen layers, instance split, ROAD levels."""
    lines = [f"### {name} ({subset[0]['images']} held-out scenes)", ""]
    if info:
        accuracy = "n/a (ImageNet classes)" if info["accuracy"] is None else f"{info['accuracy']:.1f} %"
        lines += [
            f"Chance level (mean object area share): {info['chance_level']:.1f} %. "
            f"Backbone top-1 accuracy on these scenes: {accuracy}.",
            "",
        ]
        if info.get("top1_is_object_class") is not None:
            lines += [
                f"The backbone's top-1 class is the class it gives the object seen alone in "
                f"{info['top1_is_object_class']:.1f} % of these scenes; PG explains the top-1 class, "
                "PG obj the object's class (the pointing game's question: where is the object the model sees?).",
                "",
            ]
        if info["skipped"]:
            lines += ["Skipped: " + "; ".join(f"{m} ({why})" for m, why in info["skipped"].items()) + ".", ""]
    lines += ["Values in %, with 95 % bootstrap intervals over images; times per image.", ""]
    lines.append(results_table(subset, BENCH_COLUMNS, intervals=True))
    lines += paired_table(subset)
    chosen = [r for r in subset if "layer" in r]
    if chosen:
        lines += [
            "",
            f"CAM layers, chosen by pointing game on {info['val_scenes'] if info else '?'} validation scenes:",
            "",
        ]
        lines += ["| method | layer | validation PG per candidate |", "|---|---|---|"]
        for r in chosen:
            scores = ", ".join(f"{layer} {score:.1f}" for layer, score in r["layer_scores"].items())
            lines.append(f"| {r['method']} | {r['layer']} | {scores} |")
    split = [r for r in subset if r.get("instances")]
    if split:
        counts = {g: split[0]["instances"][g]["images"] for g in split[0]["instances"]}
        lines += [
            "",
            "Object instances the backbone saw in training vs. never saw ("
            + ", ".join(f"{g}: {n} scenes" for g, n in counts.items())
            + "):",
            "",
        ]
        header = [f"{label} {g}" for label in ("PG↑", "AD15↓") for g in counts]
        lines += ["| method | " + " | ".join(header) + " |", "|---" * (len(header) + 1) + "|"]
        for r in split:
            cells = [
                format_cell(r["instances"][g], key, intervals=True) if g in r["instances"] else "–"
                for key in ("pointing_game", "AD(15%)")
                for g in counts
            ]
            lines.append(f"| {r['method']} | " + " | ".join(cells) + " |")
    levels = [f"{p:g}" for p in ROAD_LEVELS]
    lines += ["", "ROAD per level (% of predictions unchanged), MoRF / LeRF:", ""]
    lines.append("| method | " + " | ".join(f"{p}%" for p in levels) + " |")
    lines.append("|---" * (len(levels) + 1) + "|")
    for r in subset:
        cells = [f"{r[f'ROAD-MORF({p}%)']:.0f} / {r[f'ROAD-LERF({p}%)']:.0f}" for p in levels]
        lines.append(f"| {r['method']} | " + " | ".join(cells) + " |")
    lines.append("")
    return lines


def markdown(rows: list[dict], speed: dict | None, backbones: dict[str, dict] | None = None) -> str:
    lines = []
    for name in dict.fromkeys(r["backbone"] for r in rows):
        lines += backbone_section(name, [r for r in rows if r["backbone"] == name], (backbones or {}).get(name))
    if speed:
        lines += ["### ROAD imputation, full MoRF + LeRF curve (7 levels each), 224x224", ""]
        lines.append("| solver | s per image | speed-up vs pytorch-grad-cam | max abs diff |")
        lines.append("|---|---|---|---|")
        lines.append(f"| pytorch-grad-cam NoisyLinearImputer | {speed['pytorch_grad_cam_s_per_image']} | 1 | 0 |")
        labels = {
            "direct": "ttame_lib direct (exact)",
            "multigrid": "ttame_lib multigrid, tol 1e-6 (noise-free comparisons)",
            "multigrid_road": "ttame_lib multigrid, tol 1e-4 (ROAD's default with noise 0.01)",
            "cuda_multigrid": "ttame_lib multigrid on CUDA, tol 1e-6",
            "cuda_multigrid_road": "ttame_lib multigrid on CUDA, tol 1e-4",
        }
        for key, label in labels.items():
            if f"{key}_s_per_image" in speed:
                lines.append(
                    f"| {label} | {speed[f'{key}_s_per_image']} | {speed[f'{key}_speedup']} | "
                    f"{speed[f'{key}_max_abs_diff']:.1e} |"
                )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbones", nargs="+", default=list(SHIPPED_EXPLAINERS), choices=list(SHIPPED_EXPLAINERS))
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--scenes", type=int, default=200, help="scenes for the 64-px backbones")
    parser.add_argument("--scenes-224", type=int, default=200, help="scenes for EfficientNet-Lite0 (224 px)")
    parser.add_argument("--val-scenes", type=int, default=48, help="validation scenes for choosing CAM layers")
    parser.add_argument(
        "--road-scenes-224", type=int, default=48, help="ROAD on only the first N 224-px scenes (about 1 s each)"
    )
    parser.add_argument(
        "--scale",
        nargs=2,
        type=float,
        default=list(BENCH_SCALE),
        metavar=("LOW", "HIGH"),
        help="object size range (longer side / shorter image side) of the scenes",
    )
    parser.add_argument(
        "--skip-slow-224",
        action=argparse.BooleanOptionalAction,
        default=True,
        help=f"skip {', '.join(SLOW_METHODS)} on 224-px backbones",
    )
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--rise-masks", type=int, default=500)
    parser.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples per interval (0: none)")
    parser.add_argument("--road-images", type=int, default=4, help="images for the ROAD speed comparison (0: skip)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "bench")
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    started = time.perf_counter()
    rows: list[dict] = []
    backbones: dict[str, dict] = {}
    args.out.mkdir(parents=True, exist_ok=True)

    def write(speed: dict | None = None) -> None:
        report = {
            "benchmark": "explanation quality and cost on held-out composite scenes",
            "ttame_lib": __version__,
            "torch": torch.__version__,
            "device": args.device,
            "threads": torch.get_num_threads(),
            "machine": platform.machine(),
            "seconds": round(time.perf_counter() - started, 1),
            "arguments": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "intervals": f"95 % percentile bootstrap of the mean over images, {args.resamples} resamples",
            "backbones": backbones,
            "results": rows,
            "road_speed": speed,
        }
        (args.out / "evaluation.json").write_text(json.dumps(report, indent=2) + "\n")
        (args.out / "evaluation.md").write_text(markdown(rows, speed, backbones))

    for name in args.backbones:
        count = args.scenes_224 if SHIPPED_EXPLAINERS[name] == 224 else args.scenes
        bench_backbone(name, args.methods, count, args, lambda row: (rows.append(row), write()), backbones)
    speed = bench_road_speed(args) if args.road_images > 0 else None
    write(speed)
    print(f"wrote {args.out / 'evaluation.json'} and evaluation.md ({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
