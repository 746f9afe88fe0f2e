"""Records shared by every source and sink, and their validation.

Every field carries its unit in its name. Validation turns an untrusted mapping (a JSON
object from an agent, a parsed exposition line) into a record or raises ``RecordError``
naming the field and the offending value, so an operator can fix the sender.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Any

# Samples further ahead than this are refused: a skewed clock would otherwise write the
# future into rollups that nobody recomputes.
MAX_FUTURE = timedelta(minutes=5)
EARLIEST_TS = datetime(2015, 1, 1, tzinfo=UTC)


class RecordError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class GpuSample:
    gpu_uuid: str
    ts: datetime
    sm_util_pct: float | None = None
    mem_used_bytes: int | None = None
    mem_total_bytes: int | None = None
    power_w: float | None = None
    power_limit_w: float | None = None
    temp_c: float | None = None
    sm_clock_mhz: int | None = None
    sm_clock_max_mhz: int | None = None
    clocks_event_reasons: int | None = None
    pcie_tx_bytes_per_s: float | None = None
    pcie_rx_bytes_per_s: float | None = None
    energy_mj: int | None = None

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["ts"] = format_ts(self.ts)
        return {k: v for k, v in out.items() if v is not None}


@dataclass(frozen=True, slots=True)
class StorageSample:
    hostname: str
    device: str
    ts: datetime
    read_bytes_per_s: float | None = None
    write_bytes_per_s: float | None = None
    read_iops: float | None = None
    write_iops: float | None = None
    await_ms: float | None = None
    util_pct: float | None = None
    kind: str | None = None
    filesystem: str | None = None
    mount_point: str | None = None
    capacity_bytes: int | None = None

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["ts"] = format_ts(self.ts)
        return {k: v for k, v in out.items() if v is not None}


INT8_MAX = 2**63 - 1
# name -> (integer?, minimum, maximum). Every bound fits the database column (int4, int8,
# double) and is far beyond any real GPU, so a value outside is a sender's bug, refused.
GPU_MEASUREMENTS: dict[str, tuple[bool, float, float]] = {
    "sm_util_pct": (False, 0, 100),
    "mem_used_bytes": (True, 0, INT8_MAX),
    "mem_total_bytes": (True, 0, INT8_MAX),
    "power_w": (False, 0, 100_000),
    "power_limit_w": (False, 0, 100_000),
    "temp_c": (False, -40, 150),
    "sm_clock_mhz": (True, 0, 100_000),
    "sm_clock_max_mhz": (True, 0, 100_000),
    "clocks_event_reasons": (True, 0, INT8_MAX),
    "pcie_tx_bytes_per_s": (False, 0, 1e13),
    "pcie_rx_bytes_per_s": (False, 0, 1e13),
    "energy_mj": (True, 0, INT8_MAX),
}
STORAGE_MEASUREMENTS: dict[str, tuple[bool, float, float]] = {
    "read_bytes_per_s": (False, 0, 1e13),
    "write_bytes_per_s": (False, 0, 1e13),
    "read_iops": (False, 0, 1e10),
    "write_iops": (False, 0, 1e10),
    "await_ms": (False, 0, 1e9),
    "util_pct": (False, 0, 100),
}
STORAGE_KINDS = ("local-nvme", "local-ssd", "hdd", "network")
GPU_FIELDS = frozenset(f.name for f in fields(GpuSample))
STORAGE_FIELDS = frozenset(f.name for f in fields(StorageSample))


def format_ts(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


def aware_utc(value: Any, *, field: str) -> datetime:
    """An RFC 3339 time with a zone (or an aware datetime) as UTC, or RecordError naming
    ``field``: not a time, no zone, or beyond the calendar once in UTC."""
    if isinstance(value, datetime):
        ts = value
    elif isinstance(value, str) and value.strip():
        try:
            ts = datetime.fromisoformat(value.strip())
        except ValueError:
            raise RecordError(field, f"{value[:60]!r} is not an RFC 3339 timestamp") from None
    else:
        raise RecordError(field, f"{_shown(value)} is not an RFC 3339 timestamp string")
    if ts.tzinfo is None:
        raise RecordError(field, f"{value!r} has no time zone; add 'Z' or an offset")
    try:
        return ts.astimezone(UTC)
    except (OverflowError, ValueError):
        raise RecordError(field, f"{value!r} is outside the range of dates") from None


def parse_ts(value: Any, *, field: str = "ts", now: datetime | None = None) -> datetime:
    """An RFC 3339 timestamp with a zone (or an aware datetime), as UTC, from 2015 to
    ``MAX_FUTURE`` ahead of ``now``."""
    ts = aware_utc(value, field=field)
    now = now or datetime.now(UTC)
    if ts > now + MAX_FUTURE:
        raise RecordError(field, f"{format_ts(ts)} is in the future (server time {format_ts(now)})")
    if ts < EARLIEST_TS:
        raise RecordError(field, f"{format_ts(ts)} is before {EARLIEST_TS.year}")
    return ts


def _measurement(name: str, value: Any, spec: tuple[bool, float, float]) -> float | int:
    integer, low, high = spec
    # The common case first, at ingest rates: a finite number within bounds (NaN fails
    # every comparison and takes the checks below).
    kind = type(value)
    if kind is float and low <= value <= high:
        if not integer:
            return 0.0 if -1e-30 < value < 1e-30 else value
        if value.is_integer():
            return int(value)
    elif kind is int and low <= value <= high:
        return value if integer else float(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RecordError(name, f"{_shown(value)} is not a number")
    if isinstance(value, float) and not math.isfinite(value):
        raise RecordError(name, f"{value!r} is not a finite number")
    if value < low or value > high:
        raise RecordError(
            name, f"{_shown(value)} is out of range (must be between {low:g} and {high:g})"
        )
    if integer:
        if isinstance(value, float):
            if not value.is_integer():
                raise RecordError(name, f"{value!r} must be a whole number")
            return int(value)
        return int(value)
    # A reading below 1e-30 in magnitude is noise (and multiplied by seconds it would
    # underflow a database double, which PostgreSQL refuses): it is stored as zero.
    return 0.0 if abs(value) < 1e-30 else float(value)


def _shown(value: Any) -> str:
    """A value for an error message, cut short (a sender may send megabytes)."""
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:60]}… ({len(text)} characters)"


def _text(name: str, value: Any, *, max_length: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise RecordError(name, f"{_shown(value)} must be a non-empty string")
    if len(value) > max_length:
        raise RecordError(name, f"is {len(value)} characters long; at most {max_length}")
    if "\x00" in value:
        raise RecordError(name, "contains a NUL character")
    return value.strip()


def _check_known(data: Mapping[str, Any], known: frozenset[str]) -> None:
    unknown = sorted(set(data) - known)
    if unknown:
        raise RecordError(
            unknown[0],
            "unknown field" + (f" (also {', '.join(unknown[1:])})" if unknown[1:] else ""),
        )


def gpu_sample_from_mapping(data: Any, *, now: datetime | None = None) -> GpuSample:
    if not isinstance(data, Mapping):
        raise RecordError("(record)", f"expected a JSON object, got {type(data).__name__}")
    _check_known(data, GPU_FIELDS)
    if "gpu_uuid" not in data:
        raise RecordError("gpu_uuid", "is required")
    if "ts" not in data:
        raise RecordError("ts", "is required")
    values: dict[str, Any] = {
        "gpu_uuid": _text("gpu_uuid", data["gpu_uuid"], max_length=96),
        "ts": parse_ts(data["ts"], now=now),
    }
    for name, spec in GPU_MEASUREMENTS.items():
        raw = data.get(name)
        if raw is not None:
            values[name] = _measurement(name, raw, spec)
    if len(values) == 2:
        raise RecordError(
            "(record)", f"needs at least one measurement: {', '.join(GPU_MEASUREMENTS)}"
        )
    used, total = values.get("mem_used_bytes"), values.get("mem_total_bytes")
    if used is not None and total is not None and used > total:
        raise RecordError("mem_used_bytes", f"{used} exceeds mem_total_bytes {total}")
    return GpuSample(**values)


def storage_sample_from_mapping(data: Any, *, now: datetime | None = None) -> StorageSample:
    if not isinstance(data, Mapping):
        raise RecordError("(record)", f"expected a JSON object, got {type(data).__name__}")
    _check_known(data, STORAGE_FIELDS)
    for required in ("hostname", "device", "ts"):
        if required not in data:
            raise RecordError(required, "is required")
    values: dict[str, Any] = {
        "hostname": _text("hostname", data["hostname"], max_length=255),
        "device": _text("device", data["device"], max_length=128),
        "ts": parse_ts(data["ts"], now=now),
    }
    for name, spec in STORAGE_MEASUREMENTS.items():
        raw = data.get(name)
        if raw is not None:
            values[name] = _measurement(name, raw, spec)
    if len(values) == 3:
        raise RecordError(
            "(record)", f"needs at least one measurement: {', '.join(STORAGE_MEASUREMENTS)}"
        )
    kind = data.get("kind")
    if kind is not None:
        if kind not in STORAGE_KINDS:
            raise RecordError("kind", f"{kind!r} is not one of {', '.join(STORAGE_KINDS)}")
        values["kind"] = kind
    for name in ("filesystem", "mount_point"):
        if data.get(name) is not None:
            values[name] = _text(name, data[name], max_length=255)
    if data.get("capacity_bytes") is not None:
        values["capacity_bytes"] = _measurement(
            "capacity_bytes", data["capacity_bytes"], (True, 0, INT8_MAX)
        )
    return StorageSample(**values)
