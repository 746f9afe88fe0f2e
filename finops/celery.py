"""The Celery application, its queues and every periodic schedule.

Queues split the work so each can be scaled on its own: ``ingest`` (telemetry pulls and
rollups), ``costing`` (ledger windows), ``insights`` (detectors), ``notify`` (alerts and
notifications), ``reports`` (weekly e-mail). Tasks are routed by the app label in their
name (``finops.<app>.tasks.<name>``).

Periodic schedules are registered only in ``BEAT_SCHEDULE`` below, each with a cadence
comment and an expiry of about 1.5x its interval, so a backlog drops stale runs instead of
piling them up.
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "finops.settings")

QUEUES = ("ingest", "costing", "insights", "notify", "reports")

# Task-module prefix -> queue. A task in an app not listed here goes to the default queue.
ROUTES_BY_MODULE = {
    "finops.telemetry.": "ingest",
    "finops.fleet.": "ingest",
    "finops.pricing.": "ingest",
    "finops.jobs.": "ingest",
    "finops.costing.": "costing",
    "finops.insights.": "insights",
    "finops.alerts.": "notify",
    "finops.reports.": "reports",
}


def route_task(
    name: str, args: Any, kwargs: Any, options: Any, task: Any = None, **kw: Any
) -> dict[str, str] | None:
    for prefix, queue in ROUTES_BY_MODULE.items():
        if name.startswith(prefix):
            return {"queue": queue}
    return None


def periodic(task: str, *, every_s: float, **options: Any) -> dict[str, Any]:
    """A beat entry that expires after 1.5x its interval."""
    return {"task": task, "schedule": every_s, "options": {"expires": every_s * 1.5, **options}}


# name -> entry. Later features add their schedules here and nowhere else.
BEAT_SCHEDULE: dict[str, dict[str, Any]] = {
    # Every minute: minute and hour rollups over the trailing TELEMETRY_ROLLUP_LATENESS_S,
    # then ranges queued by late samples.
    "telemetry-rollup-recent": periodic("finops.telemetry.tasks.rollup_recent", every_s=60),
    # Every minute: DCGM samples from PROMETHEUS_URL since the stored watermark.
    "telemetry-pull-dcgm": periodic("finops.telemetry.tasks.pull_dcgm", every_s=60),
    # Every minute (and right after a pull that saw pods): pods' GPU time as k8s jobs.
    "jobs-attribute-kubernetes-pods": periodic(
        "finops.jobs.tasks.attribute_kubernetes_pods", every_s=60
    ),
    # Every 5 minutes: the ledger of the last two hours, then hours marked dirty.
    "costing-recompute-recent": periodic("finops.costing.tasks.recompute_recent", every_s=300),
    # Hourly: the daily FOCUS files in FOCUS_EXPORT_DIR (a day once complete and clean, again
    # when its ledger changes; nothing when unset).
    "costing-focus-exports": periodic("finops.costing.tasks.focus_exports", every_s=3600),
    # Daily: reload the price catalogs listed in PRICE_SOURCES.
    "pricing-refresh": periodic("finops.pricing.tasks.refresh_prices", every_s=86400),
    # Every minute: the alert rules, then their notices.
    "alerts-evaluate": periodic("finops.alerts.tasks.evaluate", every_s=60),
    # Hourly: the failure-pattern detectors over the trailing 24 h; daily over 7 days.
    "insights-detect-day": periodic("finops.insights.tasks.detect_last_day", every_s=3600),
    "insights-detect-week": periodic("finops.insights.tasks.detect_last_week", every_s=86400),
    # Every 5 minutes: weekly reports whose hour has come (each recipient's weekday and hour
    # in their zone), and runs waiting for complete data or retrying delivery.
    "reports-send-due": periodic("finops.reports.tasks.send_due", every_s=300),
    # Hourly: raw samples past TELEMETRY_RAW_RETENTION_DAYS and minutes past
    # TELEMETRY_MINUTE_RETENTION_DAYS (whole partitions dropped, leftovers in batches).
    "telemetry-purge-raw-samples": periodic(
        "finops.telemetry.tasks.purge_raw_samples", every_s=3600
    ),
    # Hourly: telemetry partitions created ahead of the data (PostgreSQL).
    "telemetry-partitions": periodic("finops.telemetry.tasks.partitions_ahead", every_s=3600),
}

app = Celery("finops")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = [Queue(name) for name in QUEUES]
app.conf.task_routes = (route_task,)
app.conf.beat_schedule = BEAT_SCHEDULE
app.autodiscover_tasks()
