"""Latency of ``TTAME.explain`` against one plain backbone forward on the same batch.

    python benchmarks/latency.py [--backbones resnet50 vgg16 vit_b_16] [--batch 4] [--repeats 11] [--device cpu]

Both are timed in the same run, interleaved (alternating which goes first) so machine
load affects them alike; the reported ratio is the median of the per-pair ratios
explain / plain (the ratio of the two medians is recorded too). Results go to
outputs/bench/latency.json and outputs/bench/latency.md. Target (issue 2): ratio <= 1.2.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from ttame_lib import TTAME, __version__, load_backbone

ROOT = Path(__file__).resolve().parents[1]
TARGET_RATIO = 1.2


def timed(fn, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def bench_backbone(name: str, batch: int, repeats: int, device: torch.device) -> dict:
    backbone = load_backbone(name, device=device)
    explainer = TTAME(backbone)
    images = torch.rand(batch, 3, *backbone.input_size, generator=torch.Generator().manual_seed(0)).to(device)

    def plain():
        with torch.no_grad():
            backbone(images)

    def explain():
        explainer.explain(images)

    plain(), explain()  # warm-up (allocator, oneDNN kernels)
    plain_times, explain_times = [], []
    for repeat in range(repeats):
        # Alternate which goes first so neither always runs on a warmer cache.
        order = [(plain, plain_times), (explain, explain_times)]
        for fn, times in order if repeat % 2 == 0 else reversed(order):
            times.append(timed(fn, device))
    explainer.close()
    plain_ms = 1000 * statistics.median(plain_times)
    explain_ms = 1000 * statistics.median(explain_times)
    # Each (plain, explain) pair runs back to back, so the median of per-pair ratios cancels
    # slow drifts in machine load that a ratio of two medians would absorb.
    ratio = statistics.median(e / p for p, e in zip(plain_times, explain_times))
    return {
        "backbone": name,
        "layers": explainer.layers,
        "batch": batch,
        "plain_forward_ms": round(plain_ms, 2),
        "explain_ms": round(explain_ms, 2),
        "explain_per_image_ms": round(explain_ms / batch, 2),
        "ratio": round(ratio, 3),
        "ratio_of_medians": round(explain_ms / plain_ms, 3),
        "target_ratio": TARGET_RATIO,
        "meets_target": ratio <= TARGET_RATIO,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbones", nargs="+", default=["resnet50", "vgg16", "vit_b_16"])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=11)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "bench")
    args = parser.parse_args()
    device = torch.device(args.device)
    results = []
    for name in args.backbones:
        result = bench_backbone(name, args.batch, args.repeats, device)
        results.append(result)
        print(
            f"{name:12s} plain {result['plain_forward_ms']:8.1f} ms  explain {result['explain_ms']:8.1f} ms  "
            f"ratio {result['ratio']:.3f} (target <= {TARGET_RATIO})",
            flush=True,
        )
    report = {
        "benchmark": "explain latency vs one plain backbone forward",
        "ttame_lib": __version__,
        "torch": torch.__version__,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "machine": platform.machine(),
        "processor": platform.processor() or platform.platform(),
        "results": results,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "latency.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        f"| backbone | batch | plain forward (ms) | explain (ms) | ratio | target <= {TARGET_RATIO} |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['backbone']} | {r['batch']} | {r['plain_forward_ms']} | {r['explain_ms']} | {r['ratio']} | "
            f"{'yes' if r['meets_target'] else 'no'} |"
        )
    (args.out / "latency.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out / 'latency.json'} and latency.md")


if __name__ == "__main__":
    main()
