"""``manage.py import_jobs FILE``: job events from a file (NDJSON or a JSON array, gzip
allowed; ``-`` reads standard input), for render farms backfilling history. The same
validation, idempotency and rules as ``POST /api/v1/jobs``, applied in order in batches of
``JOBS_BULK_MAX_LINES``; bad lines are reported by number and the others stored."""

from __future__ import annotations

import gzip
import io
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from finops.jobs.events import jobs_import_batch
from finops.telemetry.ingest import BatchError, iter_batch

SHOWN_ERRORS = 50


def _chunks(stream: Any, size: int) -> Iterator[list[tuple[int, Any]]]:
    """(line number, parsed line) in chunks of ``size`` lines, numbered over the file; a
    JSON array is read whole, NDJSON line by line."""
    if stream.peek(256).lstrip()[:1] == b"[":
        items = list(iter_batch(stream.read()))
        for start in range(0, len(items), size):
            yield items[start : start + size]
        return
    chunk: list[bytes] = []
    first = 1
    for number, raw in enumerate(stream, start=1):
        chunk.append(raw.rstrip(b"\r\n"))
        if len(chunk) == size:
            yield _parsed(chunk, first)
            chunk, first = [], number + 1
    if chunk:
        yield _parsed(chunk, first)


def _parsed(lines: list[bytes], first: int) -> list[tuple[int, Any]]:
    if not any(line.strip() for line in lines):
        return []
    return [(first + number - 1, item) for number, item in iter_batch(b"\n".join(lines))]


class Command(BaseCommand):
    help = __doc__.splitlines()[0].replace("``", "")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "file", help="NDJSON or JSON array of job events, .gz allowed; - for stdin"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        source = options["file"]
        try:
            raw: BinaryIO = sys.stdin.buffer if source == "-" else Path(source).open("rb")  # noqa: SIM115
        except OSError as exc:
            raise CommandError(f"cannot read {source}: {exc}") from exc
        with raw:
            stream: Any = io.BufferedReader(raw) if not hasattr(raw, "peek") else raw
            if stream.peek(2)[:2] == b"\x1f\x8b":
                stream = gzip.GzipFile(fileobj=stream)
            totals = {"accepted": 0, "created": 0, "updated": 0, "rejected": 0}
            errors: list[dict[str, Any]] = []
            started = time.monotonic()
            try:
                for chunk in _chunks(stream, settings.JOBS_BULK_MAX_LINES):
                    if not chunk:
                        continue
                    result = jobs_import_batch(chunk)
                    for name in totals:
                        totals[name] += getattr(result, name)
                    errors += result.errors[: SHOWN_ERRORS - len(errors)]
                    self.stdout.write(
                        f"  through line {chunk[-1][0]:,}: {totals['accepted']:,} events applied, "
                        f"{totals['rejected']:,} refused ({time.monotonic() - started:.1f} s)"
                    )
            except (BatchError, OSError, EOFError) as exc:
                raise CommandError(f"{source}: {exc}") from exc
        for error in errors:
            self.stderr.write(f"line {error['line']}: {error['field']}: {error['message']}")
        if totals["rejected"] > len(errors):
            self.stderr.write(f"… and {totals['rejected'] - len(errors)} more refused lines")
        summary = (
            f"{totals['accepted']:,} events applied: {totals['created']:,} jobs created, "
            f"{totals['updated']:,} updated; {totals['rejected']:,} lines refused"
        )
        if totals["rejected"]:
            raise CommandError(summary)
        self.stdout.write(self.style.SUCCESS(summary))
