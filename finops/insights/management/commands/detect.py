from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from finops.commands import parse_time, range_arguments_add
from finops.insights.detectors import all_detectors
from finops.insights.services import findings_refresh


class Command(BaseCommand):
    help = (
        "Run the failure-pattern detectors over [--from, --to) and refresh the findings "
        "(the beat schedule does the trailing 24 h hourly and 7 days daily)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        range_arguments_add(parser)
        parser.add_argument(
            "--pattern", action="append", choices=sorted(all_detectors()),
            help="only this pattern (repeatable)",
        )  # fmt: skip

    def handle(self, *args: Any, **options: Any) -> None:
        start, end = parse_time(options["start"], "--from"), parse_time(options["end"], "--to")
        if end <= start:
            raise CommandError("--to must be after --from")
        if end - start > timedelta(days=366):
            raise CommandError("--from/--to: at most 366 days at once")
        patterns = options["pattern"]
        total = len(patterns or all_detectors())
        done = 0

        def progress(name: str, found: int) -> None:
            nonlocal done
            done += 1
            self.stderr.write(f"  {name}: {found} finding(s) ({done}/{total})")

        self.stderr.write(f"  reading {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M}…")
        report = findings_refresh(start=start, end=end, patterns=patterns, progress=progress)
        self.stdout.write(
            self.style.SUCCESS(
                f"{report.found} finding(s): {report.created} new, {report.reopened} reopened, "
                f"{report.resolved} resolved (not seen again)."
            )
        )
