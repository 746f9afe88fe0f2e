from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from finops.fleet.models import Gpu, Node, Site
from finops.telemetry.models import GpuHour, GpuSample
from finops.telemetry.services import raw_samples_purge

pytestmark = pytest.mark.django_db


def test_purge_removes_only_old_raw_samples_and_keeps_rollups():
    site = Site.objects.create(slug="lab", provider="on-prem")
    node = Node.objects.create(site=site, hostname="lab-1")
    gpu = Gpu.objects.create(node=node, uuid="GPU-1", index=0)
    cutoff = datetime(2026, 11, 9, tzinfo=UTC)
    for minutes in range(-5, 5):
        GpuSample.objects.create(gpu=gpu, ts=cutoff + timedelta(minutes=minutes), sm_util_pct=50)
    GpuHour.objects.create(gpu=gpu, ts=cutoff - timedelta(hours=1), busy_s=600)

    result = raw_samples_purge(before=cutoff, batch_rows=2)  # several batches

    assert result == {"gpu_samples": 5, "storage_samples": 0, "gpu_sample_partitions_dropped": 0,
                      "storage_sample_partitions_dropped": 0}  # fmt: skip
    assert GpuSample.objects.filter(ts__lt=cutoff).count() == 0
    assert GpuSample.objects.count() == 5
    assert GpuHour.objects.count() == 1


def test_purge_refuses_naive_time():
    with pytest.raises(ValueError, match="timezone-aware"):
        raw_samples_purge(before=datetime(2026, 1, 1))  # noqa: DTZ001
