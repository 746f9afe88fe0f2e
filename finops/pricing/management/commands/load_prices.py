from __future__ import annotations

from typing import Any

import requests
from django.core.management.base import BaseCommand, CommandError, CommandParser

from collectors.pricing.offers import PriceError
from finops.pricing.services import price_offers_load
from finops.pricing.sources import HISTORY_KINDS, KINDS, SOURCE_NAMES, offers_from


class Command(BaseCommand):
    help = (
        "Load a price catalog or rate card: aws (EC2 offer file or GetProducts pages), azure "
        "(Retail Prices pages), gcp (Cloud Billing skus), csv (rate card), onprem (JSON). "
        "All of it loads, or nothing does."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("kind", choices=KINDS)
        parser.add_argument("location", help="file path or http(s) URL (paged APIs are followed)")
        parser.add_argument("--region", action="append", help="only these regions (repeatable)")
        parser.add_argument("--dry-run", action="store_true", help="print what would change")

    def handle(self, *args: Any, **options: Any) -> None:
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
