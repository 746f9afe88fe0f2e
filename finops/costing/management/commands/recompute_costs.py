from __future__ import annotations

import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime, timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection, connections

from finops.commands import day_chunks, parse_time, range_arguments_add
from finops.costing.engine import ledger_recompute
from finops.costing.fanout import recompute_fan_out, run_progress
from finops.costing.models import (
    ClipDay,
    LedgerDay,
    LedgerDimensionDay,
    LedgerEntry,
    LedgerPrice,
    LedgerTeamDay,
    OutputDay,
    RecomputeRunDay,
)
from finops.fleet.models import Node
from finops.telemetry.rollups import rollups_catch_up


def _recompute(chunk: tuple[datetime, datetime]) -> dict[str, Any]:
    return ledger_recompute(start=chunk[0], end=chunk[1])


class Command(BaseCommand):
    help = (
        "Recompute the cost ledger of every hour in [--from, --to), a UTC day at a time, after "
        "bringing the telemetry rollups of the range up to date."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        range_arguments_add(parser)
        parser.add_argument(
            "--workers",
            type=int,
            default=1,
            help="processes computing days in parallel (each day is its own transaction)",
        )
        parser.add_argument(
            "--via-celery",
            action="store_true",
            help="send a task per UTC day to the costing queue (every costing worker takes "
            "days) and follow their progress",
        )
        parser.add_argument(
            "--no-wait",
            action="store_true",
            help="with --via-celery: send the days and return",
        )
        parser.add_argument(
            "--timeout",
            type=float,
            default=0,
            help="with --via-celery: give up waiting after this many seconds (0: wait)",
        )
        parser.add_argument(
            "--no-rollups",
            action="store_true",
            help="do not first recompute the late and recent rollups of the range",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        start, end = parse_time(options["start"], "--from"), parse_time(options["end"], "--to")
        if end <= start:
            raise CommandError("--to must be after --from")
        workers = options["workers"]
        if workers < 1:
            raise CommandError("--workers must be at least 1")
        if workers > 1 and connection.vendor != "postgresql":
            raise CommandError("--workers above 1 needs PostgreSQL (SQLite takes one writer)")
        if not options["no_rollups"]:
            ranges = rollups_catch_up(start=start, end=end)
            if ranges:
                self.stderr.write(f"  telemetry rollups brought up to date: {ranges} range(s)")
        chunks = day_chunks(start, end)
        if options["via_celery"]:
            self._via_celery(chunks, wait=not options["no_wait"], timeout_s=options["timeout"])
            return
        unpriced: dict[int, list[datetime]] = {}
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
                for node_id, hours in counts["unpriced"].items():
                    unpriced.setdefault(node_id, []).extend(hours)
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
                for model in (LedgerEntry, LedgerDay, LedgerTeamDay, LedgerDimensionDay,
                              LedgerPrice, OutputDay, ClipDay):  # fmt: skip
                    cursor.execute(f"ANALYZE {model._meta.db_table}")
        if unpriced:
            self._warn_unpriced(unpriced)
        self.stdout.write(
            self.style.SUCCESS(
                f"Recomputed {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M}: {total:,} entries."
            )
        )

    def _via_celery(
        self, chunks: list[tuple[datetime, datetime]], *, wait: bool, timeout_s: float
    ) -> None:
        run = recompute_fan_out(chunks=chunks, reason="command")
        self.stderr.write(f"  sent {len(chunks)} day(s) to the costing queue (run {run.pk})")
        if not wait:
            self.stdout.write(f"Run {run.pk}: {len(chunks)} day(s) queued; not waiting.")
            return
        deadline = time.monotonic() + timeout_s if timeout_s else None
        shown = -1
        while True:
            done, total = run_progress(run)
            if done != shown:
                self.stderr.write(f"  {done}/{total} days done")
                shown = done
            if done == total:
                break
            if deadline is not None and time.monotonic() > deadline:
                raise CommandError(
                    f"run {run.pk}: {done} of {total} days done after {timeout_s:g} s; the rest "
                    "stay queued (is a worker on the costing queue running?)"
                )
            time.sleep(0.5)
        entries = sum(RecomputeRunDay.objects.filter(run=run).values_list("entries", flat=True))
        self.stdout.write(
            self.style.SUCCESS(
                f"Recomputed {chunks[0][0]:%Y-%m-%d %H:%M} to {chunks[-1][1]:%Y-%m-%d %H:%M} "
                f"over Celery workers: {entries:,} entries."
            )
        )

    def _warn_unpriced(self, unpriced: dict[int, list[datetime]]) -> None:
        names = dict(Node.objects.filter(id__in=unpriced).values_list("id", "hostname"))
        node_hours = sum(len(h) for h in unpriced.values())
        self.stderr.write(
            self.style.WARNING(
                f"warning: {node_hours:,} node-hour(s) on {len(unpriced)} node(s) have no price "
                "(no override, rate or GPU-model default): their GPU time is booked at 0 and "
                "shown as unpriced_gpu_hours. Load a rate card (load_prices) or set a price, "
                "then recompute."
            )
        )
        for node_id, hours in sorted(unpriced.items(), key=lambda kv: names.get(kv[0], "")):
            self.stderr.write(
                f"  {names.get(node_id, node_id)}: {len(hours)} hour(s), "
                f"{min(hours):%Y-%m-%d %H:00}Z to {max(hours) + timedelta(hours=1):%Y-%m-%d %H:00}Z"
            )
