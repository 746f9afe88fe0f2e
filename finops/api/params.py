"""Every query parameter is parsed here, so each bad value is a 400 that names its
parameter, with documented bounds (docs/costing.md). Times and body fields are parsed by
``finops.validation`` (shared with commands and domain code), re-exported here."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rest_framework import serializers

from finops.validation import (
    EARLIEST,
    JOB_FUTURE,
    LATEST,
    FiniteFloatField,
    ParameterError,
    ZonedDateTimeField,
    month_parse,
    time_parse,
)

__all__ = [
    "EARLIEST", "JOB_FUTURE", "LATEST", "FiniteFloatField", "ParameterError",
    "ZonedDateTimeField", "as_validation_error", "month_parse", "query_bool", "query_choice",
    "query_time", "time_parse",
]  # fmt: skip

BOOLEANS = {"true": True, "false": False}


def query_time(params: Any, name: str) -> datetime | None:
    """An optional time parameter: absent is None; present but empty is an error."""
    if name not in params:
        return None
    return time_parse(params[name], parameter=name)


def query_bool(params: Any, name: str) -> bool | None:
    if name not in params:
        return None
    value = params[name].strip().lower()
    if value not in BOOLEANS:
        raise ParameterError(name, f"{params[name][:40]!r}: use true or false")
    return BOOLEANS[value]


def query_choice(params: Any, name: str, choices: list[str] | tuple[str, ...]) -> str | None:
    if name not in params:
        return None
    if params[name] not in choices:
        raise ParameterError(name, f"{params[name][:40]!r}: use one of {', '.join(choices)}")
    return str(params[name])


def as_validation_error(exc: ParameterError) -> serializers.ValidationError:
    return serializers.ValidationError({exc.parameter: [exc.message]})


def query_window(params: Any, default: str) -> tuple[datetime, datetime]:
    """``?window=`` (``7d``, ``monthtodate``, ``START,END``) as (start, end), or a 400
    naming the parameter."""
    from finops.costing.selectors import QueryError, parse_window

    try:
        return parse_window(params.get("window", default))
    except (QueryError, ValueError) as exc:
        raise serializers.ValidationError({"window": [str(exc)]}) from exc
