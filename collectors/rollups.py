"""GPU minute rollups computed where the samples are (the host agent), by the same rules as
the server's SQL rollups (``finops.telemetry.rollups``, docs/telemetry.md):

- each sample stands for [ts, ts + dt): dt is the time to the next sample of the GPU when
  that is at most ``MAX_SAMPLE_GAP_S``, else (before a gap, or at the end of a series) the
  time since the previous one, capped alike, else one second;
- the interval is cut at the minute edge into at most two pieces, and every column follows
  the split: busy, memory-pressure and throttled seconds are sums of pieces (at most 60 a
  minute); means are weighted by the seconds that had the measurement; bytes are rate x
  seconds; energy is the counter's increase to the next sample spread over that interval
  (a counter that went down, a reset, books nothing).

Plain Python and numpy, no Django: the agent imports it, and the tests prove it equal to
the server's SQL over the hand-computed cases and random series.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from numpy.typing import NDArray

from collectors.records import (
    GpuSample,
    RecordError,
    _check_known,
    _measurement,
    _text,
    format_ts,
    parse_ts,
)

MAX_SAMPLE_GAP_S = 60.0
# An interval that reaches less than this past a minute's edge ends at the edge: timestamps
# are microseconds and epoch seconds are doubles, so an interval that ends on the edge can
# compute a hair past it, and that hair would carry the sample into the next minute's
# maxima.
EDGE_TOLERANCE_S = 0.001
MINUTE = timedelta(minutes=1)
THROTTLE_BITS = {
    "throttle_power_cap_s": 0x4,
    "throttle_hw_slowdown_s": 0x8,
    "throttle_sw_thermal_s": 0x20,
    "throttle_hw_thermal_s": 0x40,
    "throttle_power_brake_s": 0x80,
}
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

Floats = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class GpuMinute:
    """One GPU's minute, as the server stores it (``telemetry_gpuminute``)."""

    gpu_uuid: str
    ts: datetime
    samples: int
    covered_s: float
    busy_s: float
    util_mean_pct: float | None
    util_max_pct: float | None
    mem_frac_mean: float | None
    mem_frac_max: float | None
    mem_pressure_s: float
    throttle_power_cap_s: float
    throttle_hw_slowdown_s: float
    throttle_sw_thermal_s: float
    throttle_hw_thermal_s: float
    throttle_power_brake_s: float
    clock_ratio_mean: float | None
    power_mean_w: float | None
    temp_max_c: float | None
    energy_j: float | None
    pcie_tx_bytes: float | None
    pcie_rx_bytes: float | None
    util_s: float
    mem_s: float
    clock_s: float
    power_s: float

    def as_json(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["ts"] = format_ts(self.ts)
        return {k: v for k, v in out.items() if v is not None}


# What a minute row may hold (the server's table constraints): (integer, low, high).
SECONDS_FIELDS = ("covered_s", "busy_s", "mem_pressure_s", *THROTTLE_BITS, "util_s", "mem_s",
                  "clock_s", "power_s")  # fmt: skip
MINUTE_BOUNDS: dict[str, tuple[bool, float, float]] = {
    "samples": (True, 0, 60_000),
    **dict.fromkeys(SECONDS_FIELDS, (False, 0, 60)),
    "util_mean_pct": (False, 0, 100),
    "util_max_pct": (False, 0, 100),
    "mem_frac_mean": (False, 0, 1),
    "mem_frac_max": (False, 0, 1),
    "clock_ratio_mean": (False, 0, 10),
    "power_mean_w": (False, 0, 100_000),
    "temp_max_c": (False, -40, 150),
    "energy_j": (False, 0, 6_000_000),  # 100 kW for a minute
    "pcie_tx_bytes": (False, 0, 6e14),
    "pcie_rx_bytes": (False, 0, 6e14),
}
MINUTE_FIELDS = frozenset({"gpu_uuid", "ts", *MINUTE_BOUNDS})
# Each seconds field is part of the minute the samples covered.
PART_OF_COVERED = ("busy_s", "mem_pressure_s", *THROTTLE_BITS, "util_s", "mem_s", "clock_s",
                   "power_s")  # fmt: skip


def gpu_minute_from_mapping(data: Any, *, now: datetime | None = None) -> GpuMinute:
    """A minute row sent by an agent, validated as the server stores it, or RecordError
    naming the field: ``gpu_uuid``, ``ts`` (a whole minute) and ``covered_s`` are required;
    absent measurements are null, absent seconds zero."""
    if not isinstance(data, Mapping):
        raise RecordError("(record)", f"expected a JSON object, got {type(data).__name__}")
    _check_known(data, MINUTE_FIELDS)
    for required in ("gpu_uuid", "ts", "covered_s"):
        if data.get(required) is None:
            raise RecordError(required, "is required")
    ts = parse_ts(data["ts"], now=now)
    if ts.second or ts.microsecond:
        raise RecordError("ts", f"{format_ts(ts)} is not the start of a minute (:00 seconds)")
    values: dict[str, Any] = dict.fromkeys(MINUTE_BOUNDS)
    values.update(dict.fromkeys(SECONDS_FIELDS, 0.0))
    values["samples"] = 0
    for name, spec in MINUTE_BOUNDS.items():
        if data.get(name) is not None:
            values[name] = _measurement(name, data[name], spec)
    covered = values["covered_s"]
    for name in PART_OF_COVERED:
        if values[name] > covered + 1e-6:
            raise RecordError(name, f"{values[name]:g} s exceeds covered_s {covered:g} s")
    for mean, largest in (("util_mean_pct", "util_max_pct"), ("mem_frac_mean", "mem_frac_max")):
        if None not in (values[mean], values[largest]) and values[mean] > values[largest] + 1e-9:
            raise RecordError(mean, f"{values[mean]:g} exceeds {largest} {values[largest]:g}")
    return GpuMinute(gpu_uuid=_text("gpu_uuid", data["gpu_uuid"], max_length=96), ts=ts,
                     **values)  # fmt: skip


def _seconds(ts: datetime) -> float:
    """Seconds since the epoch, exact to the microsecond as the database's are."""
    delta = ts - EPOCH
    return delta.days * 86400.0 + delta.seconds + delta.microseconds / 1e6


def _column(samples: Sequence[GpuSample], name: str) -> Floats:
    return np.array(
        [np.nan if (v := getattr(s, name)) is None else float(v) for s in samples], dtype=float
    )


def gpu_minutes(
    samples: Sequence[GpuSample],
    *,
    start: datetime,
    end: datetime,
    vram_bytes: int | None = None,
    pressure_fraction: float = 0.92,
    after: GpuSample | None = None,
) -> list[GpuMinute]:
    """The minutes of [start, end) of one GPU from its samples.

    ``samples`` are the GPU's samples of [start - 2 cap, end + cap) (more are ignored);
    ``after`` is its first sample at or after end + cap, when one exists (the successor of
    the last sample, for its interval and its energy). ``vram_bytes`` stands in for a
    sample without ``mem_total_bytes``. Minutes with no sample's interval in them are not
    returned."""
    cap = MAX_SAMPLE_GAP_S
    reach = timedelta(seconds=cap)
    context_start, context_end = start - 2 * reach, end + reach
    series = sorted((s for s in samples if context_start <= s.ts < context_end), key=lambda s: s.ts)
    if not series:
        return []
    uuid = series[0].gpu_uuid
    ts = np.array([_seconds(s.ts) for s in series])
    n = len(series)
    util, temp = _column(series, "sm_util_pct"), _column(series, "temp_c")
    power = _column(series, "power_w")
    used, total = _column(series, "mem_used_bytes"), _column(series, "mem_total_bytes")
    if vram_bytes is not None:
        total = np.where(np.isnan(total), float(vram_bytes), total)
    clock, clock_max = _column(series, "sm_clock_mhz"), _column(series, "sm_clock_max_mhz")
    tx, rx = _column(series, "pcie_tx_bytes_per_s"), _column(series, "pcie_rx_bytes_per_s")
    energy = _column(series, "energy_mj")
    reasons = [s.clocks_event_reasons for s in series]

    next_ts = np.append(ts[1:], _seconds(after.ts) if after is not None else np.nan)
    next_energy = np.append(
        energy[1:],
        float(after.energy_mj) if after is not None and after.energy_mj is not None else np.nan,
    )
    prev_ts = np.insert(ts[:-1], 0, np.nan)
    gap_next, gap_prev = next_ts - ts, ts - prev_ts
    with np.errstate(invalid="ignore"):
        dt = np.where(gap_next <= cap, gap_next, np.where(gap_prev <= cap, gap_prev, 1.0))
    minute_start = np.floor(ts / 60.0) * 60.0
    to_edge = 60.0 - (ts - minute_start)

    with np.errstate(invalid="ignore", divide="ignore"):
        mem_frac = np.where(
            np.isnan(used) | np.isnan(total) | (total == 0),
            np.nan,
            np.where(used >= total, 1.0, used / total),
        )
        clock_ratio = np.where(
            np.isnan(clock) | np.isnan(clock_max) | (clock_max == 0), np.nan, clock / clock_max
        )
        energy_w = np.where(
            np.isnan(next_energy) | np.isnan(energy) | (next_energy < energy)
            | np.isnan(gap_next) | (gap_next <= 0),
            np.nan,
            (next_energy - energy) / 1000.0 / gap_next,
        )  # fmt: skip

    start_s, end_s = _seconds(start), _seconds(end)
    owners = (ts >= start_s - cap) & (ts < end_s)
    first = np.minimum(dt, to_edge)
    spills = dt > to_edge + EDGE_TOLERANCE_S
    spill = np.where(spills, dt - to_edge, 0.0)
    # Pieces: every owner's first piece in its minute, and the spill into the next one.
    spilled = owners & spills
    index = np.concatenate([np.arange(n)[owners], np.arange(n)[spilled]])
    bucket = np.concatenate([minute_start[owners], minute_start[spilled] + 60])
    weight = np.concatenate([first[owners], spill[spilled]])
    own = np.concatenate([np.ones(int(owners.sum())), np.zeros(int(spilled.sum()))])

    keep = (bucket >= start_s) & (bucket < end_s)
    index, bucket, weight, own = index[keep], bucket[keep], weight[keep], own[keep]
    out = []
    for minute in np.unique(bucket):
        at = bucket == minute
        i, w = index[at], weight[at]
        out.append(_minute(uuid, minute, i, w, int(own[at].sum()), util=util, temp=temp,
                           power=power, mem_frac=mem_frac, clock_ratio=clock_ratio,
                           energy_w=energy_w, tx=tx, rx=rx, reasons=reasons,
                           pressure_fraction=pressure_fraction))  # fmt: skip
    return out


def _minute(uuid: str, minute: float, i: NDArray[np.int64], w: Floats, owned: int, *,
            util: Floats, temp: Floats, power: Floats, mem_frac: Floats, clock_ratio: Floats,
            energy_w: Floats, tx: Floats, rx: Floats, reasons: list[int | None],
            pressure_fraction: float) -> GpuMinute:  # fmt: skip
    def share(mask: NDArray[np.bool_]) -> float:
        return float(w[mask].sum())

    def seconds(mask: NDArray[np.bool_]) -> float:
        return min(share(mask), 60.0)

    def mean(values: Floats) -> float | None:
        measured = ~np.isnan(values[i])
        weight = share(measured)
        if weight == 0:
            return None
        return float((values[i][measured] * w[measured]).sum()) / weight

    def total(values: Floats) -> float | None:
        measured = ~np.isnan(values[i])
        return float((values[i][measured] * w[measured]).sum()) if measured.any() else None

    def largest(values: Floats) -> float | None:
        measured = values[i][~np.isnan(values[i])]
        return float(measured.max()) if len(measured) else None

    u, m = util[i], mem_frac[i]
    with np.errstate(invalid="ignore"):
        busy = u > 0
        pressure = busy & (m >= pressure_fraction)
    throttled = {
        name: seconds(np.array([r is not None and (r & bit) != 0 for r in (reasons[k] for k in i)],
                               dtype=bool))
        for name, bit in THROTTLE_BITS.items()
    }  # fmt: skip
    return GpuMinute(
        gpu_uuid=uuid,
        ts=EPOCH + timedelta(seconds=float(minute)),
        samples=owned,
        covered_s=min(float(w.sum()), 60.0),
        busy_s=seconds(busy),
        util_mean_pct=mean(util),
        util_max_pct=largest(util),
        mem_frac_mean=mean(mem_frac),
        mem_frac_max=largest(mem_frac),
        mem_pressure_s=seconds(pressure),
        **throttled,
        clock_ratio_mean=mean(clock_ratio),
        power_mean_w=mean(power),
        temp_max_c=largest(temp),
        energy_j=total(energy_w),
        pcie_tx_bytes=total(tx),
        pcie_rx_bytes=total(rx),
        util_s=seconds(~np.isnan(u)),
        mem_s=seconds(~np.isnan(m)),
        clock_s=seconds(~np.isnan(clock_ratio[i])),
        power_s=seconds(~np.isnan(power[i])),
    )
