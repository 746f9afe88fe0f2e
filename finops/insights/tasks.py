from __future__ import annotations

from datetime import timedelta

from celery import shared_task
from django.utils import timezone

from finops.insights.services import findings_refresh


def _trailing(hours: int) -> dict[str, int]:
    end = timezone.now().replace(minute=0, second=0, microsecond=0)
    report = findings_refresh(start=end - timedelta(hours=hours), end=end)
    return {"found": report.found, "created": report.created, "reopened": report.reopened,
            "resolved": report.resolved}  # fmt: skip


@shared_task(name="finops.insights.tasks.detect_last_day")
def detect_last_day() -> dict[str, int]:
    """The detectors over the trailing 24 whole hours."""
    return _trailing(24)


@shared_task(name="finops.insights.tasks.detect_last_week")
def detect_last_week() -> dict[str, int]:
    """The detectors over the trailing 7 days of whole hours."""
    return _trailing(24 * 7)
