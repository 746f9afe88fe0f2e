"""The DCGM pull against a real Prometheus holding history: Debian's promtool backfills
dcgm-exporter series (``tsdb create-blocks-from openmetrics``) and Debian's prometheus
serves them, so throttle episodes and long outages are exact and need no waiting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db.models import Sum

from collectors.dcgm import query_prometheus
from finops.telemetry.dcgm_pull import dcgm_pull
from finops.telemetry.models import GpuMinute, GpuSample, PullWatermark
from finops.telemetry.rollups import rollups_recompute

pytestmark = pytest.mark.django_db

LABELS = 'UUID="GPU-h1",gpu="0",Hostname="dgx-1",modelName="NVIDIA H100 80GB HBM3"'
NOW = datetime.now(UTC).replace(second=0, microsecond=0)


def _openmetrics(series: dict[str, list[tuple[float, float]]]) -> str:
    lines = []
    for name, points in series.items():
        lines.append(f"# TYPE {name} gauge")
        lines += [f"{name}{{{LABELS}}} {value} {ts:.3f}" for ts, value in points]
    return "\n".join([*lines, "# EOF"]) + "\n"


def test_a_30_second_power_cap_episode_reads_30_seconds(history, settings):
    # 1 s scrapes for four minutes, three hours ago; the power-violation counter (µs) grows
    # from +52 s to +82 s (30 s, not on a 15 s step), the thermal one from +130 s to +145 s.
    t0 = (NOW - timedelta(hours=3)).timestamp()

    def counter(start: int, end: int) -> list[tuple[float, float]]:
        return [(t0 + i, min(max(i - start, 0), end - start) * 1e6) for i in range(240)]

    url = history(_openmetrics({
        "DCGM_FI_DEV_GPU_UTIL": [(t0 + i, 90.0) for i in range(240)],
        "DCGM_FI_DEV_POWER_VIOLATION": counter(52, 82),
        "DCGM_FI_DEV_THERMAL_VIOLATION": counter(130, 145),
    }))  # fmt: skip
    settings.DCGM_PULL_LOOKBACK_S = 3 * 3600 + 60
    pulled = dcgm_pull(url=url, now=datetime.fromtimestamp(t0 + 240, tz=UTC), step_s=15)
    assert pulled["rejected"] == 0
    assert pulled["registered_gpus"] == 1
    start = datetime.fromtimestamp(t0, tz=UTC)
    rollups_recompute(start=start, end=start + timedelta(minutes=5))
    sums = GpuMinute.objects.aggregate(
        power=Sum("throttle_power_cap_s"), thermal=Sum("throttle_sw_thermal_s")
    )
    assert sums["power"] == pytest.approx(30)
    assert sums["thermal"] == pytest.approx(15)


def test_a_pull_50_hours_behind_catches_up_in_chunks(history, settings):
    t0 = (NOW - timedelta(hours=51)).timestamp()
    steps = 51 * 240
    url = history(
        _openmetrics({"DCGM_FI_DEV_GPU_UTIL": [(t0 + 15 * i, 50.0) for i in range(steps)]})
    )
    # Prometheus itself refuses the whole outage in one query (over 11,000 points).
    behind = NOW - timedelta(hours=50)
    with pytest.raises(Exception, match=r"11,000|11000|exceeded maximum resolution"):
        query_prometheus(url, start=behind, end=NOW - timedelta(minutes=1), step_s=15)

    PullWatermark.objects.create(source=f"dcgm:{url}", until=behind)
    pulled = dcgm_pull(url=url, now=NOW, step_s=15)
    assert pulled["chunks"] == 5  # 12,000 steps of 2,880 at most
    assert pulled["rejected"] == 0
    assert "gap" not in pulled
    assert PullWatermark.objects.get().until == NOW - timedelta(seconds=15)
    assert pulled["accepted"] == GpuSample.objects.count() > 11_000


def test_a_pull_further_behind_than_the_look_back_reports_the_gap(history, settings):
    t0 = (NOW - timedelta(hours=3)).timestamp()
    url = history(
        _openmetrics({"DCGM_FI_DEV_GPU_UTIL": [(t0 + 15 * i, 50.0) for i in range(3 * 240)]})
    )
    settings.DCGM_PULL_MAX_LOOKBACK_S = 3600
    PullWatermark.objects.create(source=f"dcgm:{url}", until=NOW - timedelta(hours=3))
    pulled = dcgm_pull(url=url, now=NOW, step_s=15)
    assert pulled["gap"] == {
        "from": NOW - timedelta(hours=3) + timedelta(seconds=15),
        "to": NOW - timedelta(hours=1) - timedelta(seconds=15),
    }
    assert pulled["from"] == NOW - timedelta(hours=1)
    assert GpuSample.objects.order_by("ts").first().ts == NOW - timedelta(hours=1)
