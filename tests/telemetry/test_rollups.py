from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from finops.fleet.models import Gpu, Node, Site
from finops.telemetry.models import GpuHour, GpuMinute, GpuSample, RollupBacklog
from finops.telemetry.rollups import rollup_backlog_drain, rollups_recompute

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
VRAM = 80 * 2**30


@pytest.fixture
def gpu() -> Gpu:
    node = Node.objects.create(
        site=Site.objects.create(slug="lab", provider="on-prem"), hostname="lab-1"
    )
    return Gpu.objects.create(node=node, uuid="GPU-1", index=0, vram_bytes=VRAM)


def _samples(gpu: Gpu, start: datetime, seconds: int, **values: object) -> None:
    GpuSample.objects.bulk_create(
        GpuSample(
            gpu=gpu,
            ts=start + timedelta(seconds=i),
            **{k: (v(i) if callable(v) else v) for k, v in values.items()},
        )
        for i in range(seconds)
    )


def test_minute_rollup_at_one_hertz(gpu):
    # Minute 10:00: busy for 45 s at 80 %, idle 15 s; the first 30 s at 95 % of VRAM;
    # power-capped (0x4) for 20 s, thermal (0x20) for 10 s; 700 W; 1 J per second.
    _samples(
        gpu, T0, 60,
        sm_util_pct=lambda i: 80.0 if i < 45 else 0.0,
        mem_used_bytes=lambda i: int(VRAM * (0.95 if i < 30 else 0.5)),
        mem_total_bytes=VRAM,
        clocks_event_reasons=lambda i: 0x4 if i < 20 else (0x20 if i < 30 else 0),
        sm_clock_mhz=lambda i: 1500 if i < 30 else 1980,
        sm_clock_max_mhz=1980,
        power_w=700.0,
        energy_mj=lambda i: 5_000_000 + i * 1000,
        pcie_tx_bytes_per_s=1e9,
    )  # fmt: skip
    counts = rollups_recompute(start=T0, end=T0 + timedelta(minutes=1))
    assert counts == {"minutes": 1, "hours": 1}
    m = GpuMinute.objects.get()
    assert m.ts == T0
    assert m.samples == 60
    assert m.covered_s == pytest.approx(60)
    assert m.busy_s == pytest.approx(45)
    assert m.util_mean_pct == pytest.approx(60.0)  # 80 % for 45 of 60 s
    assert m.util_max_pct == 80.0
    assert m.mem_pressure_s == pytest.approx(30)
    assert m.mem_frac_max == pytest.approx(0.95)
    assert m.throttle_power_cap_s == pytest.approx(20)
    assert m.throttle_sw_thermal_s == pytest.approx(10)
    assert m.throttle_hw_thermal_s == 0
    assert m.clock_ratio_mean == pytest.approx((30 * 1500 / 1980 + 30) / 60)
    assert m.power_mean_w == pytest.approx(700)
    assert m.energy_j == pytest.approx(59)  # 59 increments of 1 J inside the minute
    assert m.pcie_tx_bytes == pytest.approx(60e9)


def test_hour_rollup_sums_minutes_and_recompute_is_idempotent(gpu):
    _samples(gpu, T0, 180, sm_util_pct=lambda i: 100.0 if i < 120 else 0.0, power_w=300.0)

    def snapshot() -> list[dict[str, object]]:
        rows = [
            *GpuMinute.objects.order_by("ts").values(),
            *GpuHour.objects.order_by("ts").values(),
        ]
        return [{k: v for k, v in row.items() if k != "id"} for row in rows]

    rollups_recompute(start=T0, end=T0 + timedelta(hours=1))
    first = snapshot()
    rollups_recompute(start=T0, end=T0 + timedelta(hours=1))
    assert snapshot() == first
    h = GpuHour.objects.get()
    assert h.ts == T0
    assert GpuMinute.objects.count() == 3
    assert h.busy_s == pytest.approx(120)
    assert h.covered_s == pytest.approx(180)
    assert h.util_mean_pct == pytest.approx(100 * 120 / 180)


def test_gap_in_telemetry_is_not_counted_as_busy(gpu):
    # Two samples ten minutes apart, neither with a neighbour within the 60 s cap: each is
    # isolated and stands for one second, not for the gap.
    GpuSample.objects.create(gpu=gpu, ts=T0, sm_util_pct=100.0)
    GpuSample.objects.create(gpu=gpu, ts=T0 + timedelta(minutes=10), sm_util_pct=100.0)
    rollups_recompute(start=T0, end=T0 + timedelta(hours=1))
    assert GpuHour.objects.get().busy_s == pytest.approx(2)


def test_recompute_after_samples_are_removed_drops_stale_minutes(gpu):
    _samples(gpu, T0, 30, sm_util_pct=50.0)
    rollups_recompute(start=T0, end=T0 + timedelta(minutes=5))
    GpuSample.objects.all().delete()
    rollups_recompute(start=T0, end=T0 + timedelta(minutes=5))
    assert not GpuMinute.objects.exists()
    assert not GpuHour.objects.exists()


def test_backlog_ranges_are_recomputed_once(gpu):
    _samples(gpu, T0, 10, sm_util_pct=10.0)
    RollupBacklog.objects.create(start=T0, end=T0 + timedelta(minutes=1))
    assert rollup_backlog_drain() == 1
    assert GpuMinute.objects.get().samples == 10
    assert not RollupBacklog.objects.exists()
    assert rollup_backlog_drain() == 0
