from __future__ import annotations

from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from finops.telemetry.rollups import rollup_backlog_drain, rollups_recent
from finops.telemetry.services import raw_samples_purge


@shared_task(name="finops.telemetry.tasks.purge_raw_samples")
def purge_raw_samples() -> dict[str, int]:
    """Drop raw samples past the retention period (TELEMETRY_RAW_RETENTION_DAYS)."""
    before = timezone.now() - timedelta(days=settings.TELEMETRY_RAW_RETENTION_DAYS)
    return raw_samples_purge(before=before)


@shared_task(name="finops.telemetry.tasks.rollup_recent")
def rollup_recent() -> dict[str, int]:
    """Minute and hour rollups over the trailing lateness window, then any late backlog."""
    counts = rollups_recent()
    counts["backlog_ranges"] = rollup_backlog_drain()
    return counts
