"""`soak`: sustained load for N minutes. Burst benchmarks hide throttling; a soak compares
the throughput of the whole run with its first minute and, where NVML is present, records
SM clock, temperature, power and clocks-event (throttle) reasons over time."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import torch

from inference.measure import device_describe
from inference.runner import RunOptions, bundle_for, device_pick, dtype_pick, run_clip


def _nvml_reader(device: torch.device) -> Callable[[], dict[str, Any]] | None:
    """Reads the device's clocks, temperature, power and clocks-event reasons through the
    collectors' NVML source (the same fields the host agent sends); None without NVML."""
    if device.type != "cuda":
        return None
    try:
        from collectors.nvml import NvmlSource

        source = NvmlSource()
        source.open()
    except Exception:
        return None
    uuid = device_describe(device).get("uuid")

    def read() -> dict[str, Any]:
        samples = source.sample()
        mine = next((s for s in samples if s.gpu_uuid == uuid), None)
        if mine is None:
            return {}
        fields = ("sm_clock_mhz", "sm_clock_max_mhz", "temp_c", "power_w", "clocks_event_reasons")
        return {k: v for k, v in mine.as_json().items() if k in fields}

    return read


def soak(
    options: RunOptions, minutes: float, progress: Callable[[float, int], None] | None = None
) -> dict[str, Any]:
    """Run clips back to back for ``minutes``; throughput in denoising steps per second."""
    if minutes <= 0:
        raise ValueError(f"--minutes must be positive, got {minutes}")
    device = device_pick(options.device)
    bundle = bundle_for(options, device, dtype_pick(options.dtype, device))
    read_nvml = _nvml_reader(device)
    started = time.perf_counter()
    deadline = started + minutes * 60
    clips: list[dict[str, Any]] = []
    samples: list[dict[str, Any]] = []
    seed = options.seed
    while time.perf_counter() < deadline:
        result = run_clip(replace(options, seed=seed, out=None), bundle=bundle, write=False)
        elapsed = time.perf_counter() - started
        report = result.report
        clips.append(
            {
                "t_s": round(elapsed, 2),
                "steps": report["steps"],
                "denoise_s": report["phase_times_s"]["denoise_s"],
                "usable": report["usable"],
            }
        )
        if read_nvml:
            samples.append({"t_s": round(elapsed, 2), **read_nvml()})
        seed += 1
        if progress:
            progress(elapsed, len(clips))
    first = [c for c in clips if c["t_s"] <= 60] or clips[:1]

    def rate(chunk: list[dict[str, Any]]) -> float:
        return sum(c["steps"] for c in chunk) / sum(c["denoise_s"] for c in chunk)

    sustained, first_minute = rate(clips), rate(first)
    return {
        "preset": options.preset,
        "device": str(device),
        "minutes": minutes,
        "clips": len(clips),
        "usable_share": (
            sum(1 for c in clips if c["usable"]) / len(clips)
            if clips and clips[0]["usable"] is not None
            else None
        ),
        "first_minute_steps_per_s": first_minute,
        "sustained_steps_per_s": sustained,
        "sustained_vs_first_minute": sustained / first_minute,
        "nvml": samples or None,
        "nvml_note": None
        if read_nvml
        else "NVML not available: clocks and throttling not recorded",
        "timeline": clips,
    }
