from __future__ import annotations

from pathlib import Path
from typing import Any

import requests
from django.core.management.base import BaseCommand, CommandError, CommandParser

from collectors.pricing.offers import PriceError
from collectors.pricing.video_api import video_api_csv
from finops.pricing.services import price_offers_load, video_api_prices_load
from finops.pricing.sources import HISTORY_KINDS, KINDS, SOURCE_NAMES, offers_from


class Command(BaseCommand):
    help = (
        "Load a price catalog or rate card: aws (EC2 offer file or GetProducts pages), azure "
        "(Retail Prices pages), gcp (Cloud Billing skus), csv (rate card), onprem (JSON), "
        "video-api (a video API price sheet CSV, docs/placement.md). All of it loads, or "
        "nothing does."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("kind", choices=[*KINDS, "video-api"])
        parser.add_argument("location", help="file path or http(s) URL (paged APIs are followed)")
        parser.add_argument("--region", action="append", help="only these regions (repeatable)")
        parser.add_argument("--dry-run", action="store_true", help="print what would change")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["kind"] == "video-api":
            self._video_api(options)
            return
        regions = set(options["region"]) if options["region"] else None

        def progress(count: int) -> None:
            self.stderr.write(f"  {count:,} records read…", ending="\r")

        try:
            report = price_offers_load(
                offers=offers_from(
                    options["kind"], options["location"], regions=regions, progress=progress
                ),
                source=SOURCE_NAMES[options["kind"]],
                dry_run=options["dry_run"],
                history=options["kind"] in HISTORY_KINDS,
            )
        except PriceError as exc:
            raise CommandError(
                f"{exc}. Nothing was loaded; the previous rates are untouched."
            ) from exc
        except (requests.RequestException, OSError) as exc:
            raise CommandError(
                f"cannot read {options['location']}: {exc}. Nothing was loaded."
            ) from exc
        if options["dry_run"] or options["verbosity"] > 1:
            for line in report.changes:
                self.stdout.write(line)
        for skipped in report.skipped[:20]:
            self.stderr.write(
                f"  skipped {skipped.provider} {skipped.sku} {skipped.region}: {skipped.reason}"
            )
        prefix = "Dry run, nothing written: " if options["dry_run"] else ""
        self.stdout.write(self.style.SUCCESS(prefix + report.summary()))

    def _video_api(self, options: dict[str, Any]) -> None:
        path = Path(options["location"])
        try:
            with path.open(newline="") as f:
                report = video_api_prices_load(video_api_csv(f), dry_run=options["dry_run"])
        except PriceError as exc:
            raise CommandError(
                f"{exc}. Nothing was loaded; the stored prices are untouched."
            ) from exc
        except OSError as exc:
            raise CommandError(f"cannot read {path}: {exc}. Nothing was loaded.") from exc
        for line in report.changes if options["dry_run"] or options["verbosity"] > 1 else []:
            self.stdout.write(line)
        prefix = "Dry run, nothing written: " if options["dry_run"] else ""
        self.stdout.write(self.style.SUCCESS(prefix + report.summary()))
