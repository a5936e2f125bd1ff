"""Resident memory while explaining many images: T-TAME and Grad-CAM on the shipped scenes model.

    python benchmarks/memory.py [--images 10000] [--batch-size 50] [--backbone scenes_cnn]
        [--output outputs/bench/memory.json]

A leak (hooks that pile up, maps or graphs kept alive, caches that grow) shows as resident
memory (RSS) that climbs with the number of explained images. Each method explains ``--images``
images in batches (the same pool of 200 held-out scenes, cycled, so that the data itself takes
no extra memory), from a fresh explainer, and the process RSS is read from /proc at the start,
at 10 points along the way and at the end. Reported per method: RSS in MiB at each point, the
growth from the first tenth to the end (the first batches pay one-off allocations: allocator
pools, lazily built kernels) and that growth as a share of the RSS; the hooks left on the
backbone after ``close()`` must be zero. Results go to ``--output`` as JSON with the machine facts.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
from pathlib import Path

import torch
from tqdm import tqdm

from ttame_lib import TTAME, load_backbone, make_explainer
from ttame_lib.world.scenes import CompositeScenes
from ttame_lib.world.shipped import shipped_explainer_path

ROOT = Path(__file__).resolve().parents[1]
CHECKPOINTS = 10


def rss_mib() -> float:
    """Resident set size of this process now (not the peak), from /proc."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status (this benchmark needs Linux)")


def hooks_on(model: torch.nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in model.modules())


def run_method(explainer, pool: torch.Tensor, images: int, batch_size: int, desc: str) -> dict:
    batches = -(-images // batch_size)
    marks = {round(batches * k / CHECKPOINTS) for k in range(1, CHECKPOINTS + 1)}
    points = [{"images": 0, "rss_mib": rss_mib()}]
    done = 0
    for index in tqdm(range(batches), desc=desc):
        start = (index * batch_size) % len(pool)
        batch = pool[start : start + batch_size]
        maps = explainer.explain(batch)
        assert torch.isfinite(maps).all()
        done += len(batch)
        del maps
        if index + 1 in marks:
            gc.collect()
            points.append({"images": done, "rss_mib": rss_mib()})
    first_tenth = points[1]["rss_mib"]
    return {
        "points": points,
        "start_mib": points[0]["rss_mib"],
        "middle_mib": points[len(points) // 2]["rss_mib"],
        "end_mib": points[-1]["rss_mib"],
        "growth_after_first_tenth_mib": points[-1]["rss_mib"] - first_tenth,
        "growth_after_first_tenth_ratio": (points[-1]["rss_mib"] - first_tenth) / first_tenth,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--backbone", default="scenes_cnn")
    parser.add_argument("--output", type=Path, default=ROOT / "outputs" / "bench" / "memory.json")
    args = parser.parse_args()

    torch.manual_seed(0)
    backbone = load_backbone(args.backbone, weights="DEFAULT")
    hooks_before = hooks_on(backbone.model)
    size = backbone.input_size[0]
    dataset = CompositeScenes("test", length=200, size=size)
    pool = torch.stack([dataset[i][0] for i in range(len(dataset))])
    results = {}
    for method in ("ttame", "gradcam"):
        if method == "ttame":
            explainer = TTAME.load(shipped_explainer_path(args.backbone), backbone)
        else:
            explainer = make_explainer(backbone, method)
        results[method] = run_method(explainer, pool, args.images, args.batch_size, method)
        explainer.close()
        gc.collect()
        results[method]["hooks_left_after_close"] = hooks_on(backbone.model) - hooks_before
        r = results[method]
        print(
            f"{method:8s} RSS start {r['start_mib']:.0f} MiB, middle {r['middle_mib']:.0f}, end {r['end_mib']:.0f}; "
            f"growth after the first tenth {r['growth_after_first_tenth_mib']:+.1f} MiB"
        )
    report = {
        "benchmark": "memory",
        "backbone": args.backbone,
        "images_per_method": args.images,
        "batch_size": args.batch_size,
        "image_size": size,
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()},
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "methods": results,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
