"""Ledger recomputes spread over Celery workers: one task per UTC day on the ``costing``
queue. Tasks are acknowledged late (a worker killed mid-day leaves its day to another),
and each day is recomputed under the day lock and marked done in the same transaction,
so a day delivered twice is written once and progress counts it once."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from finops.costing.engine import DAY, day_floor
from finops.costing.models import DirtyWindow, RecomputeRun, RecomputeRunDay

# A fanned-out day not done after this long is handed out again by the next beat.
PENDING_FOR = timedelta(hours=1)


def recompute_fan_out(*, chunks: list[tuple[datetime, datetime]], reason: str) -> RecomputeRun:
    """Record the run and its days, and send a task per day once they are committed."""
    from finops.costing.tasks import recompute_day

    with transaction.atomic():
        run = RecomputeRun.objects.create(start=chunks[0][0], end=chunks[-1][1], reason=reason)
        days = RecomputeRunDay.objects.bulk_create(
            RecomputeRunDay(run=run, start=lo, end=hi) for lo, hi in chunks
        )
        ids = [d.pk for d in days]
        transaction.on_commit(lambda: [recompute_day.delay(pk) for pk in ids])
    return run


def run_progress(run: RecomputeRun) -> tuple[int, int]:
    """(days done, days in all)."""
    days = RecomputeRunDay.objects.filter(run=run)
    return days.exclude(done_at=None).count(), days.count()


def dirty_days(*, limit: int = 168) -> list[datetime]:
    """The UTC days of the oldest ``limit`` dirty hours, in order."""
    hours = DirtyWindow.objects.order_by("window_start").values_list("window_start", flat=True)
    return sorted({day_floor(h) for h in hours[:limit]})


def dirty_days_fan_out(days: list[datetime]) -> int:
    """``days`` as one task each, leaving out days a run handed out less than
    ``PENDING_FOR`` ago and not done yet. Returns how many were sent."""
    pending = set(
        RecomputeRunDay.objects.filter(
            done_at=None, run__created_at__gte=timezone.now() - PENDING_FOR, start__in=days
        ).values_list("start", flat=True)
    )
    todo = [(day, day + DAY) for day in days if day not in pending]
    if todo:
        recompute_fan_out(chunks=todo, reason="dirty-windows")
    return len(todo)
