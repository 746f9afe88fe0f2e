from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from finops.alerts.prometheus_rules import minute_rules_yaml, rules_yaml


class Command(BaseCommand):
    help = (
        "Write Prometheus alerting rules with FrameOps' default conditions (dcgm-exporter), "
        "or with --minutes the recording rules of per-GPU minute rollups."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--output",
            help="where to write (- for standard output); default "
            "deploy/prometheus/frameops-rules.yml, or frameops-minute-rules.yml with --minutes",
        )
        parser.add_argument(
            "--minutes",
            action="store_true",
            help="the minute-rollup recording rules (DCGM_PULL_MODE=minutes reads them)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        text = minute_rules_yaml() if options["minutes"] else rules_yaml()
        name = "frameops-minute-rules.yml" if options["minutes"] else "frameops-rules.yml"
        output = options["output"] or str(Path(settings.BASE_DIR) / "deploy/prometheus" / name)
        if output == "-":
            self.stdout.write(text, ending="")
            return
        path = Path(output)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        self.stdout.write(self.style.SUCCESS(f"Wrote {path}"))
