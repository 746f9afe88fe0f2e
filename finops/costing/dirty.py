"""Hour windows whose ledger must be recomputed (late jobs, judged clips, new prices)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from finops.costing.models import DirtyWindow

HOUR = timedelta(hours=1)


def hour_floor(ts: datetime) -> datetime:
    return ts.replace(minute=0, second=0, microsecond=0)


def cost_windows_mark_dirty(*, spans: Iterable[tuple[datetime, datetime]]) -> int:
    hours: set[datetime] = set()
    for start, end in spans:
        hour = hour_floor(start)
        while hour <= end:
            hours.add(hour)
            hour += HOUR
    DirtyWindow.objects.bulk_create(
        [DirtyWindow(window_start=h) for h in hours], ignore_conflicts=True
    )
    return len(hours)
