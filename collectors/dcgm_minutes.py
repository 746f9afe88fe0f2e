"""GPU minute rollups computed inside Prometheus (or Thanos, or Mimir) by recording rules
over dcgm-exporter's series, and read back as minute rows.

For fleets that already scrape dcgm-exporter, the minutes need not leave Prometheus as
raw samples: the rules of ``deploy/prometheus/frameops-minute-rules.yml`` (written by
``manage.py export_prometheus_rules --minutes``) record one series per GPU (and per pod on
a time-sliced GPU, labels kept) and column, ``frameops:gpu_<column>:1m``, and the DCGM
pull in minutes mode reads those instead of the gauges.

The rules reproduce what the raw pull gives once the server has rolled it up
(docs/telemetry.md), read at the pull's step ``step_s`` (15 s):

- Each step of a minute ``[m, m + 60)`` is read as the raw pull reads it: the last scrape
  at or before it (Prometheus' look-back), so a missed scrape is covered by the one before
  it, as the server's rollup covers it. Each step stands for ``step_s`` seconds.
- Means and maxima are over the steps; seconds (busy, memory pressure, with each
  measurement) are steps x ``step_s``; PCIe bytes are rate x ``step_s``.
- Throttled seconds per reason are the ``*_VIOLATION`` counters' increase from each step to
  the next (a counter that went back restarted from zero), at most one step each; energy is
  the energy counter's increase from each step to the next (a counter that went back books
  nothing for that step).
- ``samples`` counts the scrapes of the minute (Prometheus' own samples, not steps).

Minutes are aligned: a rule evaluated at time T (whatever phase Prometheus gives the rule
group) records the minute that ended a whole minute before the last minute boundary,
``[floor(T/60)*60 - 120, floor(T/60)*60 - 60)``, so each step's following scrape, which
the counters need, has been taken. Where in the step a scrape fell is not known: the
server's rollup of raw samples splits a scrape's interval at the minute edge, the rules
give it to the minute its step is in; with scrapes on the step grid they agree exactly.

Plain Python, no Django: ``finops.telemetry.dcgm_pull`` uses it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from collectors.dcgm import Device, PodRef, series_points
from collectors.records import RecordError
from collectors.rollups import (
    SECONDS_FIELDS,
    THROTTLE_BITS,
    GpuMinute,
    gpu_minute_from_mapping,
)

PREFIX = "frameops:gpu_"
SUFFIX = ":1m"
GROUP = "frameops-gpu-minutes"
# A sample recorded at T holds the minute starting at floor(T / 60) * 60 - RULE_DELAY_S.
RULE_DELAY_S = 120
DEFAULT_PRESSURE_FRACTION = 0.92

UTIL = "(DCGM_FI_DEV_GPU_UTIL or clamp_max(DCGM_FI_PROF_GR_ENGINE_ACTIVE * 100, 100))"
MEM_FRAC = (
    "clamp_max(DCGM_FI_DEV_FB_USED / (DCGM_FI_DEV_FB_TOTAL or (DCGM_FI_DEV_FB_USED"
    " + DCGM_FI_DEV_FB_FREE + (DCGM_FI_DEV_FB_RESERVED or DCGM_FI_DEV_FB_FREE * 0))), 1)"
)
CLOCK_RATIO = "(DCGM_FI_DEV_SM_CLOCK / (DCGM_FI_DEV_MAX_SM_CLOCK > 0))"
# A step counts as covered when it has any of these measurements.
PRESENT = (
    f"({UTIL} or DCGM_FI_DEV_FB_USED or DCGM_FI_DEV_POWER_USAGE or DCGM_FI_DEV_SM_CLOCK"
    " or DCGM_FI_DEV_GPU_TEMP)"
)
# Minute column -> the violation counter that gives it (microseconds throttled).
THROTTLE_COUNTERS = {
    "throttle_power_cap_s": "DCGM_FI_DEV_POWER_VIOLATION",
    "throttle_hw_slowdown_s": "DCGM_FI_DEV_RELIABILITY_VIOLATION",
    "throttle_sw_thermal_s": "DCGM_FI_DEV_THERMAL_VIOLATION",
    "throttle_power_brake_s": "DCGM_FI_DEV_BOARD_LIMIT_VIOLATION",
}
# Columns no dcgm-exporter counter gives: zero seconds, not unknown.
ALWAYS_ZERO = tuple(c for c in THROTTLE_BITS if c not in THROTTLE_COUNTERS)


def _steps(expr: str, aggregate: str, step_s: int) -> str:
    """``aggregate`` over the steps of the minute before the evaluation point ``P``:
    ``[P - 60, P)`` read at ``P - 60, P - 60 + step_s, ...``."""
    return f"{aggregate}(({expr})[1m:{step_s}s] offset 1ms)"


def _to_next_step(counter: str, step_s: int) -> str:
    """Each step's increase of ``counter`` to the next step (negative where it went back)."""
    return f"({counter} offset -{step_s}s) - {counter}"


def minute_rule_expressions(
    *, step_s: int = 15, pressure_fraction: float = DEFAULT_PRESSURE_FRACTION
) -> dict[str, str]:
    """Minute column -> the PromQL that gives it at an aligned minute end ``P`` (before the
    outer alignment of ``minute_rules_document``)."""
    if step_s <= 0 or 60 % step_s:
        raise ValueError(f"step_s must divide 60 seconds, got {step_s}")
    if not 0 < pressure_fraction <= 1:
        raise ValueError(f"pressure_fraction must be in (0, 1], got {pressure_fraction}")
    busy = f"({UTIL} > bool 0)"
    exprs = {
        "samples": "count_over_time(DCGM_FI_DEV_GPU_UTIL[1m] offset 1ms)"
        " or count_over_time(DCGM_FI_PROF_GR_ENGINE_ACTIVE[1m] offset 1ms)",
        "covered_s": f"{_steps(PRESENT, 'count_over_time', step_s)} * {step_s}",
        "busy_s": f"{_steps(busy, 'sum_over_time', step_s)} * {step_s}",
        "util_mean_pct": _steps(UTIL, "avg_over_time", step_s),
        "util_max_pct": _steps(UTIL, "max_over_time", step_s),
        "mem_frac_mean": _steps(MEM_FRAC, "avg_over_time", step_s),
        "mem_frac_max": _steps(MEM_FRAC, "max_over_time", step_s),
        "mem_pressure_s": _steps(
            f"{busy} * ({MEM_FRAC} >= bool {pressure_fraction:g})", "sum_over_time", step_s
        )
        + f" * {step_s}",
    }
    for column, counter in THROTTLE_COUNTERS.items():
        increase = _to_next_step(counter, step_s)
        per_step = (
            f"clamp_max(((({increase}) >= 0) or ({counter} offset -{step_s}s)) / 1e6, {step_s})"
        )
        exprs[column] = _steps(per_step, "sum_over_time", step_s)
    energy = _to_next_step("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", step_s)
    exprs |= {
        "clock_ratio_mean": _steps(CLOCK_RATIO, "avg_over_time", step_s),
        "power_mean_w": _steps("DCGM_FI_DEV_POWER_USAGE", "avg_over_time", step_s),
        "temp_max_c": _steps("DCGM_FI_DEV_GPU_TEMP", "max_over_time", step_s),
        "energy_j": _steps(f"({energy}) >= 0", "sum_over_time", step_s) + " / 1000",
        "pcie_tx_bytes": _steps("DCGM_FI_PROF_PCIE_TX_BYTES", "sum_over_time", step_s)
        + f" * {step_s}",
        "pcie_rx_bytes": _steps("DCGM_FI_PROF_PCIE_RX_BYTES", "sum_over_time", step_s)
        + f" * {step_s}",
        "util_s": f"{_steps(UTIL, 'count_over_time', step_s)} * {step_s}",
        "mem_s": f"{_steps(MEM_FRAC, 'count_over_time', step_s)} * {step_s}",
        "clock_s": f"{_steps(CLOCK_RATIO, 'count_over_time', step_s)} * {step_s}",
        "power_s": f"{_steps('DCGM_FI_DEV_POWER_USAGE', 'count_over_time', step_s)} * {step_s}",
    }
    return exprs


def rule_name(column: str) -> str:
    return f"{PREFIX}{column}{SUFFIX}"


def minute_rules_document(
    *, step_s: int = 15, pressure_fraction: float = DEFAULT_PRESSURE_FRACTION
) -> dict[str, Any]:
    """The rule group: every minute, each column of the minute ``RULE_DELAY_S`` back."""
    exprs = minute_rule_expressions(step_s=step_s, pressure_fraction=pressure_fraction)
    rules = [
        {"record": rule_name(column), "expr": f"last_over_time(({expr})[1m:1m] offset 1m)"}
        for column, expr in exprs.items()
    ]
    return {"groups": [{"name": GROUP, "interval": "1m", "rules": rules}]}


COLUMNS = frozenset(minute_rule_expressions())


@dataclass
class RecordedMinutes:
    """What the recorded series give: minutes per device, the devices' labels, and the
    minutes (their start, Unix seconds) each pod's series had a scrape in."""

    minutes: list[GpuMinute] = field(default_factory=list)
    devices: dict[str, Device] = field(default_factory=dict)
    pods: dict[tuple[str, PodRef], set[float]] = field(default_factory=dict)
    skipped: int = 0
    problems: list[str] = field(default_factory=list)

    def skip(self, reason: str) -> None:
        self.skipped += 1
        if len(self.problems) < 50:
            self.problems.append(reason)


def minute_of(recorded_at: float) -> float:
    """The start (Unix seconds) of the minute a rule evaluated at ``recorded_at`` holds."""
    return math.floor(recorded_at / 60) * 60 - RULE_DELAY_S


def _column(name: str) -> str | None:
    column = name.removeprefix(PREFIX).removesuffix(SUFFIX)
    return column if name.startswith(PREFIX) and column in COLUMNS else None


def minutes_from_recorded(
    series: Iterable[Mapping[str, Any]], *, now: datetime | None = None
) -> RecordedMinutes:
    """Minutes from the recorded series (``{"metric": labels, "values": [[unix_ts,
    "value"], ...]}``, as a range selector returns them). A time-sliced GPU has one series
    per pod: the minute is the GPU's either way, each pod's scrapes mark its presence."""
    result = RecordedMinutes()
    grid: dict[tuple[str, float], dict[str, float]] = {}
    ordered = sorted(series, key=lambda s: sorted(s.get("metric", {}).items()))
    ours = [s for s in ordered if _column(s.get("metric", {}).get("__name__", "")) is not None]
    for name, device, pod, stamp, value in series_points(
        ours, devices=result.devices, problem=result.skip
    ):
        column = _column(name)
        if column is None or not math.isfinite(value):
            continue  # an empty step (0/0): the measurement is unknown
        minute = minute_of(stamp)
        grid.setdefault((device.key, minute), {}).setdefault(column, value)
        if column == "samples" and pod is not None and value > 0:
            result.pods.setdefault((device.key, pod), set()).add(minute)
    for (key, minute), values in sorted(grid.items()):
        if "covered_s" not in values:
            continue  # nothing measured in the minute: no row, as for raw samples
        mapping: dict[str, Any] = {
            **values,
            **dict.fromkeys(ALWAYS_ZERO, 0.0),
            "gpu_uuid": key,
            "ts": datetime.fromtimestamp(minute, tz=UTC),
            "samples": int(values.get("samples", 0)),
        }
        covered = values["covered_s"]
        for column in SECONDS_FIELDS:
            # Counters may read a hair over the steps they cover; seconds stay within them.
            if column in mapping:
                mapping[column] = min(mapping[column], covered)
        try:
            result.minutes.append(gpu_minute_from_mapping(mapping, now=now))
        except RecordError as exc:
            result.skip(f"device {key} minute {minute:.0f}: {exc}")
    return result
