from __future__ import annotations

import json
from dataclasses import asdict
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from finops.fleet.models import Node
from finops.insights.services import findings_refresh
from finops.simulation.studio import (
    FAULTS,
    PERSONA,
    persona_ensure,
    studio_clear,
    studio_simulate,
)


class Command(BaseCommand):
    help = (
        "Write a simulated studio (labelled 'sim-' / '(simulated)') through the same services "
        "as real data, with known faults and decoys, and its ground truth as JSON; --clear "
        "removes every simulated row."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--days", type=int, default=7)
        parser.add_argument("--gpus", type=int, default=64, help="at least 64 (8 nodes of 8)")
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument(
            "--faults", default="all",
            help=f"comma-separated, 'all' or 'none'; of: {', '.join(FAULTS)}",
        )  # fmt: skip
        parser.add_argument(
            "--truth",
            default=str(settings.VAR_DIR / "simulated-studio-truth.json"),
            help="where the ground truth is written",
        )
        parser.add_argument("--clear", action="store_true", help="remove the simulated studio")
        parser.add_argument(
            "--if-empty", action="store_true",
            help="only when the database holds no node yet (make run's first start)",
        )  # fmt: skip
        parser.add_argument(
            "--detect", action="store_true", help="run the detectors over the simulated window"
        )
        parser.add_argument(
            "--apply-fixes-at", type=int, default=None, metavar="DAY",
            help="apply each injected fault's recommended fix from this day (1 to days - 1); "
            "with --detect, the detectors run over the day before it and over each day after, "
            "so the fixed findings resolve and their realized savings are measured",
        )  # fmt: skip
        parser.add_argument(
            "--persona", action="store_true",
            help=f"create {PERSONA!r}, a manager of the simulated studio A, and print its "
            "one-time password (once)",
        )  # fmt: skip

    def handle(self, *args: Any, **options: Any) -> None:
        if options["clear"]:
            counts = studio_clear()
            self.stdout.write(self.style.SUCCESS(
                "Removed the simulated studio: " + ", ".join(f"{v} {k}" for k, v in counts.items())
            ))  # fmt: skip
            return
        if options["if_empty"] and Node.objects.exists():
            self.stdout.write("The database holds a fleet already; nothing simulated.")
            self._persona(options)
            return
        if not 1 <= options["days"] <= 60:
            raise CommandError("--days must be between 1 and 60")
        spec = options["faults"]
        faults = list(FAULTS) if spec == "all" else [] if spec == "none" else spec.split(",")
        try:
            truth = studio_simulate(
                days=options["days"], gpus=options["gpus"], seed=options["seed"], faults=faults,
                progress=lambda text: self.stderr.write(f"  {text}"),
                apply_fixes_at=options["apply_fixes_at"],
            )  # fmt: skip
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        if options["detect"] and truth.fixes_at:
            self._detect_around_fixes(truth)
        elif options["detect"]:
            report = findings_refresh(
                start=datetime.fromisoformat(truth.start), end=datetime.fromisoformat(truth.end)
            )
            self.stderr.write(f"  detectors: {report.found} finding(s)")
        path = Path(options["truth"])
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(truth), indent=1))
        self.stdout.write(self.style.SUCCESS(
            f"Simulated {options['days']} days of {options['gpus']} GPUs with "
            f"{len(truth.faults)} faults; ground truth in {path}"
        ))  # fmt: skip
        self._persona(options)

    def _detect_around_fixes(self, truth: Any) -> None:
        """The day before the fixes raises the findings; each day after is a refresh of the
        same length (a finding resolves after INSIGHTS_RESOLVE_AFTER_RUNS of them miss it)."""
        fixed, end = datetime.fromisoformat(truth.fixes_at), datetime.fromisoformat(truth.end)
        day = timedelta(days=1)
        report = findings_refresh(start=fixed - day, end=fixed)
        self.stderr.write(f"  detectors, the day before the fixes: {report.found} finding(s)")
        start = fixed
        while start + day <= end:
            report = findings_refresh(start=start, end=start + day)
            self.stderr.write(
                f"  detectors, {start:%Y-%m-%d}: {report.found} finding(s), {report.resolved} "
                f"resolved, {report.measured} measured"
            )
            start += day

    def _persona(self, options: dict[str, Any]) -> None:
        if not options["persona"]:
            return
        password = persona_ensure()
        if password is not None:
            self.stdout.write(self.style.SUCCESS(
                f"Created {PERSONA!r} (manager of sim-studio-a: sees only that team) with "
                f"one-time password: {password}\nIt is printed only now."
            ))  # fmt: skip
