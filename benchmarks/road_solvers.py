"""Seconds per image of the two ROAD imputation solvers, ``direct`` (scipy sparse LU per image)
and ``multigrid`` (batched multigrid-preconditioned CG in torch), on the CPU.

    python benchmarks/road_solvers.py [--sizes 64 224] [--batches 1 4 16 64 256 1024]
        [--fractions 10 50 90] [--maps smooth] [--repeats 3] [--output outputs/bench/road_solvers.json]

Images are composite scenes (the offline world's test split) at each size. Removed pixels are
chosen as ROAD chooses them (``removal_masks``, most relevant first) from a map per image:
``smooth`` maps are 7x7 noise upsampled bilinearly, like an upsampled explanation map, so the
removed pixels form blobs; ``random`` maps are white noise (scattered pixels). Both solvers get
ROAD's noise (0.01, so multigrid's default tolerance 1e-4) from generators with the same seed,
so the noise cancels and the max abs difference of the outputs is the solvers' disagreement.
``--fractions road`` imputes what one ``road()`` call does: each of ``--batches`` images at
every ROAD level and order together (a mixed batch of 14 x images; ``batch`` in the results).

Each configuration is warmed up once (direct on one image, since it loops over images;
multigrid on the whole batch), then timed ``--repeats`` times, the solvers alternating which
goes first. Reported: median seconds per image, and the ratio multigrid / direct (< 1: multigrid
wins). Batches with more than ``--max-pixels`` pixels in all are skipped (memory: about 4 GiB of
process RSS at 256 x 224 x 224). Results go to ``--output`` as JSON with the machine facts.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from ttame_lib.evaluation.faithfulness import ROAD_LEVELS, removal_masks
from ttame_lib.evaluation.imputation import linear_impute
from ttame_lib.world.scenes import CompositeScenes

ROOT = Path(__file__).resolve().parents[1]
SOLVERS = ("direct", "multigrid")
ROAD_KEYS = [(order, p) for order in ("morf", "lerf") for p in ROAD_LEVELS]  # what one road() call imputes


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def max_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def scenes(count: int, size: int) -> torch.Tensor:
    dataset = CompositeScenes("test", length=count, size=size)
    return torch.stack([dataset[i][0] for i in range(count)])


def maps(count: int, size: int, kind: str, generator: torch.Generator) -> torch.Tensor:
    if kind == "random":
        return torch.rand(count, size, size, generator=generator)
    coarse = torch.rand(count, 1, 7, 7, generator=generator)
    return F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)[:, 0]


def fraction_arg(text: str) -> float | str:
    return text if text == "road" else float(text)


def removal(maps: torch.Tensor, fraction: float | str, generator: torch.Generator) -> torch.Tensor:
    """ROAD's masks: ``fraction`` % of each map, or for "road" every (order, level) of ``road()``."""
    if fraction != "road":
        return removal_masks(maps, fraction, generator=generator)
    return torch.cat([removal_masks(maps, p, order, generator) for order, p in ROAD_KEYS])


def impute(solver: str, images: torch.Tensor, removed: torch.Tensor, noise: float) -> tuple[float, torch.Tensor]:
    start = time.perf_counter()
    out = linear_impute(images, removed, noise=noise, solver=solver, generator=torch.Generator().manual_seed(1))
    return time.perf_counter() - start, out


def bench(images: torch.Tensor, removed: torch.Tensor, repeats: int, noise: float) -> dict[str, float]:
    batch = len(images)
    impute("direct", images[:1], removed[:1], noise)
    impute("multigrid", images, removed, noise)
    times: dict[str, list[float]] = {s: [] for s in SOLVERS}
    outputs: dict[str, torch.Tensor] = {}
    for repeat in range(repeats):
        for solver in SOLVERS if repeat % 2 == 0 else reversed(SOLVERS):
            seconds, outputs[solver] = impute(solver, images, removed, noise)
            times[solver].append(seconds / batch)
    direct, multigrid = (statistics.median(times[s]) for s in SOLVERS)
    return {
        "direct_s_per_image": direct,
        "multigrid_s_per_image": multigrid,
        "ratio_multigrid_over_direct": multigrid / direct,
        "max_abs_diff": float((outputs["direct"] - outputs["multigrid"]).abs().max()),
        "direct_times": times["direct"],
        "multigrid_times": times["multigrid"],
        "max_rss_gib_so_far": max_rss_gib(),
        "loadavg_1min_after": os.getloadavg()[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 224])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4, 16, 64, 256, 1024])
    parser.add_argument(
        "--fractions", type=fraction_arg, nargs="+", default=[10, 50, 90], help="removed pixels (%%) or 'road'"
    )
    parser.add_argument("--maps", nargs="+", choices=["smooth", "random"], default=["smooth"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--noise", type=float, default=0.01)
    parser.add_argument("--max-pixels", type=int, default=256 * 224 * 224, help="skip larger batch x H x W")
    parser.add_argument("--output", type=Path, default=ROOT / "outputs/bench/road_solvers.json")
    args = parser.parse_args()
    load_before = os.getloadavg()

    configs = [
        (size, kind, fraction, batch)
        for size in args.sizes
        for kind in args.maps
        for fraction in args.fractions
        for batch in sorted(args.batches)
        if batch * (len(ROAD_KEYS) if fraction == "road" else 1) * size * size <= args.max_pixels
    ]
    results, pool = [], {}
    for size, kind, fraction, batch in tqdm(configs, desc="road solvers"):
        if size not in pool:
            pool = {size: scenes(max(b for s, _, _, b in configs if s == size), size)}
        generator = torch.Generator().manual_seed(0)
        removed = removal(maps(batch, size, kind, generator), fraction, generator)
        images = pool[size][:batch].repeat(len(removed) // batch, 1, 1, 1)
        row = {"size": size, "maps": kind, "fraction": fraction, "images": batch, "batch": len(removed)}
        results.append(row | bench(images, removed, args.repeats, args.noise))

    report = {
        "machine": {
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "cpu": cpu_model(),
            "python": platform.python_version(),
            # Other jobs on the machine distort the timings: check these are near 0 and 2 (threads).
            "loadavg_1_5_15_before": load_before,
            "loadavg_1_5_15_after": os.getloadavg(),
        },
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "results": results,
        "summary": {
            f"{r['size']}px {r['maps']} {r['fraction']}% b{r['batch']}": round(r["ratio_multigrid_over_direct"], 3)
            for r in results
        },
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    header = ("size", "maps", "frac", "batch", "direct s/img", "mg s/img", "ratio", "diff")
    print(" ".join(f"{h:>{w}}" for h, w in zip(header, (4, 6, 4, 5, 12, 10, 6, 8))))
    for r in results:
        print(
            f"{r['size']:>4} {r['maps']:>6} {r['fraction']:>4} {r['batch']:>5} {r['direct_s_per_image']:>12.5f}"
            f" {r['multigrid_s_per_image']:>10.5f} {r['ratio_multigrid_over_direct']:>6.2f} {r['max_abs_diff']:>8.1e}"
        )
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
