from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from finops.alerts.evaluation import rules_evaluate
from finops.alerts.notify import tick_notify


@shared_task(name="finops.alerts.tasks.evaluate")
def evaluate() -> dict[str, int]:
    """One evaluation tick of every enabled rule, then its notices (grouped, delivered)."""
    now = timezone.now()
    report = rules_evaluate(now=now)
    delivered = tick_notify(fired=report.fired or [], resolved=report.resolved or [], now=now)
    return {"evaluated": report.evaluated, "fired": len(report.fired or []),
            "resolved": len(report.resolved or []), "groups_delivered": delivered}  # fmt: skip
