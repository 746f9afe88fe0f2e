from __future__ import annotations

from datetime import timedelta

from celery import current_app, shared_task
from django.conf import settings
from django.utils import timezone

from finops.telemetry.dcgm_pull import dcgm_pull
from finops.telemetry.partitions import partitions_ahead
from finops.telemetry.rollups import rollup_backlog_drain, rollups_recent
from finops.telemetry.services import minutes_purge, raw_samples_purge


@shared_task(name="finops.telemetry.tasks.purge_raw_samples")
def purge_raw_samples() -> dict[str, int]:
    """Drop raw samples past their retention (TELEMETRY_RAW_RETENTION_DAYS), and minute
    rollups past theirs (TELEMETRY_MINUTE_RETENTION_DAYS; 0 keeps them)."""
    now = timezone.now()
    counts = raw_samples_purge(before=now - timedelta(days=settings.TELEMETRY_RAW_RETENTION_DAYS))
    if settings.TELEMETRY_MINUTE_RETENTION_DAYS:
        counts |= minutes_purge(
            before=now - timedelta(days=settings.TELEMETRY_MINUTE_RETENTION_DAYS)
        )
    return counts


@shared_task(name="finops.telemetry.tasks.partitions_ahead")
def partitions_create_ahead() -> dict[str, int]:
    """Daily sample partitions to TELEMETRY_PARTITIONS_AHEAD_DAYS ahead, and this month's
    and next month's minute partitions (PostgreSQL; nothing on SQLite)."""
    return partitions_ahead(now=timezone.now(), days=settings.TELEMETRY_PARTITIONS_AHEAD_DAYS)


@shared_task(name="finops.telemetry.tasks.rollup_recent")
def rollup_recent() -> dict[str, int]:
    """Minute and hour rollups over the trailing lateness window, then any late backlog."""
    counts = rollups_recent()
    counts["backlog_ranges"] = rollup_backlog_drain()
    return counts


@shared_task(
    name="finops.telemetry.tasks.pull_dcgm",
    autoretry_for=(OSError,),
    retry_backoff=True,
    max_retries=3,
)
def pull_dcgm() -> dict[str, object]:
    """DCGM samples from Prometheus since the last watermark (no-op without PROMETHEUS_URL);
    pods seen on the GPUs are attributed by the jobs app's task, sent by name right after."""
    counts = dcgm_pull()
    if counts.get("pod_runs"):
        current_app.send_task("finops.jobs.tasks.attribute_kubernetes_pods")
    return {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in counts.items()}
