from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from finops.costing.focus_files import FORMATS, NotReady, focus_day_export


class Command(BaseCommand):
    help = (
        "Write a UTC day's FOCUS 1.2 file(s) and manifest.json into FOCUS_EXPORT_DIR (or "
        "--dir): once the day is complete and its ledger clean, again as a new version when "
        "its ledger changed; nothing when unchanged."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--day", required=True, help="the UTC day, YYYY-MM-DD")
        parser.add_argument("--dir", help="the directory (default: FOCUS_EXPORT_DIR)")
        parser.add_argument(
            "--formats", help=f"comma-separated, of {', '.join(FORMATS)} (default: "
            "FOCUS_EXPORT_FORMATS)",
        )  # fmt: skip

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            day = date.fromisoformat(options["day"])
        except ValueError:
            raise CommandError(f"--day: {options['day']!r} is not a day as YYYY-MM-DD") from None
        formats = tuple(f.strip() for f in options["formats"].split(",")) if options[
            "formats"] else None  # fmt: skip
        try:
            result = focus_day_export(
                day, directory=Path(options["dir"]) if options["dir"] else None, formats=formats
            )
        except (NotReady, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        if result.export is None:
            raise CommandError(result.reason)
        e = result.export
        if result.written:
            names = ", ".join(f["name"] for f in e.files.values())
            self.stdout.write(self.style.SUCCESS(
                f"Wrote {names}: {e.rows} rows, billed {e.currency} {e.billed_cost}"
            ))  # fmt: skip
        else:
            self.stdout.write(f"{day}: version {e.version} is current ({result.reason})")
