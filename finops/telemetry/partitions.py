"""Telemetry tables partitioned by time on PostgreSQL: raw GPU and storage samples in daily
partitions, GPU minute rollups in monthly ones.

Each table has a default partition that takes a row no partition covers (a backfill of a
day not created yet, a row written outside the ingest path); partitions are created ahead
of time by the ``telemetry-partitions`` beat task and on demand by ingest for the days a
batch holds, and creating one moves the default partition's rows of its range into it.
Retention drops whole partitions, and deletes in batches only what the default partition
and the partition at the cut-off hold. SQLite (the embedded demo) keeps plain tables: every
function here does nothing there.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db import connection, transaction

LOCK_CLASS = 7_351  # pg_advisory_xact_lock(class, table oid): one creator at a time


@dataclass(frozen=True)
class Partitioned:
    table: str
    period: str  # "day" or "month"

    def floor(self, ts: datetime) -> datetime:
        ts = ts.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        return ts.replace(day=1) if self.period == "month" else ts

    def following(self, start: datetime) -> datetime:
        if self.period == "day":
            return start + timedelta(days=1)
        return (start.replace(day=28) + timedelta(days=4)).replace(day=1)

    def name(self, start: datetime) -> str:
        return (
            f"{self.table}_p{start:%Y%m%d}"
            if self.period == "day"
            else (f"{self.table}_p{start:%Y%m}")
        )

    @property
    def default(self) -> str:
        return f"{self.table}_default"


GPU_SAMPLES = Partitioned("telemetry_gpusample", "day")
STORAGE_SAMPLES = Partitioned("telemetry_storagesample", "day")
GPU_MINUTES = Partitioned("telemetry_gpuminute", "month")
TABLES = (GPU_SAMPLES, STORAGE_SAMPLES, GPU_MINUTES)

_known: set[str] = set()  # partitions this process has seen, so ingest asks once


def _enabled() -> bool:
    return connection.vendor == "postgresql"


def is_partitioned(table: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_partitioned_table WHERE partrelid = %s::regclass)",
            [table],
        )
        return bool(cursor.fetchone()[0])


def partitions_of(spec: Partitioned) -> list[tuple[str, datetime | None, datetime | None]]:
    """(name, start, end) of each partition; the default partition has no bounds."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = %s::regclass "
            "ORDER BY c.relname",
            [spec.table],
        )
        rows = cursor.fetchall()
    out: list[tuple[str, datetime | None, datetime | None]] = []
    for name, bound in rows:
        if bound == "DEFAULT":
            out.append((name, None, None))
            continue
        # FOR VALUES FROM ('2026-11-01 00:00:00+00') TO ('2026-11-02 00:00:00+00')
        low, high = (part.split("'")[1] for part in bound.split(" TO "))
        out.append((name, datetime.fromisoformat(low), datetime.fromisoformat(high)))
    return out


def partition_ensure(spec: Partitioned, start: datetime) -> bool:
    """The partition holding ``start`` (its period), created if missing with the default
    partition's rows of its range moved into it. Returns whether it was created."""
    if not _enabled():
        return False
    start = spec.floor(start)
    name = spec.name(start)
    if name in _known:
        return False
    end = spec.following(start)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s::regclass::oid::int)",
                       [LOCK_CLASS, spec.table])  # fmt: skip
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [name])
        if cursor.fetchone()[0]:
            _known.add(name)
            return False
        # Names below are this module's constants and dates, never request data.
        cursor.execute(
            f"CREATE TABLE {name} (LIKE {spec.table} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
        )
        cursor.execute(
            f"WITH moved AS (DELETE FROM {spec.default} WHERE ts >= %s AND ts < %s "  # noqa: S608
            f"RETURNING *) INSERT INTO {name} SELECT * FROM moved",
            [start, end],
        )
        cursor.execute(
            f"ALTER TABLE {spec.table} ATTACH PARTITION {name} FOR VALUES FROM (%s) TO (%s)",
            [start, end],
        )
    _known.add(name)
    return True


def partitions_ensure_range(
    spec: Partitioned, first: datetime | None, last: datetime | None
) -> int:
    """Every partition from ``first``'s period to ``last``'s; returns how many were created."""
    if first is None or last is None or not _enabled():
        return 0
    created, cursor = 0, spec.floor(first)
    while cursor <= last:
        created += partition_ensure(spec, cursor)
        cursor = spec.following(cursor)
    return created


def partitions_ahead(*, now: datetime, days: int) -> dict[str, int]:
    """Partitions from today to ``days`` ahead (daily tables) and this month and the next
    (monthly), created before data needs them."""
    created: dict[str, int] = {}
    for spec in TABLES:
        horizon = now + (timedelta(days=days) if spec.period == "day" else timedelta(days=32))
        created[spec.table] = partitions_ensure_range(spec, now, horizon)
    return created


def partitions_drop_before(spec: Partitioned, before: datetime) -> int:
    """Drop every partition that ends at or before ``before``; returns how many."""
    if not _enabled():
        return 0
    dropped = 0
    for name, _, end in partitions_of(spec):
        if end is not None and end <= before:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(f"ALTER TABLE {spec.table} DETACH PARTITION {name}")
                cursor.execute(f"DROP TABLE {name}")
            _known.discard(name)
            dropped += 1
    return dropped


def table_partition(schema_editor: object, spec: Partitioned, *, ahead_days: int = 3) -> None:
    """Convert a plain table into a partitioned one in place, keeping every row, its
    columns, identity, constraints and indexes (under their names): used by the migration.
    The primary key becomes (id, ts), as a partitioned table's keys must hold the
    partition column."""
    table = spec.table
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = %s::regclass AND contype IN ('u', 'c', 'f') ORDER BY conname",
            [table],
        )
        constraints = cursor.fetchall()
        cursor.execute(
            "SELECT indexdef FROM pg_indexes WHERE tablename = %s AND indexname NOT IN "
            "(SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass)",
            [table, table],
        )
        indexes = [row[0] for row in cursor.fetchall()]
        cursor.execute(f"SELECT min(ts), max(ts), max(id) FROM {table}")  # noqa: S608
        first, last, top = cursor.fetchone()
        old = f"{table}_unpartitioned"
        cursor.execute(f"ALTER TABLE {table} RENAME TO {old}")
        cursor.execute(
            f"CREATE TABLE {table} (LIKE {old} INCLUDING DEFAULTS INCLUDING IDENTITY) "
            "PARTITION BY RANGE (ts)"
        )
        cursor.execute(f"CREATE TABLE {spec.default} PARTITION OF {table} DEFAULT")
        now = datetime.now(UTC)
        start = spec.floor(min(first, now) if first else now)
        end = max(last, now) if last else now
        end += timedelta(days=ahead_days) if spec.period == "day" else timedelta(days=32)
        while start <= end:
            cursor.execute(
                f"CREATE TABLE {spec.name(start)} PARTITION OF {table} "
                "FOR VALUES FROM (%s) TO (%s)",
                [start, spec.following(start)],
            )
            start = spec.following(start)
        cursor.execute(f"INSERT INTO {table} SELECT * FROM {old}")  # noqa: S608
        if top is not None:
            cursor.execute("SELECT setval(pg_get_serial_sequence(%s, 'id'), %s)", [table, top])
        cursor.execute(f"DROP TABLE {old}")
        cursor.execute(f"ALTER TABLE {table} ADD CONSTRAINT {table}_pkey PRIMARY KEY (id, ts)")
        for name, definition in constraints:
            cursor.execute(f"ALTER TABLE {table} ADD CONSTRAINT {name} {definition}")
        for definition in indexes:
            cursor.execute(definition)
