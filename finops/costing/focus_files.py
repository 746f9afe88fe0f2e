"""Daily FOCUS files for finance tools: one file per UTC day in ``FOCUS_EXPORT_DIR`` (a
mounted bucket or share), Parquet and, if configured, CSV, with ``manifest.json`` listing
each file's rows, billed cost and checksum.

A day is written once it is complete and its ledger clean, the way the weekly report
waits: its end at least ``FOCUS_EXPORT_SETTLE_S`` ago and no hour of it marked for
recompute. Written again as the next version when the day's ledger is recomputed later
(its stamp, the export's ETag, changed); the manifest says which version superseded which.
Writing the same day again without a change writes nothing (idempotent). Files are written
to a temporary name and renamed, so a reader never sees half a file.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from finops.accounts.models import Team
from finops.costing.exports import focus_csv, focus_entries, focus_etag, focus_parquet
from finops.costing.models import DirtyWindow, FocusExport

FORMATS = ("parquet", "csv")
MANIFEST = "manifest.json"


class NotReady(Exception):
    """The day cannot be exported yet; the message says why."""


@dataclass
class DayResult:
    day: date
    export: FocusExport | None
    written: bool
    reason: str = ""


def export_dir() -> Path | None:
    configured = settings.FOCUS_EXPORT_DIR
    return Path(configured) if configured else None


def _bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(0), tzinfo=UTC)
    return start, start + timedelta(days=1)


def day_ready(day: date, *, now: datetime) -> None:
    """Raise ``NotReady`` unless ``day`` is complete and its ledger clean."""
    start, end = _bounds(day)
    settle = timedelta(seconds=settings.FOCUS_EXPORT_SETTLE_S)
    if now < end + settle:
        raise NotReady(f"{day} is not complete: exported from {end + settle:%Y-%m-%d %H:%M} UTC")
    dirty = DirtyWindow.objects.filter(window_start__gte=start, window_start__lt=end).count()
    if dirty:
        raise NotReady(f"{day} has {dirty} hour(s) waiting for the ledger's recompute")


def _write_atomic(path: Path, data: bytes) -> None:
    partial = path.with_name(f".{path.name}.partial")
    partial.write_bytes(data)
    os.replace(partial, path)


def focus_day_export(
    day: date, *, directory: Path | None = None, now: datetime | None = None,
    formats: tuple[str, ...] | None = None,
) -> DayResult:  # fmt: skip
    """Write ``day``'s FOCUS file(s) if the day is ready and its ledger changed since the
    last version (or none was written); returns the current version."""
    now = now or timezone.now()
    directory = directory or export_dir()
    if directory is None:
        raise NotReady("FOCUS_EXPORT_DIR is not set: nowhere to write the daily files")
    formats = formats or settings.FOCUS_EXPORT_FORMATS
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown:
        raise ValueError(f"FOCUS_EXPORT_FORMATS: unknown {', '.join(unknown)}; use parquet, csv")
    try:
        day_ready(day, now=now)
    except NotReady as exc:
        latest = FocusExport.objects.filter(day=day).order_by("-version").first()
        return DayResult(day, latest, False, str(exc))
    start, end = _bounds(day)
    entries = focus_entries(start=start, end=end, teams=Team.objects.all(), all_teams=True)
    stamp = focus_etag(entries)
    directory.mkdir(parents=True, exist_ok=True)
    with transaction.atomic():
        latest = (
            FocusExport.objects.select_for_update().filter(day=day).order_by("-version").first()
        )
        if latest is not None and latest.ledger_stamp == stamp:
            return DayResult(day, latest, False, "unchanged since version "
                             f"{latest.version}")  # fmt: skip
        rows = entries.count()
        if rows == 0 and latest is None:
            return DayResult(day, None, False, f"{day} has no ledger lines")
        version = latest.version + 1 if latest else 1
        totals = entries.order_by().aggregate(billed=Sum("amount"))
        currency = entries.values_list("currency", flat=True).first() or "USD"
        files: dict[str, dict[str, Any]] = {}
        for fmt in formats:
            data = (
                focus_parquet(entries) if fmt == "parquet" else "".join(focus_csv(entries)).encode()
            )
            name = f"focus-{day:%Y-%m-%d}-v{version}.{fmt}"
            _write_atomic(directory / name, data)
            files[fmt] = {
                "name": name,
                "bytes": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
            }
        export = FocusExport.objects.create(
            day=day, version=version, ledger_stamp=stamp, rows=rows,
            billed_cost=totals["billed"] or Decimal(0), currency=currency, files=files,
            written_at=now,
        )  # fmt: skip
        if latest is not None:
            latest.superseded_by = export
            latest.save(update_fields=["superseded_by"])
        manifest_write(directory)
    return DayResult(day, export, True)


def manifest_write(directory: Path) -> dict[str, Any]:
    """Every version written, each file with its rows, billed cost and SHA-256, and which
    version superseded which; the current version of each day flagged."""
    exports = list(FocusExport.objects.select_related("superseded_by").order_by("day", "version"))
    supersedes = {e.superseded_by_id: e for e in exports if e.superseded_by_id}
    body = {
        "format": "FOCUS 1.2 Cost and Usage, one file per UTC day",
        "generated_at": timezone.now().astimezone(UTC).isoformat(),
        "files": [
            {
                "day": e.day.isoformat(),
                "version": e.version,
                "current": e.superseded_by_id is None,
                "rows": e.rows,
                "billed_cost": str(e.billed_cost),
                "currency": e.currency,
                "written_at": e.written_at.astimezone(UTC).isoformat(),
                "files": e.files,
                "supersedes": (supersedes[e.pk].files if e.pk in supersedes else None),
                "superseded_by": e.superseded_by.files if e.superseded_by else None,
            }
            for e in exports
        ],
    }
    _write_atomic(directory / MANIFEST, json.dumps(body, indent=1).encode())
    return body


def focus_exports_due(*, now: datetime | None = None) -> list[DayResult]:
    """Every day of the last ``FOCUS_EXPORT_DAYS`` that is ready: written if new or changed
    (the beat task)."""
    now = now or timezone.now()
    if export_dir() is None:
        return []
    today = now.astimezone(UTC).date()
    days = [today - timedelta(days=n) for n in range(settings.FOCUS_EXPORT_DAYS, 0, -1)]
    return [focus_day_export(day, now=now) for day in days]
