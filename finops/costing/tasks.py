from __future__ import annotations

from datetime import timedelta

from celery import shared_task
from django.utils import timezone

from finops.costing.dirty import hour_floor
from finops.costing.engine import dirty_windows_recompute, ledger_recompute


@shared_task(name="finops.costing.tasks.recompute_recent")
def recompute_recent() -> dict[str, int]:
    """The UTC day(s) of the last two hours (the current hour grows), then the days of hours
    marked dirty by late events; the ledger is recomputed in whole days."""
    now = timezone.now()
    counts = ledger_recompute(start=hour_floor(now) - timedelta(hours=1), end=now)
    unpriced = counts.pop("unpriced")
    counts["unpriced_node_hours"] = sum(len(hours) for hours in unpriced.values())
    counts["dirty_windows"] = dirty_windows_recompute()
    return counts
