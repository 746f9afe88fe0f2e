"""The telemetry ingest path: parse a batch, validate each line, resolve GPUs and devices,
and store every good line exactly once.

A batch is a JSON array or NDJSON, optionally gzip-compressed. Lines are judged one by
one: bad lines are reported by number and field while good lines of the same batch are
stored. A (gpu, ts) that is already stored, or repeated inside the batch, is counted as a
duplicate, never an error and never written twice.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from operator import attrgetter, itemgetter
from typing import Any, TypeVar

import numpy as np
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from collectors.records import (
    GpuSample,
    RecordError,
    StorageSample,
    gpu_sample_from_mapping,
    storage_sample_from_mapping,
)
from collectors.rollups import (
    MINUTE_BOUNDS,
    PART_OF_COVERED,
    SECONDS_FIELDS,
    GpuMinute,
    gpu_minute_from_mapping,
)
from finops.fleet.models import Gpu, Node, Site, StorageDevice
from finops.ops.json_bounds import JsonTooDeep, json_depth_limit, json_loads_bounded
from finops.telemetry.models import RollupBacklog, SampleSource
from finops.telemetry.partitions import (
    GPU_MINUTES,
    GPU_SAMPLES,
    STORAGE_SAMPLES,
    partitions_ensure_range,
)
from finops.telemetry.rollups import MAX_SAMPLE_GAP_S, hours_recompute
from finops.telemetry.writes import (
    GPU_MINUTE_VALUE_COLUMNS,
    GPU_SAMPLE_COLUMNS,
    gpu_minute_columns_upsert,
    gpu_minute_rows_upsert,
    gpu_sample_rows_write,
    storage_sample_rows_write,
)

R = TypeVar("R")
# The sample's values in GPU_SAMPLE_COLUMNS order after gpu_id (attrgetter runs in C).
_GPU_ROW_VALUES = attrgetter(*GPU_SAMPLE_COLUMNS[1:-1])
_KEY_TS = itemgetter(1)
_KEY_GPU = itemgetter(0)
MAX_REPORTED_ERRORS = 100


class BatchError(ValueError):
    """The batch as a whole cannot be read (bad gzip, not JSON at all, too large)."""

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class IngestResult:
    accepted: int = 0
    duplicate: int = 0
    rejected: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)

    def reject(self, line: int, field_name: str, message: str) -> None:
        self.rejected += 1
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append({"line": line, "field": field_name, "message": message})

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "accepted": self.accepted,
            "duplicate": self.duplicate,
            "rejected": self.rejected,
            "errors": sorted(self.errors, key=lambda e: e["line"]),
        }
        if self.rejected > len(self.errors):
            out["errors_truncated"] = self.rejected - len(self.errors)
        return out


def decode_body(body: bytes, *, content_encoding: str = "", max_bytes: int | None = None) -> bytes:
    """The request body, gunzipped when sent with ``Content-Encoding: gzip``; the limit
    applies to the decompressed size too (a small gzip bomb is still refused)."""
    limit = max_bytes or settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    encoding = content_encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "x-gzip"):
        raise BatchError(
            f"Content-Encoding {content_encoding!r} is not supported; use gzip.", status=415
        )
    # Every gzip member is decoded (a body of several is one stream: RFC 1952); anything
    # after the last member that is not another member is refused, never ignored.
    out = bytearray()
    data = body
    while True:
        decompressor = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        try:
            out += decompressor.decompress(data, limit + 1 - len(out))
        except zlib.error as exc:
            raise BatchError(f"Body is not valid gzip: {exc}") from exc
        if len(out) > limit or decompressor.unconsumed_tail:
            raise BatchError(
                f"Decompressed body is larger than the {limit}-byte limit.", status=413
            )
        if not decompressor.eof:
            raise BatchError("Body is truncated gzip.")
        data = decompressor.unused_data
        if not data:
            return bytes(out)
        if not data.startswith(b"\x1f\x8b"):
            raise BatchError(f"Body has {len(data)} bytes after the gzip stream that are not gzip.")


def iter_batch(text: bytes) -> Iterator[tuple[int, Any]]:
    """(line number, parsed object or RecordError) for a JSON array or NDJSON body."""
    stripped = text.lstrip()
    if not stripped:
        raise BatchError("Body is empty: send a JSON array or NDJSON, one sample per line.")
    if stripped[:1] == b"[":
        try:
            items = json_loads_bounded(text)
        except JsonTooDeep as exc:
            raise BatchError(f"Body is not valid JSON: {exc}.") from None
        except ValueError as exc:  # JSONDecodeError, bad UTF-8, a number of 4,300+ digits
            raise BatchError(f"Body is not valid JSON: {exc}") from exc
        if not isinstance(items, list):
            raise BatchError("Body is not a JSON array of samples.")
        yield from enumerate(items, start=1)
        return
    limit = json_depth_limit()
    for number, raw in enumerate(text.split(b"\n"), start=1):
        if not raw.strip():
            continue
        try:
            yield number, json_loads_bounded(raw, limit=limit)
        except JsonTooDeep as exc:
            yield number, RecordError("(line)", f"not valid JSON: {exc}")
        except ValueError as exc:
            yield number, RecordError("(line)", f"not valid JSON: {exc}")


def _validate(body: bytes, parse: Callable[..., R], result: IngestResult) -> list[tuple[int, R]]:
    now = timezone.now()
    records: list[tuple[int, R]] = []
    for number, item in iter_batch(body):
        if isinstance(item, RecordError):
            result.reject(number, item.field, item.message)
            continue
        try:
            records.append((number, parse(item, now=now)))
        except RecordError as exc:
            result.reject(number, exc.field, exc.message)
    return records


def _unassigned_node() -> Node:
    site, _ = Site.objects.get_or_create(slug="unassigned", defaults={"provider": "other"})
    node, _ = Node.objects.get_or_create(hostname="unassigned", defaults={"site": site})
    return node


def _resolve_gpus(uuids: Iterable[str]) -> dict[str, int]:
    wanted = set(uuids)
    if connection.vendor == "postgresql":
        # One array parameter: an IN list of a thousand placeholders costs the driver more
        # to prepare than the lookup costs the database.
        with connection.cursor() as cursor:
            cursor.execute("SELECT uuid, id FROM fleet_gpu WHERE uuid = ANY(%s)", [list(wanted)])
            known = dict(cursor.fetchall())
    else:
        known = dict(Gpu.objects.filter(uuid__in=wanted).values_list("uuid", "id"))
    missing = wanted - known.keys()
    if missing and settings.TELEMETRY_UNKNOWN_GPU == "register":
        node = _unassigned_node()
        next_index = (
            Gpu.objects.filter(node=node).order_by("-index").values_list("index", flat=True).first()
            or -1
        ) + 1
        for offset, uuid in enumerate(sorted(missing)):
            gpu, _ = Gpu.objects.get_or_create(
                uuid=uuid, defaults={"node": node, "index": next_index + offset}
            )
            known[uuid] = gpu.id
    return known


def _note_late(earliest: datetime | None, latest: datetime | None) -> None:
    """Samples older than the rollup lateness window will not be seen by the regular rollup;
    remember their range so the backlog task recomputes it."""
    if earliest is None or latest is None:
        return
    horizon = timezone.now() - timedelta(seconds=settings.TELEMETRY_ROLLUP_LATENESS_S)
    # A sample changes the minutes of its own interval and the interval of the sample
    # before it (which it shortens): up to one cap on either side.
    reach = timedelta(seconds=MAX_SAMPLE_GAP_S)
    if earliest - reach < horizon:
        start = (earliest - reach).replace(second=0, microsecond=0)
        end = min(latest + reach, horizon).replace(second=0, microsecond=0) + timedelta(minutes=1)
        RollupBacklog.objects.create(start=start, end=end)


def gpu_samples_ingest(
    *, body: bytes, content_encoding: str = "", source: str = SampleSource.NVML
) -> IngestResult:
    result = IngestResult()
    records = _validate(
        decode_body(body, content_encoding=content_encoding), gpu_sample_from_mapping, result
    )
    return gpu_samples_store(records=records, result=result, source=source)


def gpu_samples_store(
    *,
    records: list[tuple[int, GpuSample]],
    result: IngestResult | None = None,
    source: str = SampleSource.NVML,
) -> IngestResult:
    """Store validated samples (line number, sample); counts into ``result``.

    Duplicates, within the batch or of stored rows, are left to the (gpu, ts) unique index:
    the COPY fast path fails on one and the batch takes the conflict-tolerant path, which
    stores each (gpu, ts) once; what was not inserted is counted as duplicate."""
    result = result or IngestResult()
    gpu_ids = _resolve_gpus(sample.gpu_uuid for _, sample in records)
    try:  # every GPU known: one comprehension, no per-row branches
        rows = [(gpu_ids[s.gpu_uuid], *_GPU_ROW_VALUES(s), source) for _, s in records]
    except KeyError:
        rows = []
        for number, s in records:
            gpu_id = gpu_ids.get(s.gpu_uuid)
            if gpu_id is None:
                result.reject(number, "gpu_uuid", _unknown_gpu(s.gpu_uuid))
                continue
            rows.append((gpu_id, *_GPU_ROW_VALUES(s), source))
    stamps = list(map(_KEY_TS, rows))
    earliest, latest = min(stamps, default=None), max(stamps, default=None)
    partitions_ensure_range(GPU_SAMPLES, earliest, latest)
    with transaction.atomic():
        inserted = gpu_sample_rows_write(rows)
        _note_late(earliest, latest)
    # After the commit, in a statement of its own: the GPU rows it locks are not held for
    # the whole write, so batches for the same GPUs (an agent and the DCGM pull) do not
    # queue behind each other.
    gpu_last_seen_advance(zip(map(_KEY_GPU, rows), stamps, strict=True))
    result.accepted += inserted
    result.duplicate += len(rows) - inserted
    return result


def gpu_last_seen_advance(keys: Iterable[tuple[int, datetime]]) -> None:
    """Move each GPU's ``last_seen_at`` to the time of its newest sample, never back.

    "Last seen" is when the GPU last reported, not when its data arrived: an agent that
    replays an hour of spooled samples after an outage must leave a GPU that died during
    the outage looking as stale as it is, so that its telemetry-stale alert fires."""
    newest: dict[int, datetime] = {}
    for gpu_id, ts in keys:
        if gpu_id not in newest or ts > newest[gpu_id]:
            newest[gpu_id] = ts
    if not newest:
        return
    if connection.vendor == "postgresql":
        # One UPDATE joined to two arrays: a batch of a thousand GPUs' minutes is a join,
        # not a thousand-branch CASE, and two parameters, not two thousand to prepare.
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE fleet_gpu SET last_seen_at = v.ts "
                "FROM unnest(%s::bigint[], %s::timestamptz[]) AS v(id, ts) "
                "WHERE fleet_gpu.id = v.id "
                "AND (fleet_gpu.last_seen_at IS NULL OR fleet_gpu.last_seen_at < v.ts)",
                [list(newest), list(newest.values())],
            )
        return
    params: list[Any] = []
    for gpu_id, ts in newest.items():
        params += [gpu_id, connection.ops.adapt_datetimefield_value(ts)]
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH v(id, ts) AS (VALUES {', '.join(['(%s, %s)'] * len(newest))}) "  # noqa: S608
            "UPDATE fleet_gpu SET last_seen_at = v.ts FROM v WHERE fleet_gpu.id = v.id "
            "AND (fleet_gpu.last_seen_at IS NULL OR fleet_gpu.last_seen_at < v.ts)",
            params,
        )


def _unknown_gpu(uuid: str) -> str:
    return f"unknown GPU {uuid!r}: register its node with POST /api/v1/nodes"


MINUTE_COLUMNS = GPU_MINUTE_VALUE_COLUMNS[:-1]  # from_edge is set here


def gpu_minutes_ingest(*, body: bytes, content_encoding: str = "") -> IngestResult:
    """Minute rollups computed by an agent (``collectors.rollups``), one per GPU and
    minute: validated line by line like samples, written as upserts by (GPU, minute) so a
    corrected minute sent again replaces the first, then the hours they touch follow."""
    result = IngestResult()
    records = _validate(
        decode_body(body, content_encoding=content_encoding), gpu_minute_from_mapping, result
    )
    return gpu_minutes_store(records=records, result=result)


def gpu_minutes_store(
    *, records: list[tuple[int, GpuMinute]], result: IngestResult
) -> IngestResult:
    """Upsert validated minutes (``from_edge``: the rollup of raw samples leaves them be)
    and recompute the hours they touch, in one transaction."""
    gpu_ids = _resolve_gpus({m.gpu_uuid for _, m in records})
    rows: dict[tuple[int, datetime], tuple[Any, ...]] = {}
    for number, m in records:
        gpu_id = gpu_ids.get(m.gpu_uuid)
        if gpu_id is None:
            result.reject(number, "gpu_uuid", _unknown_gpu(m.gpu_uuid))
            continue
        rows[(gpu_id, m.ts)] = (gpu_id, m.ts, *(getattr(m, c) for c in MINUTE_COLUMNS), True)
    if rows:
        first, last = min(k[1] for k in rows), max(k[1] for k in rows)
        partitions_ensure_range(GPU_MINUTES, first, last)
        with transaction.atomic():
            gpu_minute_rows_upsert(list(rows.values()))
            hours_recompute(start=first, end=last + timedelta(minutes=1),
                            gpu_ids={gpu_id for gpu_id, _ in rows})  # fmt: skip
        gpu_last_seen_advance((gpu_id, ts + timedelta(seconds=59)) for gpu_id, ts in rows)
    result.accepted += len(rows)
    return result


def gpu_minute_columns_store(columns: Mapping[str, Any]) -> int:
    """Minute rows of many GPUs given as columns (numpy arrays of equal length): ``gpu_id``,
    ``ts`` (epoch seconds of whole minutes) and every value of ``collectors.rollups.GpuMinute``
    (NaN for an absent measurement), as a bulk writer such as the simulator or a backfill
    holds them. Checked column by column against what a minute may hold (ValueError naming
    the column and the first bad row), upserted by (GPU, minute) like edge minutes, and the
    hours they touch recomputed, in one transaction. Returns the rows written."""
    n = len(columns["gpu_id"])
    missing = sorted({"gpu_id", "ts", *MINUTE_BOUNDS} - set(columns))
    if missing:
        raise ValueError(f"minute columns missing: {', '.join(missing)}")
    if not n:
        return 0
    arrays = {name: np.asarray(columns[name]) for name in ("gpu_id", "ts", *MINUTE_BOUNDS)}
    for name, array in arrays.items():
        if len(array) != n:
            raise ValueError(f"{name}: {len(array)} values, gpu_id has {n}")
    ts = arrays["ts"].astype(np.int64)
    _first_bad("ts", ts % 60 != 0, "is not the start of a minute (:00 seconds)")
    known = set(Gpu.objects.filter(id__in=np.unique(arrays["gpu_id"]).tolist()).values_list(
        "id", flat=True))  # fmt: skip
    _first_bad("gpu_id", ~np.isin(arrays["gpu_id"], list(known)), "is not a registered GPU")
    covered = arrays["covered_s"].astype(float)
    for name, (_, low, high) in MINUTE_BOUNDS.items():
        values = arrays[name].astype(float)
        nullable = name not in SECONDS_FIELDS and name != "samples"
        absent = np.isnan(values) if nullable else np.zeros(n, dtype=bool)
        with np.errstate(invalid="ignore"):
            bad = ~absent & ~((values >= low) & (values <= high))
        _first_bad(name, bad, f"must be between {low:g} and {high:g}")
        if name in PART_OF_COVERED:
            _first_bad(name, values > covered + 1e-6, "exceeds covered_s")
    out: dict[str, Any] = {"gpu_id": arrays["gpu_id"].astype(np.int64), "ts": ts}
    for name in MINUTE_COLUMNS:
        out[name] = arrays[name].astype(np.int64 if name == "samples" else np.float64)
    out["from_edge"] = np.ones(n, dtype=bool)
    first, last = (datetime.fromtimestamp(int(x), tz=UTC) for x in (ts.min(), ts.max()))
    partitions_ensure_range(GPU_MINUTES, first, last)
    gpu_ids = set(out["gpu_id"].tolist())
    with transaction.atomic():
        gpu_minute_columns_upsert(out)
        hours_recompute(start=first, end=last + timedelta(minutes=1), gpu_ids=gpu_ids)
    # Each GPU's newest minute: the last of its run once sorted by (GPU, minute).
    order = np.lexsort((ts, arrays["gpu_id"]))
    gpus, stamps = arrays["gpu_id"][order], ts[order]
    last = np.append(gpus[1:] != gpus[:-1], True)
    gpu_last_seen_advance(
        (int(g), datetime.fromtimestamp(int(t) + 59, tz=UTC))
        for g, t in zip(gpus[last], stamps[last], strict=True)
    )
    return n


def _first_bad(name: str, bad: Any, message: str) -> None:
    if bad.any():
        raise ValueError(f"{name}: row {int(np.argmax(bad))} {message}")


def storage_samples_ingest(*, body: bytes, content_encoding: str = "") -> IngestResult:
    result = IngestResult()
    records = _validate(
        decode_body(body, content_encoding=content_encoding), storage_sample_from_mapping, result
    )
    return storage_samples_store(records=records, result=result)


def _resolve_devices(
    records: list[tuple[int, StorageSample]],
) -> tuple[dict[tuple[str, str], int], set[str]]:
    hostnames = {s.hostname for _, s in records}
    nodes = dict(Node.objects.filter(hostname__in=hostnames).values_list("hostname", "id"))
    devices = {
        (hostname, name): pk
        for hostname, name, pk in StorageDevice.objects.filter(
            node__hostname__in=hostnames
        ).values_list("node__hostname", "name", "id")
    }
    for _, s in records:
        key = (s.hostname, s.device)
        if key in devices or s.hostname not in nodes:
            continue
        device, _ = StorageDevice.objects.get_or_create(
            node_id=nodes[s.hostname],
            name=s.device,
            defaults={
                "kind": s.kind or "local-ssd",
                "filesystem": s.filesystem or "",
                "mount_point": s.mount_point or "",
                "capacity_bytes": s.capacity_bytes,
            },
        )
        devices[key] = device.id
    return devices, set(nodes)


def storage_samples_store(
    *, records: list[tuple[int, StorageSample]], result: IngestResult | None = None
) -> IngestResult:
    result = result or IngestResult()
    devices, known_hosts = _resolve_devices(records)
    rows: dict[tuple[int, datetime], tuple[Any, ...]] = {}
    for number, s in records:
        if s.hostname not in known_hosts:
            result.reject(
                number,
                "hostname",
                f"unknown node {s.hostname!r}: register it with POST /api/v1/nodes",
            )
            continue
        device_id = devices[(s.hostname, s.device)]
        key = (device_id, s.ts)
        if key in rows:
            result.duplicate += 1
            continue
        rows[key] = (
            device_id, s.ts, s.read_bytes_per_s, s.write_bytes_per_s, s.read_iops,
            s.write_iops, s.await_ms, s.util_pct,
        )  # fmt: skip
    stamps = [key[1] for key in rows]
    partitions_ensure_range(STORAGE_SAMPLES, min(stamps, default=None), max(stamps, default=None))
    with transaction.atomic():
        inserted = storage_sample_rows_write(list(rows.values()))
    result.accepted += inserted
    result.duplicate += len(rows) - inserted
    return result
