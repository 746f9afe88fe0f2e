"""One generation job: encode the prompt, denoise, decode, judge, report.

The report (JSON) carries what DESIGN.md lists for a job: preset, device, dtype, tokens,
steps run and skipped, phase times, step p50/p95, peak memory, predicted vs measured
attention memory, analytic FLOPs and achieved FLOP/s (MFU on a GPU), cache hit rate,
quality and the usable verdict.
"""

from __future__ import annotations

import json
import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from inference.measure import PeakMemory, device_describe
from inference.model import attention_backend, backend_resolve
from inference.quality import judge
from inference.sampler import CacheConfig, sample
from inference.scenes import prompt_parse
from inference.shapes import DTYPE_BYTES, Shape, flops_per_forward, latent_grid, shape_get
from inference.weights import Bundle, bundle_load, bundle_random

TINY_DEFAULTS = {"steps": 30, "guidance": 4.0, "shift": 3.0, "height": 64, "width": 64}
SHAPE_DEFAULTS = {"steps": 10, "guidance": 5.0, "shift": 3.0, "height": 128, "width": 128}
FPS = 8.0  # of the tiny preset's clips (Wan 2.1 renders 16)


@dataclass
class RunOptions:
    preset: str = "tiny-cpu"
    prompt: str = "red circle moving right"
    frames: int = 17
    height: int | None = None
    width: int | None = None
    steps: int | None = None
    seed: int = 1
    guidance: float | None = None
    shift: float | None = None
    cfg: str = "batched"
    cache: str = "none"
    max_skips: int = 3
    attention: str = "auto"
    device: str = "auto"
    dtype: str | None = None
    weights: Path | None = None
    out: Path | None = None


@dataclass
class RunResult:
    report: dict[str, Any]
    video: np.ndarray | None = None
    paths: list[Path] = field(default_factory=list)
    bundle: Bundle | None = None


def device_pick(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA device is visible to PyTorch")
    return device


def dtype_pick(name: str | None, device: torch.device) -> torch.dtype:
    """The named dtype, or bfloat16 on a GPU and float32 on the CPU."""
    name = name or ("bfloat16" if device.type == "cuda" else "float32")
    if name not in DTYPE_BYTES:
        raise ValueError(f"--dtype must be one of {', '.join(DTYPE_BYTES)}, not {name!r}")
    dtype: torch.dtype = getattr(torch, name)
    return dtype


def bundle_for(options: RunOptions, device: torch.device, dtype: torch.dtype) -> Bundle:
    shape = shape_get(options.preset)
    if shape.trained:
        bundle = bundle_load(shape, options.weights)
        for module in (bundle.dit, bundle.vae, bundle.text):
            if module is not None:
                module.to(device=device, dtype=dtype)
        return bundle
    return bundle_random(shape, seed=options.seed, device=device, dtype=dtype)


def attention_memory(
    shape: Shape, tokens: int, batch: int, backend: str, device: torch.device, dtype: torch.dtype
) -> tuple[int, int | None]:
    """Predicted and measured extra memory of one self-attention call at the job's size:
    the output, plus for the math backend the score and probability matrices."""
    bytes_per = DTYPE_BYTES[str(dtype).removeprefix("torch.")]
    predicted = batch * tokens * shape.dim * bytes_per
    if backend == "math":
        predicted += 2 * batch * shape.heads * tokens * tokens * bytes_per
    q = torch.randn(batch, shape.heads, tokens, shape.head_dim, device=device, dtype=dtype)
    with PeakMemory(device) as peak, attention_backend(backend), torch.no_grad():
        before = torch.cuda.memory_allocated(device) if device.type == "cuda" else 0
        out = F.scaled_dot_product_attention(q, q, q)
        del out
    measured = peak.peak_bytes
    if measured is not None and device.type == "cuda":
        measured -= before
    return predicted, measured


def run_clip(
    options: RunOptions,
    *,
    bundle: Bundle | None = None,
    on_step: Callable[[int, int], None] | None = None,
    write: bool = True,
) -> RunResult:
    """Generate one clip (or, for shape presets, one denoising run) and report it."""
    queued = datetime.now(UTC)
    shape = shape_get(options.preset)
    defaults = TINY_DEFAULTS if shape.trained else SHAPE_DEFAULTS
    steps = options.steps if options.steps is not None else int(defaults["steps"])
    guidance = options.guidance if options.guidance is not None else float(defaults["guidance"])
    shift = options.shift if options.shift is not None else float(defaults["shift"])
    height = options.height if options.height is not None else int(defaults["height"])
    width = options.width if options.width is not None else int(defaults["width"])
    if shape.trained and (height, width) != (64, 64):
        raise ValueError("tiny-cpu was trained at 64x64: --height and --width must be 64")
    grid = latent_grid(options.frames, height, width)
    cache = CacheConfig.parse(options.cache, options.max_skips)
    device = device_pick(options.device)
    dtype = dtype_pick(options.dtype, device)
    dtype_name = str(dtype).removeprefix("torch.")
    prompt = prompt_parse(options.prompt) if shape.trained else None
    backend = backend_resolve(
        options.attention, device=device, dtype=dtype, head_dim=shape.head_dim
    )

    started = datetime.now(UTC)
    phases: dict[str, float] = {}
    with PeakMemory(device) as peak, attention_backend(backend), torch.no_grad():
        t0 = time.perf_counter()
        bundle = bundle or bundle_for(options, device, dtype)
        phases["load_s"] = time.perf_counter() - t0
        generator = torch.Generator(device="cpu").manual_seed(options.seed)
        t0 = time.perf_counter()
        if bundle.text is not None:
            ids = torch.tensor(
                [bundle.text.ids(options.prompt), [0] * shape.text_len], device=device
            )
            context, uncond = bundle.text(ids).to(dtype).chunk(2)
        else:
            both = torch.randn(2, shape.text_len, shape.text_dim, generator=generator)
            context, uncond = both.to(device=device, dtype=dtype).chunk(2)
        phases["encode_s"] = _synced(device, t0)
        noise = torch.randn(1, shape.latent_channels, *grid, generator=generator)
        t0 = time.perf_counter()
        with peak.untraced():
            latents, stats = sample(
                bundle.dit,
                noise.to(device=device, dtype=dtype),
                context=context,
                uncond_context=uncond,
                steps=steps,
                shift=shift,
                guidance=guidance,
                cfg=options.cfg,
                cache=cache,
                on_step=(lambda i: on_step(i + 1, steps)) if on_step else None,
            )
        phases["denoise_s"] = _synced(device, t0)
        t0 = time.perf_counter()
        video = None
        if bundle.vae is not None:
            decoded = bundle.vae.decode(latents.float() if dtype != torch.float32 else latents)
            video = ((decoded[0].permute(1, 2, 3, 0).float().cpu().numpy() + 1) * 127.5).round()
            video = video.clip(0, 255).astype(np.uint8)
        phases["decode_s"] = _synced(device, t0)
    finished = datetime.now(UTC)

    tokens = grid[0] * (grid[1] // 2) * (grid[2] // 2)
    batch = 2 if options.cfg == "batched" and guidance != 1.0 else 1
    per_forward = flops_per_forward(shape, tokens)
    flops = per_forward * stats.blocks_run / max(stats.blocks_total, 1) * stats.forwards
    described = device_describe(device)
    achieved = flops / phases["denoise_s"] if phases["denoise_s"] > 0 else None
    peak_tflops = described.get("bf16_dense_tflops")
    peak_tflops = float(peak_tflops) if isinstance(peak_tflops, int | float) else None
    predicted_attn, measured_attn = attention_memory(shape, tokens, batch, backend, device, dtype)
    verdict = judge(video, prompt) if video is not None else None
    skipped = stats.forwards - stats.stack_runs
    report: dict[str, Any] = {
        "run_id": str(uuid.uuid4()),
        "preset": shape.name,
        "weights": bundle.metadata,
        "prompt": options.prompt if shape.trained else None,
        "seed": options.seed,
        "device": described,
        "dtype": dtype_name,
        "attention_backend": backend,
        "frames": options.frames,
        "height": height,
        "width": width,
        "fps": FPS,
        "latent_grid": list(grid),
        "tokens": tokens,
        "cfg": options.cfg if guidance != 1.0 else "off",
        "guidance": guidance,
        "shift": shift,
        "steps": steps,
        "denoiser_forwards": stats.forwards,
        "forwards_run": stats.stack_runs,
        "forwards_skipped": skipped,
        "cache": cache.label,
        "cache_hit_rate": (skipped / stats.forwards) if stats.forwards else 0.0,
        "cache_hit_rate_by_branch": stats.hit_rates(),
        "phase_times_s": phases,
        "step_p50_s": statistics.median(stats.step_times_s),
        "step_p95_s": float(np.percentile(stats.step_times_s, 95)),
        "peak_memory": {
            "allocated_bytes": peak.allocated_bytes,
            "reserved_bytes": peak.reserved_bytes,
            "rss_peak_bytes": peak.rss_peak_bytes,
            "rss_rise_bytes": peak.rss_rise_bytes,
            "tracemalloc_peak_bytes": peak.tracemalloc_peak_bytes,
        },
        "attention_memory": {"predicted_bytes": predicted_attn, "measured_bytes": measured_attn},
        "flops_per_forward": per_forward,
        "flops": flops,
        "achieved_flops_per_s": achieved,
        "mfu": (achieved / (peak_tflops * 1e12)) if achieved and peak_tflops else None,
        "quality": verdict.as_dict() if verdict else None,
        "usable": verdict.usable if verdict else None,
        "queued_at": queued.isoformat(),
        "started_at": started.isoformat(),
        "finished_at": finished.isoformat(),
        "compute_seconds": sum(phases.values()),
        "options": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(options).items()},
    }
    result = RunResult(report, video, bundle=bundle)
    if write and options.out:
        result.paths = outputs_write(options.out, report, video)
    return result


def cache_compare(cached: RunResult, options: RunOptions) -> dict[str, Any]:
    """Run the same seed uncached and compare: forwards saved, denoise speed-up, the mean
    absolute pixel difference (0..1) and the change of each gate score."""
    uncached = replace(options, cache="none", out=None)
    plain = run_clip(uncached, bundle=cached.bundle, write=False)
    a, b = plain.report, cached.report
    comparison: dict[str, Any] = {
        "uncached_forwards_run": a["forwards_run"],
        "forwards_speedup": a["forwards_run"] / max(b["forwards_run"], 1),
        "denoise_speedup": a["phase_times_s"]["denoise_s"] / b["phase_times_s"]["denoise_s"],
        "uncached_usable": a["usable"],
    }
    if plain.video is not None and cached.video is not None:
        difference = np.abs(plain.video.astype(float) - cached.video.astype(float))
        comparison["pixel_mae"] = float(difference.mean() / 255)
        qa, qb = a["quality"], b["quality"]
        comparison["quality_delta"] = {
            k: (qb[k] - qa[k]) if qa[k] is not None else None
            for k in ("flicker", "ssim", "trajectory_error", "quality_score")
        }
    return comparison


def _synced(device: torch.device, t0: float) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - t0


def outputs_write(out: Path, report: dict[str, Any], video: np.ndarray | None) -> list[Path]:
    """Frames as PNG, the clip as an animated GIF, and report.json."""
    from PIL import Image

    out.mkdir(parents=True, exist_ok=True)
    paths = []
    if video is not None:
        images = [
            Image.fromarray(frame).resize((256, 256), Image.Resampling.NEAREST) for frame in video
        ]
        for i, image in enumerate(images):
            path = out / f"frame_{i:03d}.png"
            image.save(path)
            paths.append(path)
        gif = out / "clip.gif"
        images[0].save(
            gif, save_all=True, append_images=images[1:], duration=int(1000 / FPS), loop=0
        )
        paths.append(gif)
    path = out / "report.json"
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    paths.append(path)
    return paths
