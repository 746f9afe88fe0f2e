"""The prices the planner uses, as the JSON ``python -m inference plan --prices FILE`` reads:
the planner imports no Django, so FrameOps hands it the rates it has loaded."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from finops.pricing.selectors import planner_prices


class Command(BaseCommand):
    help = "Write the planner's prices (cheapest on-demand rate per GPU model) as JSON."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--output", default="-", help="file to write; - for stdout")

    def handle(self, *args: Any, **options: Any) -> None:
        prices = {
            name: {"price": str(price), "source": source}
            for name, (price, source) in sorted(planner_prices().items())
        }
        text = json.dumps(prices, indent=2) + "\n"
        if options["output"] == "-":
            self.stdout.write(text, ending="")
            return
        try:
            Path(options["output"]).write_text(text)
        except OSError as exc:
            raise CommandError(f"--output {options['output']}: {exc.strerror}") from None
        self.stderr.write(f"{len(prices)} GPU model price(s) written to {options['output']}")
