"""Helpers shared by management commands of several apps (ranges of time on the command
line, cut into UTC days), so no app imports another app's command module."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.core.management.base import CommandError, CommandParser


def hour_floor(ts: datetime) -> datetime:
    return ts.replace(minute=0, second=0, microsecond=0)


def parse_time(value: str, option: str) -> datetime:
    try:
        ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise CommandError(f"{option}: {value!r} is not an RFC 3339 time") from None
    if ts.tzinfo is None:
        raise CommandError(f"{option}: {value!r} needs a zone (Z or an offset)")
    return ts


def range_arguments_add(parser: CommandParser) -> None:
    """``--from`` and ``--to``, RFC 3339 times with a zone: the range a command works on."""
    parser.add_argument(
        "--from", dest="start", required=True, help="RFC 3339, e.g. 2026-11-01T00:00Z"
    )
    parser.add_argument("--to", dest="end", required=True, help="RFC 3339, exclusive")


def day_chunks(start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    """[start, end) cut at UTC midnights: each chunk lies in one UTC day, so no two chunks
    rebuild the same day's summary (they can run in parallel)."""
    chunks, cursor = [], hour_floor(start).astimezone(UTC)
    while cursor < end:
        midnight = cursor.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
        chunks.append((cursor, min(midnight, end)))
        cursor = chunks[-1][1]
    return chunks
