"""Writes for telemetry."""

from __future__ import annotations

from datetime import datetime

from django.db import models

from finops.telemetry.models import GpuSample, StorageSample

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
    """Delete raw GPU and storage samples older than ``before``; rollups are kept."""
    if before.tzinfo is None:
        raise ValueError("before must be timezone-aware")
    return {
        "gpu_samples": _purge_before(GpuSample, before=before, batch_rows=batch_rows),
        "storage_samples": _purge_before(StorageSample, before=before, batch_rows=batch_rows),
    }
