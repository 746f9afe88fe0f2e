from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from finops.costing.dirty import hour_floor
from finops.costing.engine import ledger_recompute


def _time(value: str, option: str) -> datetime:
    try:
        ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise CommandError(f"{option}: {value!r} is not an RFC 3339 time") from None
    if ts.tzinfo is None:
        raise CommandError(f"{option}: {value!r} needs a zone (Z or an offset)")
    return ts


class Command(BaseCommand):
    help = "Recompute the cost ledger of every hour in [--from, --to), a day at a time."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--from", dest="start", required=True, help="RFC 3339, e.g. 2026-11-01T00:00Z"
        )
        parser.add_argument("--to", dest="end", required=True)

    def handle(self, *args: Any, **options: Any) -> None:
        start, end = _time(options["start"], "--from"), _time(options["end"], "--to")
        if end <= start:
            raise CommandError("--to must be after --from")
        cursor, total = hour_floor(start), 0
        days = max(1, int((end - cursor).total_seconds() // 86400) + 1)
        for day in range(days):
            chunk_end = min(cursor + timedelta(days=1), end)
            if chunk_end <= cursor:
                break
            counts = ledger_recompute(start=cursor, end=chunk_end)
            total += counts["entries"]
            self.stderr.write(f"  {cursor:%Y-%m-%d %H:%M} to {chunk_end:%Y-%m-%d %H:%M}: "
                              f"{counts['entries']:,} entries ({day + 1}/{days})")  # fmt: skip
            cursor = chunk_end
        self.stdout.write(
            self.style.SUCCESS(
                f"Recomputed {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M}: {total:,} entries."
            )
        )
