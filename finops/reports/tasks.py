from __future__ import annotations

from celery import shared_task

from finops.reports.services import reports_send_due


@shared_task(name="finops.reports.tasks.send_due")
def send_due() -> dict[str, int]:
    """Claim the weekly reports whose hour has come and deliver what is pending (waiting
    for complete data, or retrying after a delivery failure)."""
    return reports_send_due()
