"""Evaluation benchmark: T-TAME and the baselines on held-out composite scenes, per backbone.

    python benchmarks/evaluate.py [--backbones scenes_cnn scenes_vit tf_efficientnet_lite0]
                                  [--scenes 64] [--scenes-224 8] [--methods ttame gradcam ...]
                                  [--rise-masks 500] [--road-images 4] [--device cpu]

For each backbone and method: AD / IC at 100, 50, 15 % kept, ROAD MoRF / LeRF at every level
and their means, pointing game, energy pointing game, top-10 % IoU against the true object
masks, and latency per image with its ratio to one plain backbone forward (same run, same
batches). Scenes are the test split (backgrounds never seen in training), explained for the
backbone's predicted class. A second part times ROAD's noisy linear imputation against
pytorch-grad-cam's on the same images and maps (full MoRF + LeRF curve) and checks they agree.

Results go to outputs/bench/evaluation.json and evaluation.md, rewritten after every method.
The defaults take about 20 minutes on a 2-core CPU, most of it in Score-CAM, Ablation-CAM and
RISE (hundreds of forwards per image); --scenes, --scenes-224 and --rise-masks scale it.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch
from pytorch_grad_cam.metrics.road import NoisyLinearImputer

from ttame_lib import __version__
from ttame_lib.baselines import BASELINES, make_baseline
from ttame_lib.evaluation import evaluate_explainer, results_table
from ttame_lib.faithfulness import ROAD_LEVELS, removal_masks
from ttame_lib.imputation import linear_impute
from ttame_lib.scenes import CompositeScenes
from ttame_lib.shipped import SHIPPED_EXPLAINERS, load_shipped_explainer

ROOT = Path(__file__).resolve().parents[1]
METHODS = ("ttame", *BASELINES)


def scenes_for(size: int, count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    data = CompositeScenes("test", length=count, size=size, seed=seed)
    items = [data[i] for i in range(count)]
    return torch.stack([item[0] for item in items]), torch.stack([item[2] for item in items])


def bench_backbone(name: str, methods: list[str], count: int, args: argparse.Namespace, save) -> None:
    """Score every method on ``count`` held-out scenes; ``save(row)`` receives each result as it comes."""
    ttame = load_shipped_explainer(name, device=args.device)
    backbone = ttame.backbone
    images, masks = scenes_for(SHIPPED_EXPLAINERS[name], count, args.seed)
    for method in methods:
        if method == "rollout" and backbone.family != "vit":
            continue
        if method == "ttame":
            explainer = ttame
        elif method == "rise":
            explainer = make_baseline(backbone, "rise", n_masks=args.rise_masks, seed=args.seed)
        else:
            explainer = make_baseline(backbone, method)
        started = time.perf_counter()
        scores = evaluate_explainer(
            explainer, backbone, images, masks, batch_size=args.batch_size, seed=args.seed, desc=f"{name}/{method}"
        )
        if hasattr(explainer, "close"):
            explainer.close()
        row = {"backbone": name, "method": method, "images": count, **{k: round(v, 3) for k, v in scores.items()}}
        save(row)  # written after every method: an interrupted run keeps what it measured
        print(
            f"{name:22s} {method:12s} AD15 {row['AD(15%)']:6.2f}  IC15 {row['IC(15%)']:6.2f}  "
            f"MoRF {row['ROAD-MORF(mean)']:6.2f}  LeRF {row['ROAD-LERF(mean)']:6.2f}  "
            f"PG {row['pointing_game']:6.2f}  EPG {row['energy_pointing_game']:6.2f}  "
            f"{row['ms_per_image']:9.1f} ms/img  x{row['latency_ratio']:.2f}  ({time.perf_counter() - started:.0f}s)",
            flush=True,
        )
    ttame.remove_hooks()


def bench_road_speed(args: argparse.Namespace) -> dict:
    """Full ROAD curve (MoRF + LeRF, 7 levels) on the same inputs: pytorch-grad-cam vs ours."""
    ttame = load_shipped_explainer("tf_efficientnet_lite0", device="cpu")
    images, _ = scenes_for(224, args.road_images, args.seed)
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


def markdown(rows: list[dict], speed: dict | None) -> str:
    lines = []
    for name in dict.fromkeys(r["backbone"] for r in rows):
        subset = [r for r in rows if r["backbone"] == name]
        lines += [f"### {name} ({subset[0]['images']} held-out scenes)", ""]
        lines.append(results_table(subset))
        levels = [f"{p:g}" for p in ROAD_LEVELS]
        lines += ["", "ROAD per level (% of predictions unchanged), MoRF / LeRF:", ""]
        lines.append("| method | " + " | ".join(f"{p}%" for p in levels) + " |")
        lines.append("|---" * (len(levels) + 1) + "|")
        for r in subset:
            cells = [f"{r[f'ROAD-MORF({p}%)']:.0f} / {r[f'ROAD-LERF({p}%)']:.0f}" for p in levels]
            lines.append(f"| {r['method']} | " + " | ".join(cells) + " |")
        lines.append("")
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
    parser.add_argument("--scenes", type=int, default=64, help="scenes for the 64-px backbones")
    parser.add_argument("--scenes-224", type=int, default=8, help="scenes for EfficientNet-Lite0 (224 px)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--rise-masks", type=int, default=500)
    parser.add_argument("--road-images", type=int, default=4, help="images for the ROAD speed comparison (0: skip)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "bench")
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    started = time.perf_counter()
    rows: list[dict] = []
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
            "results": rows,
            "road_speed": speed,
        }
        (args.out / "evaluation.json").write_text(json.dumps(report, indent=2) + "\n")
        (args.out / "evaluation.md").write_text(markdown(rows, speed))

    for name in args.backbones:
        count = args.scenes_224 if SHIPPED_EXPLAINERS[name] == 224 else args.scenes
        bench_backbone(name, args.methods, count, args, lambda row: (rows.append(row), write()))
    speed = bench_road_speed(args) if args.road_images > 0 else None
    write(speed)
    print(f"wrote {args.out / 'evaluation.json'} and evaluation.md ({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
