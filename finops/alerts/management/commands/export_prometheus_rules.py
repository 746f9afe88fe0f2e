from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from finops.alerts.prometheus_rules import rules_yaml


class Command(BaseCommand):
    help = "Write Prometheus alerting rules with FrameOps' default conditions (dcgm-exporter)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--output",
            default=str(Path(settings.BASE_DIR) / "deploy/prometheus/frameops-rules.yml"),
            help="where to write (- for standard output)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        text = rules_yaml()
        if options["output"] == "-":
            self.stdout.write(text, ending="")
            return
        path = Path(options["output"])
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        self.stdout.write(self.style.SUCCESS(f"Wrote {path}"))
