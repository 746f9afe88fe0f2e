"""Prometheus alerting rules with FrameOps' default conditions over dcgm-exporter's
metrics, for teams that alert in Prometheus/Alertmanager: the same thresholds and ``for``
durations as the default rules (``finops.alerts.defaults``).

Throttling comes from the ``*_VIOLATION`` counters that ``deploy/dcgm-exporter/counters.csv``
enables (microseconds throttled: their rate over the window / 1e6 is the throttled share
of wall time), memory pressure from FB_USED / (FB_USED + FB_FREE) sampled each minute,
stale telemetry from the exporter's ``up`` and from absent GPU series."""

from __future__ import annotations

from typing import Any

import yaml

from finops.alerts.defaults import DEFAULT_RULES

JOB = "dcgm"  # the scrape job of deploy/prometheus/prometheus.yml


def _rule(kind: str) -> dict[str, Any]:
    return next(r for r in DEFAULT_RULES if r["kind"] == kind)


def _duration(seconds: int) -> str:
    return f"{seconds // 60}m" if seconds % 60 == 0 else f"{seconds}s"


def rules_document() -> dict[str, Any]:
    thermal, power = _rule("thermal_throttling"), _rule("power_capping")
    memory, stale = _rule("memory_pressure"), _rule("telemetry_stale")
    held = _rule("idle_held")
    hw = _duration(held["params"]["window_s"])
    tw, pw, mw = (_duration(r["params"]["window_s"]) for r in (thermal, power, memory))
    gpu = "GPU {{ $labels.gpu }} ({{ $labels.UUID }}) on {{ $labels.Hostname }}"
    rules = [
        {
            "alert": "FrameOpsThermalThrottling",
            "expr": f"(rate(DCGM_FI_DEV_THERMAL_VIOLATION[{tw}]) "
            f"+ rate(DCGM_FI_DEV_RELIABILITY_VIOLATION[{tw}])) / 1e6 >= {thermal['threshold']}",
            "for": _duration(thermal["for_s"]),
            "labels": {"severity": thermal["severity"], "frameops_rule": "thermal_throttling"},
            "annotations": {
                "summary": f"{gpu} is throttling for heat",
                "description": "Throttled {{ $value | humanizePercentage }} of the last "
                f"{tw} (thermal and hardware slowdown, reasons 0x8/0x20/0x40).",
            },
        },
        {
            "alert": "FrameOpsPowerCapping",
            "expr": f"(rate(DCGM_FI_DEV_POWER_VIOLATION[{pw}]) "
            f"+ rate(DCGM_FI_DEV_BOARD_LIMIT_VIOLATION[{pw}])) / 1e6 >= {power['threshold']}",
            "for": _duration(power["for_s"]),
            "labels": {"severity": power["severity"], "frameops_rule": "power_capping"},
            "annotations": {
                "summary": f"{gpu} is power-capped",
                "description": "Capped {{ $value | humanizePercentage }} of the last "
                f"{pw} (reasons 0x4/0x80).",
            },
        },
        {
            "alert": "FrameOpsMemoryPressure",
            "expr": "avg_over_time((DCGM_FI_DEV_FB_USED / (DCGM_FI_DEV_FB_USED + "
            f"DCGM_FI_DEV_FB_FREE) >= bool 0.92)[{mw}:1m]) >= {memory['threshold']}",
            "for": _duration(memory["for_s"]),
            "labels": {"severity": memory["severity"], "frameops_rule": "memory_pressure"},
            "annotations": {
                "summary": f"{gpu} runs at its memory limit",
                "description": "At or above 92% of VRAM {{ $value | humanizePercentage }} of "
                f"the last {mw}.",
            },
        },
        {
            "alert": "FrameOpsIdleHeldGpu",
            "expr": "min_over_time((DCGM_FI_DEV_FB_USED / (DCGM_FI_DEV_FB_USED + "
            f"DCGM_FI_DEV_FB_FREE))[{hw}:1m]) >= {held['params']['mem_frac']} "
            f"and max_over_time(DCGM_FI_DEV_GPU_UTIL[{hw}]) == 0",
            "for": _duration(held["for_s"]),
            "labels": {"severity": held["severity"], "frameops_rule": "idle_held"},
            "annotations": {
                "summary": f"{gpu} holds memory and computes nothing",
                "description": "At least {{ $value | humanizePercentage }} of VRAM held with "
                f"no SM activity for {_duration(held['params']['window_s'] + held['for_s'])}: "
                "a stalled job or an orphan process.",
            },
        },
        {
            "alert": "FrameOpsTelemetryStale",
            "expr": f'up{{job="{JOB}"}} == 0',
            "for": _duration(stale["threshold"]),
            "labels": {"severity": stale["severity"], "frameops_rule": "telemetry_stale"},
            "annotations": {
                "summary": "dcgm-exporter on {{ $labels.instance }} does not answer",
                "description": f"No scrape has succeeded for {_duration(stale['threshold'])}.",
            },
        },
        {
            "alert": "FrameOpsGpuSeriesAbsent",
            "expr": f"absent_over_time(DCGM_FI_DEV_GPU_UTIL[{_duration(stale['threshold'])}])",
            "labels": {"severity": stale["severity"], "frameops_rule": "telemetry_stale"},
            "annotations": {
                "summary": "No GPU utilisation series at all",
                "description": "Prometheus holds no DCGM_FI_DEV_GPU_UTIL sample for "
                f"{_duration(stale['threshold'])}: is dcgm-exporter scraped?",
            },
        },
    ]
    return {"groups": [{"name": "frameops", "rules": rules}]}


def rules_yaml() -> str:
    header = (
        "# FrameOps alerting rules over dcgm-exporter metrics (written by\n"
        "# `manage.py export_prometheus_rules`; thresholds and `for` as FrameOps' defaults).\n"
    )
    return header + yaml.safe_dump(rules_document(), sort_keys=False, width=100)


def minute_rules_yaml() -> str:
    """Recording rules for per-GPU minute rollups inside Prometheus, Thanos or Mimir
    (``collectors.dcgm_minutes``), at this server's pull step and memory-pressure line."""
    from django.conf import settings

    from collectors.dcgm_minutes import minute_rules_document

    header = (
        "# FrameOps minute rollups recorded by Prometheus (Thanos, Mimir) over dcgm-exporter\n"
        "# series, read by the DCGM pull with DCGM_PULL_MODE=minutes (written by\n"
        "# `manage.py export_prometheus_rules --minutes`; docs/telemetry.md).\n"
        f"# Steps of {settings.DCGM_PULL_STEP_S} s (DCGM_PULL_STEP_S); memory pressure at "
        f"{settings.TELEMETRY_MEMORY_PRESSURE_FRACTION:g} of VRAM\n"
        "# (TELEMETRY_MEMORY_PRESSURE_FRACTION). A sample recorded at T holds the minute\n"
        "# [floor(T/60)*60 - 120 s, +60 s).\n"
    )
    document = minute_rules_document(
        step_s=settings.DCGM_PULL_STEP_S,
        pressure_fraction=settings.TELEMETRY_MEMORY_PRESSURE_FRACTION,
    )
    return header + yaml.safe_dump(document, sort_keys=False, width=100)
