"""Reporting a run to FrameOps through the public job API, as any render farm does."""

from __future__ import annotations

from typing import Any

import requests

SOURCE = "frameops-runner"


class ReportError(RuntimeError):
    pass


def job_event(
    report: dict[str, Any], *, team: str, project: str = "", clip_id: str | None = None
) -> dict[str, Any]:
    """The job event (DESIGN.md "Public contract") for a run report."""
    device = report["device"]
    quality = report.get("quality") or {}
    memory = report["peak_memory"]
    event: dict[str, Any] = {
        "source": SOURCE,
        "external_id": report["run_id"],
        "team": team,
        "project": project,
        "model": report["preset"],
        "model_version": _model_version(report["weights"]),
        "status": "succeeded",
        "queued_at": report["queued_at"],
        "started_at": report["started_at"],
        "finished_at": report["finished_at"],
        "frames": report["frames"],
        "fps": report["fps"],
        "width": report["width"],
        "height": report["height"],
        "steps": report["steps"],
        "usable": report.get("usable"),
        "quality_score": quality.get("quality_score"),
        "step_time_s": report["phase_times_s"]["denoise_s"] / report["steps"],
        "cache_hit_rate": report["cache_hit_rate"],
        "peak_vram_bytes": memory.get("allocated_bytes"),
        "compute_device": device["name"] if device["type"] == "cuda" else "cpu",
        "compute_seconds": report["compute_seconds"],
    }
    if clip_id:
        event["clip_id"] = clip_id
    if device["type"] == "cuda" and device.get("uuid"):
        event["gpus"] = [
            {"uuid": device["uuid"], "start": report["started_at"], "end": report["finished_at"]}
        ]
    return event


def _model_version(weights: dict[str, str]) -> str:
    if weights.get("weights") == "random":
        return "random-weights"
    return f"seed-{weights['seed']}" if "seed" in weights else ""


def job_post(
    event: dict[str, Any], *, url: str, key: str, timeout_s: float = 10.0
) -> dict[str, Any]:
    """POST the event to ``url``/api/v1/jobs; the stored job, or ReportError with the
    server's message."""
    endpoint = url.rstrip("/") + "/api/v1/jobs"
    try:
        response = requests.post(
            endpoint, json=event, headers={"Authorization": f"Bearer {key}"}, timeout=timeout_s
        )
    except requests.RequestException as exc:
        raise ReportError(f"could not reach {endpoint}: {exc}") from exc
    if response.status_code >= 400:
        try:
            detail = response.json()
        except ValueError:
            detail = response.text[:300]
        raise ReportError(f"{endpoint} answered {response.status_code}: {detail}")
    body: dict[str, Any] = response.json()
    return body
