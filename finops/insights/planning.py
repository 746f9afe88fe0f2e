"""The planner's predictions for the jobs a finding is about: the fixes that move work to
another GPU or to fewer GPUs say what the planner (``inference.pipeline``) predicts for
the jobs' own shape there, and which assumptions that rests on."""

from __future__ import annotations

from typing import Any

import pandas as pd

from inference.pipeline import Setup, estimate_scaled, gpu_entries, pipeline_for_model


def typical_shape(jobs: pd.DataFrame) -> dict[str, Any] | None:
    """The most common (model, width, height, frames, steps) of ``jobs`` that the planner
    knows, or None."""
    known = jobs[jobs["model_name"].map(lambda m: pipeline_for_model(m) is not None)]
    known = known.dropna(subset=["width", "height", "frames", "steps"])
    if not len(known):
        return None
    key = ["model_name", "width", "height", "frames", "steps"]
    top = known.groupby(key).size().sort_values(ascending=False).index[0]
    return dict(zip(key, top, strict=True))


def predicted(shape: dict[str, Any], gpu_model: str, *, gpus: int = 1,
              interconnect: str | None = None) -> dict[str, Any] | None:  # fmt: skip
    """Predicted peak memory per GPU, time per clip and scaling for ``shape`` on ``gpus``
    of ``gpu_model``; None where the planner does not know the model or the GPU."""
    pipeline = pipeline_for_model(str(shape["model_name"]))
    if pipeline is None:
        return None
    try:
        entry = gpu_entries(gpu_model)[0]
        est = estimate_scaled(
            pipeline, entry, height=int(shape["height"]), width=int(shape["width"]),
            frames=int(shape["frames"]), steps=int(shape["steps"]),
            setup=Setup(gpus=gpus, interconnect=interconnect),
        )  # fmt: skip
    except ValueError:  # an unknown GPU, a clip size the model cannot take, a GPU count
        return None
    return {
        "pipeline": pipeline.name,
        "gpu": gpu_model,
        "gpus": gpus,
        "interconnect": est.interconnect,
        "peak_gb_per_gpu": round(est.peak_bytes_per_gpu / 1e9, 1),
        "fits": est.peak_bytes_per_gpu <= entry["vram_bytes"],
        "seconds_per_clip": round(est.seconds, 1),
        "speedup": round(est.speedup, 2),
        "efficiency": round(est.efficiency, 3),
        "assumptions": est.assumptions,
    }


def shape_label(shape: dict[str, Any]) -> str:
    return (f"{shape['model_name']} {int(shape['width'])}x{int(shape['height'])}, "
            f"{int(shape['frames'])} frames, {int(shape['steps'])} steps")  # fmt: skip
