"""Reference runner benchmark on this machine's CPU.

* `flops_ratio_vs_matmul`: achieved FLOP/s of a denoiser forward (analytic FLOPs / time)
  over that of one plain torch matmul of comparable size (tokens x dim times dim x ffn),
  measured in the same run; for tiny-cpu and a depth-truncated wan-1.3b-shape. The figure
  is the lower of the two.
* `cache_speedup`, `cache_quality_delta`: tiny-cpu clips over several seeds with TeaCache
  at two thresholds against the uncached run of the same seed: denoiser forwards saved
  (forwards run uncached / cached), the wall-time ratio, and the largest change of a gate
  score (flicker, SSIM, 1 - trajectory error), averaged over seeds.
* `plan_memory_error`: the largest relative error of the planner's predicted peak memory
  (weights + widest block phase + context) against the measured resident peak of one
  CFG-batched denoiser forward, each measured in a fresh process.
* `usable_share`: tiny-cpu clips over 20 seeds (prompts rotating) that pass the gate,
  shape check included (`usable_share_without_shape`: those that pass every other check).
* `plan_public_memory_error`, `plan_public_time_error`: the largest relative errors of the
  planner's whole-pipeline peak memory and time per clip over the public runs it is held
  to (``inference.pipeline.PUBLIC_RUNS``, sources in docs/inference.md).

    .venv/bin/python bench/runner.py [--seeds 20] [--cache-seeds 6]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch

from inference.model import backend_resolve
from inference.pipeline import PUBLIC_RUNS, public_errors, public_scaling
from inference.runner import RunOptions, bundle_for, run_clip
from inference.scenes import all_prompts
from inference.shapes import flops_per_forward, memory_estimate, shape_get, token_count
from inference.weights import bundle_random

MEMORY_CASES = [  # (preset, frames, height, width)
    ("tiny-cpu", 17, 256, 256),
    ("wan-1.3b-shape-L2", 17, 128, 256),
    ("wan-1.3b-shape-L2", 33, 256, 256),
    ("wan-14b-shape-L1", 17, 128, 128),
]
FLOPS_CASES = [("tiny-cpu", 17, 64, 64), ("wan-1.3b-shape-L2", 17, 128, 256)]


def _timed(fn, repeat: int) -> float:
    fn()  # warm-up
    started = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - started) / repeat


def flops_case(preset: str, frames: int, height: int, width: int) -> dict[str, float]:
    shape = shape_get(preset)
    tokens = token_count(frames, height, width)
    bundle = bundle_random(shape, seed=0, device=torch.device("cpu"), dtype=torch.float32)
    grid = (1 + (frames - 1) // 4, height // 8, width // 8)
    x = torch.randn(2, shape.latent_channels, *grid)
    t = torch.full((2,), 500.0)
    context = torch.randn(2, shape.text_len, shape.text_dim)
    repeat = 20 if tokens < 200 else 3
    with torch.no_grad():
        model_s = _timed(lambda: bundle.dit(x, t, context), repeat)
        a = torch.randn(2 * tokens, shape.dim)
        b = torch.randn(shape.dim, shape.ffn_dim)
        matmul_s = _timed(lambda: a @ b, repeat * 5)
    model_flops = flops_per_forward(shape, tokens, batch=2) / model_s
    matmul_flops = 2 * 2 * tokens * shape.dim * shape.ffn_dim / matmul_s
    return {
        "preset": preset,
        "tokens": tokens,
        "model_gflops": model_flops / 1e9,
        "matmul_gflops": matmul_flops / 1e9,
        "ratio": model_flops / matmul_flops,
    }


def memory_probe(preset: str, frames: int, height: int, width: int) -> None:
    """In a fresh process: build the denoiser and run one CFG-batched forward; print the
    resident peak above the level before, and the prediction."""
    from inference.measure import PeakMemory
    from inference.model import VideoDiT

    torch.set_num_threads(2)
    shape = shape_get(preset)
    tokens = token_count(frames, height, width)
    grid = (1 + (frames - 1) // 4, height // 8, width // 8)
    backend = backend_resolve(
        "auto", device=torch.device("cpu"), dtype=torch.float32, head_dim=shape.head_dim
    )
    # Run every kernel once on a throw-away model first, so code the runtime loads or
    # JIT-compiles on first use (oneDNN convolutions, attention) is in the baseline.
    from inference.shapes import Shape

    warm = Shape("warm-up", dim=64, ffn_dim=128, heads=2, layers=1, text_dim=16, text_len=4)
    with torch.no_grad():
        VideoDiT(warm)(torch.randn(2, 16, 2, 4, 4), torch.full((2,), 500.0), torch.randn(2, 4, 16))
    with torch.no_grad(), PeakMemory(torch.device("cpu")) as peak:
        dit = VideoDiT(shape).eval()
        x = torch.randn(2, shape.latent_channels, *grid)
        context = torch.randn(2, shape.text_len, shape.text_dim)
        out = dit(x, torch.full((2,), 500.0), context)
        del out
    predicted = memory_estimate(shape, tokens, dtype_bytes=4, batch=2, attention=backend)
    input_bytes = (x.numel() + context.numel()) * 4
    print(json.dumps({
        "preset": preset, "tokens": tokens, "backend": backend,
        "measured_bytes": peak.rss_rise_bytes,
        "predicted_bytes": predicted.peak_bytes + input_bytes,
    }))  # fmt: skip


def memory_cases() -> list[dict[str, float]]:
    results = []
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0"}
    for case in MEMORY_CASES:
        command = [sys.executable, __file__, "--memory-probe", *map(str, case)]
        out = subprocess.run(command, capture_output=True, text=True, env=env, check=True, cwd=ROOT)  # noqa: S603
        row = json.loads(out.stdout.strip().splitlines()[-1])
        row["error"] = abs(row["predicted_bytes"] - row["measured_bytes"]) / row["measured_bytes"]
        results.append(row)
    return results


def gate_scores(report: dict) -> dict[str, float]:
    q = report["quality"]
    return {"flicker": q["flicker"], "ssim": q["ssim"], "trajectory": 1 - q["trajectory_error"]}


def cache_cases(seeds: int, thresholds: tuple[float, ...]) -> list[dict[str, float]]:
    prompts = all_prompts()
    options = RunOptions()
    bundle = bundle_for(options, torch.device("cpu"), torch.float32)
    baseline = {}
    for seed in range(seeds):
        prompt = prompts[(seed * 7) % len(prompts)].text
        baseline[seed] = run_clip(RunOptions(prompt=prompt, seed=seed), bundle=bundle).report
    rows = []
    for threshold in thresholds:
        forwards_ratio, time_ratio, deltas, agree = [], [], [], 0
        for seed in range(seeds):
            prompt = prompts[(seed * 7) % len(prompts)].text
            cached = run_clip(
                RunOptions(prompt=prompt, seed=seed, cache=f"teacache:{threshold}"), bundle=bundle
            ).report
            plain = baseline[seed]
            forwards_ratio.append(plain["forwards_run"] / cached["forwards_run"])
            time_ratio.append(
                plain["phase_times_s"]["denoise_s"] / cached["phase_times_s"]["denoise_s"]
            )
            a, b = gate_scores(plain), gate_scores(cached)
            deltas.append(max(abs(a[k] - b[k]) for k in a))
            agree += plain["usable"] == cached["usable"]
        rows.append({
            "threshold": threshold,
            "forwards_speedup": statistics.mean(forwards_ratio),
            "time_speedup": statistics.mean(time_ratio),
            "quality_delta": statistics.mean(deltas),
            "quality_delta_max": max(deltas),
            "verdict_agreement": agree / seeds,
        })  # fmt: skip
    return rows


def usable_share(seeds: int) -> tuple[float, float, float]:
    prompts = all_prompts()
    bundle = bundle_for(RunOptions(), torch.device("cpu"), torch.float32)
    usable, shape_only, seconds = 0, 0, []
    for seed in range(seeds):
        started = time.perf_counter()
        report = run_clip(
            RunOptions(prompt=prompts[(seed * 5) % len(prompts)].text, seed=100 + seed),
            bundle=bundle,
        ).report
        seconds.append(time.perf_counter() - started)
        usable += bool(report["usable"])
        shape_only += report["quality"]["failed"] == ["shape"]
    return usable / seeds, (usable + shape_only) / seeds, statistics.median(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--cache-seeds", type=int, default=6)
    parser.add_argument("--memory-probe", nargs=4, metavar=("PRESET", "FRAMES", "HEIGHT", "WIDTH"))
    args = parser.parse_args()
    if args.memory_probe:
        preset, *sizes = args.memory_probe
        memory_probe(preset, *map(int, sizes))
        return
    torch.set_num_threads(2)

    print("achieved FLOP/s, denoiser vs plain matmul (CPU, float32, CFG batch 2):", flush=True)
    flops = [flops_case(*case) for case in FLOPS_CASES]
    for row in flops:
        print(f"  {row['preset']:<20} {row['tokens']:>5} tokens  model {row['model_gflops']:6.1f} GFLOP/s"
              f"  matmul {row['matmul_gflops']:6.1f} GFLOP/s  ratio {row['ratio']:.2f}")  # fmt: skip

    print("peak memory, predicted vs measured (one forward, fresh process each):", flush=True)
    memory = memory_cases()
    for row in memory:
        print(f"  {row['preset']:<20} {row['tokens']:>5} tokens ({row['backend']})  predicted "
              f"{row['predicted_bytes'] / 2**20:7.1f} MiB  measured {row['measured_bytes'] / 2**20:7.1f} MiB"
              f"  error {row['error']:.3f}")  # fmt: skip

    print(f"tiny-cpu clips passing the gate over {args.seeds} seeds:", flush=True)
    share, share_without_shape, clip_s = usable_share(args.seeds)
    print(f"  {share:.0%} usable ({share_without_shape:.0%} without the shape check), "
          f"median {clip_s:.2f} s per clip")  # fmt: skip

    public_memory, public_time = public_errors()
    print("planner against the public runs (largest relative error):")
    for run in PUBLIC_RUNS:
        est = run.estimate()
        took = f"{est.seconds:,.0f} s vs {run.seconds:,.0f} s" if run.seconds else "no time"
        print(f"  {run.pipeline:<14} {run.gpu:<10} {run.width}x{run.height}x{run.frames}  "
              f"{est.peak_bytes_per_gpu / 1e9:5.1f} GB vs {run.peak_gb or '-'} GB  {took}"
              f"{'  (sets ' + run.sets + ')' if run.sets else ''}")  # fmt: skip
    print(f"  memory {public_memory:.3f}, time {public_time:.3f}")
    scaling = public_scaling()
    for row in scaling:
        print(
            f"  {row['pipeline']:<14} {row['gpus']} x {row['gpu']:<10} speedup planned "
            f"{row['planned_speedup']} vs public {row['public_speedup']} ({row['source']})"
        )

    print(
        f"TeaCache on tiny-cpu over {args.cache_seeds} seeds (vs uncached, same seed):", flush=True
    )
    cache = cache_cases(args.cache_seeds, (0.05, 0.1))
    for row in cache:
        print(f"  teacache:{row['threshold']:<5} forwards x{row['forwards_speedup']:.2f}  time x{row['time_speedup']:.2f}"
              f"  quality delta {row['quality_delta']:.4f} (max {row['quality_delta_max']:.4f})"
              f"  same verdict {row['verdict_agreement']:.0%}")  # fmt: skip
    best = max(
        (r for r in cache if r["quality_delta"] <= 0.01),
        key=lambda r: r["forwards_speedup"],
        default=cache[0],
    )

    figures = {
        "bench": "runner",
        "flops_ratio_vs_matmul": round(min(r["ratio"] for r in flops), 3),
        "flops_ratio_vs_matmul_by_preset": {r["preset"]: round(r["ratio"], 3) for r in flops},
        "cache_threshold": best["threshold"],
        "cache_speedup": round(best["forwards_speedup"], 3),
        "cache_time_speedup": round(best["time_speedup"], 3),
        "cache_quality_delta": round(best["quality_delta"], 4),
        "cache_by_threshold": cache,
        "plan_memory_error": round(max(r["error"] for r in memory), 3),
        "usable_share": share,
        "usable_share_without_shape": share_without_shape,
        "plan_public_memory_error": round(public_memory, 3),
        "plan_public_time_error": round(public_time, 3),
        "plan_public_scaling_error": max(r["error"] for r in scaling),
        "clip_seconds_median": round(clip_s, 2),
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
