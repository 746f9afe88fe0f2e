from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection, connections

from finops.costing.dirty import hour_floor
from finops.costing.engine import ledger_recompute
from finops.costing.models import LedgerDay, LedgerEntry, LedgerPrice, OutputDay


def _time(value: str, option: str) -> datetime:
    try:
        ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise CommandError(f"{option}: {value!r} is not an RFC 3339 time") from None
    if ts.tzinfo is None:
        raise CommandError(f"{option}: {value!r} needs a zone (Z or an offset)")
    return ts


def day_chunks(start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    """[start, end) cut at UTC midnights: each chunk lies in one UTC day, so no two chunks
    rebuild the same day's summary (they can run in parallel)."""
    chunks, cursor = [], hour_floor(start).astimezone(UTC)
    while cursor < end:
        midnight = cursor.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
        chunks.append((cursor, min(midnight, end)))
        cursor = chunks[-1][1]
    return chunks


def _recompute(chunk: tuple[datetime, datetime]) -> dict[str, int]:
    return ledger_recompute(start=chunk[0], end=chunk[1])


class Command(BaseCommand):
    help = "Recompute the cost ledger of every hour in [--from, --to), a UTC day at a time."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--from", dest="start", required=True, help="RFC 3339, e.g. 2026-11-01T00:00Z"
        )
        parser.add_argument("--to", dest="end", required=True)
        parser.add_argument(
            "--workers",
            type=int,
            default=1,
            help="processes computing days in parallel (each day is its own transaction)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        start, end = _time(options["start"], "--from"), _time(options["end"], "--to")
        if end <= start:
            raise CommandError("--to must be after --from")
        workers = options["workers"]
        if workers < 1:
            raise CommandError("--workers must be at least 1")
        if workers > 1 and connection.vendor != "postgresql":
            raise CommandError("--workers above 1 needs PostgreSQL (SQLite takes one writer)")
        chunks = day_chunks(start, end)
        if workers == 1 or len(chunks) == 1:
            results = map(_recompute, chunks)
            pool = None
        else:
            connections.close_all()  # the children open their own
            pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"))
            results = pool.map(_recompute, chunks)
        total = 0
        try:
            for i, ((lo, hi), counts) in enumerate(zip(chunks, results, strict=True)):
                total += counts["entries"]
                self.stderr.write(
                    f"  {lo:%Y-%m-%d %H:%M} to {hi:%Y-%m-%d %H:%M}: "
                    f"{counts['entries']:,} entries ({i + 1}/{len(chunks)})"
                )
        finally:
            if pool is not None:
                pool.shutdown(cancel_futures=True)
        if connection.vendor == "postgresql":
            # Fresh statistics for the tables just rewritten: planned on stale ones (a few rows
            # where there are now hundreds of thousands), the month's report sorted on disk.
            with connection.cursor() as cursor:
                for model in (LedgerEntry, LedgerDay, LedgerPrice, OutputDay):
                    cursor.execute(f"ANALYZE {model._meta.db_table}")
        self.stdout.write(
            self.style.SUCCESS(
                f"Recomputed {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M}: {total:,} entries."
            )
        )
