"""The default alert rules (DESIGN: throttling alerts with a `for` duration and hysteresis),
created by a data migration and editable in the admin and API; the Prometheus rules that
``manage.py export_prometheus_rules`` writes use the same thresholds and durations."""

from __future__ import annotations

from typing import Any

DEFAULT_RULES: list[dict[str, Any]] = [
    {"name": "Thermal throttling", "kind": "thermal_throttling", "threshold": 0.05,
     "resolve_threshold": 0.02, "for_s": 300, "severity": "warning",
     "params": {"window_s": 300, "share": "busy time with reasons 0x8, 0x20, 0x40"}},
    {"name": "Power capping", "kind": "power_capping", "threshold": 0.10,
     "resolve_threshold": 0.05, "for_s": 600, "severity": "warning",
     "params": {"window_s": 600, "share": "busy time with reasons 0x4, 0x80"}},
    {"name": "Memory pressure", "kind": "memory_pressure", "threshold": 0.20,
     "resolve_threshold": 0.10, "for_s": 900, "severity": "warning",
     "params": {"window_s": 900, "share": "busy time at >= 92% of VRAM"}},
    # Memory held, nothing computed: every covered minute of a 10-minute window, for 20
    # minutes more (30 minutes in all, as INSIGHTS_THRESHOLDS' idle_held_minutes); resolves
    # once under half of the window is idle-held.
    {"name": "Idle-held GPU", "kind": "idle_held", "threshold": 1.0, "resolve_threshold": 0.5,
     "for_s": 1200, "severity": "warning",
     "params": {"window_s": 600, "mem_frac": 0.10,
                "share": "covered time with memory >= 10% of VRAM and no SM activity"}},
    {"name": "Telemetry stale", "kind": "telemetry_stale", "threshold": 300,
     "resolve_threshold": 120, "for_s": 0, "severity": "critical",
     "params": {"unit": "seconds since the GPU was last seen"}},
    {"name": "Budget forecast", "kind": "budget", "threshold": 0.80, "resolve_threshold": 0.75,
     "for_s": 0, "severity": "warning", "repeat_interval_s": 86400,
     "params": {"measure": "forecast"}},
    {"name": "Budget exceeded", "kind": "budget", "threshold": 1.00, "resolve_threshold": 0.95,
     "for_s": 0, "severity": "critical", "repeat_interval_s": 86400,
     "params": {"measure": "actual"}},
]  # fmt: skip
