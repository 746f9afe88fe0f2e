"""Rollup cases with hand-computed expectations, run on PostgreSQL (the suite) and on SQLite
(the embedded demo, in a subprocess): ``cases_run()`` builds every case on its own GPU and
returns what the rollups hold, as JSON-able values; ``EXPECTED`` is worked out by hand
from the rules in docs/telemetry.md.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from collectors.records import GpuSample as Record
from finops.fleet.models import Gpu, Node, Site
from finops.telemetry.ingest import gpu_samples_store
from finops.telemetry.models import GpuHour, GpuMinute, GpuSample, RollupBacklog
from finops.telemetry.rollups import rollup_backlog_drain, rollups_recompute

T0 = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)  # far behind any lateness window
VRAM = 80 * 2**30
HOUR = timedelta(hours=1)
COLUMNS = (
    "samples", "covered_s", "busy_s", "util_mean_pct", "mem_frac_mean", "mem_pressure_s",
    "throttle_power_cap_s", "clock_ratio_mean", "power_mean_w", "energy_j", "pcie_tx_bytes",
    "util_s", "mem_s", "clock_s", "power_s",
)  # fmt: skip


def _gpu(name: str) -> Gpu:
    site, _ = Site.objects.get_or_create(slug="lab", defaults={"provider": "on-prem"})
    node = Node.objects.create(site=site, hostname=f"lab-{name}")
    return Gpu.objects.create(node=node, uuid=f"GPU-{name}", index=0, vram_bytes=VRAM)


def _rows(gpu: Gpu, model: Any = GpuMinute) -> dict[str, dict[str, Any]]:
    return {
        f"{row['ts']:%H:%M}": {c: row[c] for c in COLUMNS}
        for row in model.objects.filter(gpu=gpu).order_by("ts").values("ts", *COLUMNS)
    }


def _gap_series(*, fill_gap: bool) -> list[tuple[int, dict[str, Any]]]:
    """15 s samples from 10:00:10, busy and at 95% memory under a power cap, with no
    samples from 10:02:55 to 10:07:55 unless ``fill_gap``. The GPU draws 300 W but 600 W
    from 10:02:55 to 10:04:10 (the energy counter, in mJ, says so)."""
    out = []
    for k in range(42):
        offset = 10 + 15 * k
        in_gap = 175 < offset < 475
        if in_gap and not fill_gap:
            continue
        if offset > 595:
            break
        out.append((offset, {
            "sm_util_pct": 100.0, "mem_used_bytes": int(VRAM * 0.95), "mem_total_bytes": VRAM,
            "clocks_event_reasons": 0x4, "pcie_tx_bytes_per_s": 1e6, "power_w": 300.0,
            "energy_mj": 10**9 + 1000 * (300 * offset + 300 * min(max(offset - 175, 0), 75)),
        }))  # fmt: skip
    return out


def _store(gpu: Gpu, series: list[tuple[int, dict[str, Any]]]) -> None:
    GpuSample.objects.bulk_create(
        GpuSample(gpu=gpu, ts=T0 + timedelta(seconds=offset), **values) for offset, values in series
    )


def case_missing_memory() -> dict[str, Any]:
    gpu = _gpu("nomem")
    _store(gpu, [(i, {"sm_util_pct": 100.0}) for i in range(60)])
    rollups_recompute(start=T0, end=T0 + HOUR)
    return _rows(gpu)


def case_gap() -> dict[str, Any]:
    gpu = _gpu("gap")
    _store(gpu, _gap_series(fill_gap=False))
    rollups_recompute(start=T0, end=T0 + HOUR)
    return {"minutes": _rows(gpu), "hour": _rows(gpu, GpuHour)}


def case_weighted_means() -> dict[str, Any]:
    gpu = _gpu("means")
    _store(gpu, [
        (0, {"sm_clock_mhz": 990, "sm_clock_max_mhz": 1980, "power_w": 100.0}),
        (50, {"sm_clock_mhz": 1980, "sm_clock_max_mhz": 1980, "power_w": 500.0}),
        (60, {"sm_clock_mhz": 1980, "sm_clock_max_mhz": 1980, "power_w": 500.0}),
    ])  # fmt: skip
    rollups_recompute(start=T0, end=T0 + HOUR)
    return _rows(gpu)["10:00"]


def case_any_range() -> dict[str, bool]:
    """The gap series recomputed by day, by hour, minute by minute, and one minute again."""
    gpu = _gpu("ranges")
    _store(gpu, _gap_series(fill_gap=False))
    day = T0.replace(hour=0)
    rollups_recompute(start=day, end=day + timedelta(days=1))
    whole = (_rows(gpu), _rows(gpu, GpuHour))
    rollups_recompute(start=T0, end=T0 + HOUR)
    by_hour = (_rows(gpu), _rows(gpu, GpuHour))
    GpuMinute.objects.filter(gpu=gpu).delete()
    for minute in range(60):
        rollups_recompute(
            start=T0 + timedelta(minutes=minute), end=T0 + timedelta(minutes=minute + 1)
        )
    by_minute = (_rows(gpu), _rows(gpu, GpuHour))
    rollups_recompute(start=T0 + timedelta(minutes=3), end=T0 + timedelta(minutes=4))
    one_minute = (_rows(gpu), _rows(gpu, GpuHour))
    return {
        "hour": by_hour == whole,
        "minute_by_minute": by_minute == whole,
        "one_minute": one_minute == whole,
    }


def case_late_fill() -> dict[str, bool]:
    """The gap filled late (through ingest and its backlog) against everything in order."""
    in_order, late = _gpu("inorder"), _gpu("late")
    _store(in_order, _gap_series(fill_gap=True))
    rollups_recompute(start=T0, end=T0 + HOUR)
    first = _gap_series(fill_gap=False)
    _store(late, first)
    rollups_recompute(start=T0, end=T0 + HOUR)
    RollupBacklog.objects.all().delete()
    missing = [s for s in _gap_series(fill_gap=True) if s not in first]
    records = [
        (i, Record(gpu_uuid=late.uuid, ts=T0 + timedelta(seconds=offset), **values))
        for i, (offset, values) in enumerate(missing, start=1)
    ]
    gpu_samples_store(records=records)
    queued = RollupBacklog.objects.count()
    rollup_backlog_drain()
    return {
        "queued": queued == 1,
        "minutes": _rows(late) == _rows(in_order),
        "hour": _rows(late, GpuHour) == _rows(in_order, GpuHour),
    }


def case_counter_reset() -> dict[str, Any]:
    """1 Hz at 300 W; the counter restarts from 0 at 10:00:30 (a driver reload)."""
    gpu = _gpu("reset")
    _store(gpu, [
        (i, {"sm_util_pct": 50.0, "energy_mj": (10**9 if i < 30 else 0) + (i % 30) * 300_000})
        for i in range(60)
    ])  # fmt: skip
    rollups_recompute(start=T0, end=T0 + HOUR)
    return _rows(gpu)["10:00"]


def cases_run() -> dict[str, Any]:
    return {
        "missing_memory": case_missing_memory(),
        "gap": case_gap(),
        "weighted_means": case_weighted_means(),
        "any_range": case_any_range(),
        "late_fill": case_late_fill(),
        "counter_reset": case_counter_reset(),
    }


def _gap_minute(samples: int, covered: float, energy: float | None) -> dict[str, Any]:
    return {
        "samples": samples, "covered_s": covered, "busy_s": covered, "util_mean_pct": 100.0,
        "mem_frac_mean": 0.95, "mem_pressure_s": covered, "throttle_power_cap_s": covered,
        "clock_ratio_mean": None, "power_mean_w": 300.0, "energy_j": energy,
        "pcie_tx_bytes": covered * 1e6, "util_s": covered, "mem_s": covered, "clock_s": 0.0,
        "power_s": covered,
    }  # fmt: skip


# Worked by hand (docs/telemetry.md, "Rollups"). The gap series: each 15 s interval is cut
# at the minute edge (10:00:55 gives 5 s to 10:00 and 10 s to 10:01); 10:02:55, the last
# before the gap, stands for its 15 s cadence (5 s to 10:02, 10 s to 10:03); 10:07:55, the
# first after it, for 15 s (5 s and 10 s); 10:09:55, the last, for 15 s (5 s and 10 s to
# 10:10). Energy is 300 W over every interval that has a next sample; the increase across
# the gap (600 W for 75 s, 300 W for 225 s: 112,500 J) is spread over the gap at 375 W,
# so 10:02:55's 15 s get 5,625 J (1,875 to 10:02, 3,750 to 10:03); the last sample has none.
EXPECTED: dict[str, Any] = {
    "missing_memory": {
        "10:00": {
            "samples": 60,
            "covered_s": 60.0,
            "busy_s": 60.0,
            "util_mean_pct": 100.0,
            "mem_frac_mean": None,
            "mem_pressure_s": 0.0,
            "throttle_power_cap_s": 0.0,
            "clock_ratio_mean": None,
            "power_mean_w": None,
            "energy_j": None,
            "pcie_tx_bytes": None,
            "util_s": 60.0,
            "mem_s": 0.0,
            "clock_s": 0.0,
            "power_s": 0.0,
        }
    },
    "gap": {
        "minutes": {
            "10:00": _gap_minute(4, 50.0, 15000.0),
            "10:01": _gap_minute(4, 60.0, 18000.0),
            "10:02": _gap_minute(4, 60.0, 18375.0),
            "10:03": _gap_minute(0, 10.0, 3750.0),
            "10:07": _gap_minute(1, 5.0, 1500.0),
            "10:08": _gap_minute(4, 60.0, 18000.0),
            "10:09": _gap_minute(4, 60.0, 16500.0),
            "10:10": _gap_minute(0, 10.0, None),
        },
        "hour": {"10:00": _gap_minute(21, 315.0, 91125.0)},
    },
    "weighted_means": {
        "samples": 2,
        "covered_s": 60.0,
        "busy_s": 0.0,
        "util_mean_pct": None,
        "mem_frac_mean": None,
        "mem_pressure_s": 0.0,
        "throttle_power_cap_s": 0.0,
        "clock_ratio_mean": (0.5 * 50 + 1.0 * 10) / 60,
        "power_mean_w": (100 * 50 + 500 * 10) / 60,
        "energy_j": None,
        "pcie_tx_bytes": None,
        "util_s": 0.0,
        "mem_s": 0.0,
        "clock_s": 60.0,
        "power_s": 60.0,
    },
    "any_range": {"hour": True, "minute_by_minute": True, "one_minute": True},
    "late_fill": {"queued": True, "minutes": True, "hour": True},
    # 29 increases of 300 J before the reset, none across it, 29 after; the last has none.
    "counter_reset": {
        "samples": 60,
        "covered_s": 60.0,
        "busy_s": 60.0,
        "util_mean_pct": 50.0,
        "mem_frac_mean": None,
        "mem_pressure_s": 0.0,
        "throttle_power_cap_s": 0.0,
        "clock_ratio_mean": None,
        "power_mean_w": None,
        "energy_j": 17400.0,
        "pcie_tx_bytes": None,
        "util_s": 60.0,
        "mem_s": 0.0,
        "clock_s": 0.0,
        "power_s": 0.0,
    },
}
