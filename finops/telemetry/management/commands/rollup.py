from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from finops.commands import (
    day_chunks,
    parse_time,
    range_arguments_add,
)
from finops.telemetry.rollups import rollups_recompute


class Command(BaseCommand):
    help = (
        "Recompute the minute and hour rollups of [--from, --to) from the raw samples, a UTC "
        "day at a time (the periodic task does the last minutes; this is for late or "
        "re-imported telemetry). Then recompute_costs for the same range."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        range_arguments_add(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        start, end = parse_time(options["start"], "--from"), parse_time(options["end"], "--to")
        if end <= start:
            raise CommandError("--to must be after --from")
        kept_from = timezone.now() - timedelta(days=settings.TELEMETRY_RAW_RETENTION_DAYS)
        if start < kept_from:
            # Raw samples before this are purged: recomputing would replace the rollups
            # that are all that is left of them with nothing.
            raise CommandError(
                f"--from: raw samples are kept {settings.TELEMETRY_RAW_RETENTION_DAYS} days "
                f"(TELEMETRY_RAW_RETENTION_DAYS); rollups before {kept_from:%Y-%m-%d %H:%M}Z "
                "cannot be recomputed from them"
            )
        chunks = day_chunks(start, end)
        minutes = hours = 0
        for i, (lo, hi) in enumerate(chunks):
            counts = rollups_recompute(start=lo, end=hi)
            minutes, hours = minutes + counts["minutes"], hours + counts["hours"]
            self.stderr.write(
                f"  {lo:%Y-%m-%d %H:%M} to {hi:%Y-%m-%d %H:%M}: {counts['minutes']:,} GPU-minutes "
                f"({i + 1}/{len(chunks)})"
            )
        self.stdout.write(
            self.style.SUCCESS(
                f"Rolled up {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M}: "
                f"{minutes:,} GPU-minutes, {hours:,} GPU-hours."
            )
        )
