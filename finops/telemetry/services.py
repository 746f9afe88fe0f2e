"""Writes for telemetry."""

from __future__ import annotations

from datetime import datetime

from django.db import models

from finops.telemetry.models import GpuMinute, GpuSample, StorageSample
from finops.telemetry.partitions import (
    GPU_MINUTES,
    GPU_SAMPLES,
    STORAGE_SAMPLES,
    partitions_drop_before,
)

PURGE_BATCH_ROWS = 20_000


def _purge_before(model: type[models.Model], *, before: datetime, batch_rows: int) -> int:
    # Deletes in bounded batches: one huge DELETE holds locks for minutes and bloats WAL.
    deleted = 0
    while True:
        ids = list(model.objects.filter(ts__lt=before).values_list("id", flat=True)[:batch_rows])
        if not ids:
            return deleted
        deleted += model.objects.filter(id__in=ids).delete()[0]


def raw_samples_purge(*, before: datetime, batch_rows: int = PURGE_BATCH_ROWS) -> dict[str, int]:
    """Delete raw GPU and storage samples older than ``before``; rollups are kept. On
    PostgreSQL whole daily partitions go first (``*_partitions_dropped``); the rows left
    before ``before`` (the default partition's, the cut-off day's) are deleted in batches."""
    if before.tzinfo is None:
        raise ValueError("before must be timezone-aware")
    return {
        "gpu_sample_partitions_dropped": partitions_drop_before(GPU_SAMPLES, before),
        "storage_sample_partitions_dropped": partitions_drop_before(STORAGE_SAMPLES, before),
        "gpu_samples": _purge_before(GpuSample, before=before, batch_rows=batch_rows),
        "storage_samples": _purge_before(StorageSample, before=before, batch_rows=batch_rows),
    }


def minutes_purge(*, before: datetime, batch_rows: int = PURGE_BATCH_ROWS) -> dict[str, int]:
    """Minute rollups older than ``before`` (``TELEMETRY_MINUTE_RETENTION_DAYS``): whole
    monthly partitions, then the rest in batches. Hour rollups are kept."""
    if before.tzinfo is None:
        raise ValueError("before must be timezone-aware")
    return {
        "gpu_minute_partitions_dropped": partitions_drop_before(GPU_MINUTES, before),
        "gpu_minutes": _purge_before(GpuMinute, before=before, batch_rows=batch_rows),
    }
