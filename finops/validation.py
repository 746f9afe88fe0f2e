"""Times and numbers parsed the same way wherever they come from (a query parameter, a
request body, a file a command reads, the simulated studio): each bad value names its
field, with documented bounds (docs/costing.md). Neutral ground: the API, the commands and
the domain apps import it; it imports none of them.

Times are RFC 3339 with a zone (``Z`` or an offset), between ``EARLIEST`` and ``LATEST``:
wide enough for any real fleet, narrow enough that hour and day arithmetic never leaves
the calendar.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from rest_framework import serializers

from collectors.records import RecordError, aware_utc

EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)
# How far ahead of the server's clock a job's times may be (a farm's clock runs ahead).
JOB_FUTURE = timedelta(days=1)


class ParameterError(ValueError):
    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(f"{parameter}: {message}")
        self.parameter = parameter
        self.message = message


def time_parse(value: Any, *, parameter: str) -> datetime:
    """An RFC 3339 time with a zone, in [EARLIEST, LATEST), as UTC."""
    try:
        ts = aware_utc(value, field=parameter)
    except RecordError as exc:
        raise ParameterError(parameter, exc.message) from None
    if not EARLIEST <= ts < LATEST:
        raise ParameterError(
            parameter, f"must lie between {EARLIEST:%Y-%m-%d} and {LATEST:%Y-%m-%d} (UTC)"
        )
    return ts


def month_parse(value: str, *, parameter: str) -> datetime:
    """``YYYY-MM`` between EARLIEST and LATEST: the month's first instant (UTC)."""
    try:
        start = datetime.strptime(value, "%Y-%m").replace(tzinfo=UTC)
    except ValueError:
        raise ParameterError(parameter, f"{value[:20]!r} is not YYYY-MM") from None
    if not EARLIEST <= start < LATEST - timedelta(days=31):
        raise ParameterError(parameter, f"must be a month from {EARLIEST:%Y-%m} to 2099-11")
    return start


class ZonedDateTimeField(serializers.DateTimeField):
    """A body time: RFC 3339 with a zone (a zoneless time is refused, as sample ingest
    refuses it), from EARLIEST to the server's clock plus ``max_future`` (JOB_FUTURE by
    default; None: up to LATEST)."""

    def __init__(self, *args: Any, max_future: timedelta | None = JOB_FUTURE, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.max_future = max_future

    def to_internal_value(self, value: Any) -> datetime:
        try:
            ts = time_parse(value, parameter=self.field_name or "time")
        except ParameterError as exc:
            raise serializers.ValidationError(exc.message) from None
        now = datetime.now(UTC)
        if self.max_future is not None and ts > now + self.max_future:
            raise serializers.ValidationError(
                f"{ts:%Y-%m-%dT%H:%M:%SZ} is more than {self.max_future} ahead of the "
                f"server's clock ({now:%Y-%m-%dT%H:%M:%SZ})"
            )
        return ts


class FiniteFloatField(serializers.FloatField):
    """A float that refuses what DRF's lets through or crashes on: infinities, NaN, and
    integers too large for a double (``1e400`` written out)."""

    def to_internal_value(self, data: Any) -> float:
        try:
            value = float(data)
        except OverflowError:
            raise serializers.ValidationError("is too large a number") from None
        except (TypeError, ValueError):
            self.fail("invalid")
        if value != value or value in (float("inf"), float("-inf")):
            raise serializers.ValidationError("must be a finite number")
        return super().to_internal_value(value)
