from __future__ import annotations

from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from finops.costing.dirty import hour_floor
from finops.costing.engine import dirty_windows_recompute, ledger_recompute
from finops.costing.fanout import dirty_days, dirty_days_fan_out
from finops.costing.models import RecomputeRunDay


@shared_task(name="finops.costing.tasks.recompute_recent")
def recompute_recent() -> dict[str, int]:
    """The UTC day(s) of the last two hours (the current hour grows), then the days of hours
    marked dirty by late events; the ledger is recomputed in whole days. Many dirty days
    (``COSTING_FANOUT_MIN_DAYS``) go out as a task each, for every costing worker."""
    now = timezone.now()
    counts = ledger_recompute(start=hour_floor(now) - timedelta(hours=1), end=now)
    unpriced = counts.pop("unpriced")
    counts["unpriced_node_hours"] = sum(len(hours) for hours in unpriced.values())
    days = dirty_days()
    if len(days) >= settings.COSTING_FANOUT_MIN_DAYS:
        counts["dirty_days_sent"] = dirty_days_fan_out(days)
    else:
        counts["dirty_windows"] = dirty_windows_recompute()
    return counts


@shared_task(name="finops.costing.tasks.recompute_day")
def recompute_day(run_day_id: int) -> dict[str, object]:
    """One day of a fanned-out recompute (``finops.costing.fanout``): recomputed and marked
    done in one transaction; a day already done is not recomputed again."""
    with transaction.atomic():
        day = RecomputeRunDay.objects.select_for_update().filter(pk=run_day_id).first()
        if day is None:
            return {"skipped": f"no recompute day {run_day_id}"}
        if day.done_at is not None:
            return {"skipped": f"day {day.start:%Y-%m-%d} of run {day.run_id} is done"}
        counts = ledger_recompute(start=day.start, end=day.end)
        day.done_at, day.entries = timezone.now(), counts["entries"]
        day.save(update_fields=["done_at", "entries"])
    return {"run": day.run_id, "day": day.start.isoformat(), "entries": counts["entries"]}


@shared_task(name="finops.costing.tasks.focus_exports")
def focus_exports() -> dict[str, object]:
    """The daily FOCUS files in FOCUS_EXPORT_DIR: each complete, clean day of the last
    FOCUS_EXPORT_DAYS written once, and again when its ledger changed."""
    from finops.costing.focus_files import focus_exports_due

    results = focus_exports_due()
    return {
        "written": [f"{r.day} v{r.export.version}" for r in results if r.written and r.export],
        "waiting": [f"{r.day}: {r.reason}" for r in results if not r.export],
    }
