"""Bulk writes of sample rows, exactly once per (gpu, ts) or (device, ts).

PostgreSQL: the rows are first COPYed straight into the table inside a savepoint, the
fast path when nothing in the batch was stored before (the usual case for agents). If
the unique index objects, the savepoint is rolled back and the rows go through a
temporary staging table and ``INSERT … ON CONFLICT DO NOTHING``. SQLite (the embedded
demo): ``INSERT OR IGNORE`` in one ``executemany``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from django.db import connection, transaction

GPU_SAMPLE_TABLE = "telemetry_gpusample"
GPU_SAMPLE_COLUMNS = (
    "gpu_id", "ts", "sm_util_pct", "mem_used_bytes", "mem_total_bytes", "power_w",
    "power_limit_w", "temp_c", "sm_clock_mhz", "sm_clock_max_mhz", "clocks_event_reasons",
    "pcie_tx_bytes_per_s", "pcie_rx_bytes_per_s", "energy_mj", "source",
)  # fmt: skip
GPU_SAMPLE_TYPES = (
    "int8", "timestamptz", "float8", "int8", "int8", "float8", "float8", "float8", "int4",
    "int4", "int8", "float8", "float8", "int8", "text",
)  # fmt: skip
STORAGE_SAMPLE_TABLE = "telemetry_storagesample"
STORAGE_SAMPLE_COLUMNS = (
    "device_id", "ts", "read_bytes_per_s", "write_bytes_per_s", "read_iops", "write_iops",
    "await_ms", "util_pct",
)  # fmt: skip
STORAGE_SAMPLE_TYPES = (
    "int8",
    "timestamptz",
    "float8",
    "float8",
    "float8",
    "float8",
    "float8",
    "float8",
)


def copy_rows(
    cursor: Any,
    table: str,
    columns: Sequence[str],
    types: Sequence[str],
    rows: Sequence[tuple[Any, ...]],
) -> None:
    """Binary COPY of ``rows`` into ``table`` through a psycopg 3 cursor."""
    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(list(types))
        for row in rows:
            copy.write_row(row)


def _postgres_write(
    table: str,
    columns: Sequence[str],
    types: Sequence[str],
    key: str,
    rows: Sequence[tuple[Any, ...]],
) -> int:
    with connection.cursor() as wrapper:
        cursor = wrapper.cursor  # the psycopg cursor, for COPY
        try:
            with transaction.atomic():
                copy_rows(cursor, table, columns, types, rows)
            return len(rows)
        except psycopg.errors.UniqueViolation:
            pass  # some rows were stored before: take the conflict-tolerant path
        # Table and column names below are this module's constants, never request data.
        stage = f"{table}_stage"
        cols = ", ".join(columns)
        cursor.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {stage} ON COMMIT DELETE ROWS "  # noqa: S608
            f"AS SELECT {cols} FROM {table} WITH NO DATA"
        )
        cursor.execute(f"TRUNCATE {stage}")
        copy_rows(cursor, stage, columns, types, rows)
        cursor.execute(
            f"INSERT INTO {table} ({cols}) SELECT {cols} FROM {stage} "  # noqa: S608
            f"ON CONFLICT ({key}) DO NOTHING"
        )
        inserted = cursor.rowcount
        cursor.execute(f"TRUNCATE {stage}")
        return inserted


def _sqlite_write(table: str, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]) -> int:
    placeholders = ", ".join(["%s"] * len(columns))
    sql = f"INSERT OR IGNORE INTO {table} ({', '.join(columns)}) VALUES ({placeholders})"  # noqa: S608
    with connection.cursor() as cursor:
        before = connection.connection.total_changes
        cursor.executemany(sql, rows)
        return connection.connection.total_changes - before


def _write(
    table: str,
    columns: Sequence[str],
    types: Sequence[str],
    key: str,
    rows: Sequence[tuple[Any, ...]],
) -> int:
    if not rows:
        return 0
    if connection.vendor == "postgresql":
        return _postgres_write(table, columns, types, key, rows)
    return _sqlite_write(table, columns, rows)


def gpu_sample_rows_write(rows: Sequence[tuple[Any, ...]]) -> int:
    """Insert rows in GPU_SAMPLE_COLUMNS order; returns how many were new."""
    return _write(GPU_SAMPLE_TABLE, GPU_SAMPLE_COLUMNS, GPU_SAMPLE_TYPES, "gpu_id, ts", rows)


def storage_sample_rows_write(rows: Sequence[tuple[Any, ...]]) -> int:
    return _write(
        STORAGE_SAMPLE_TABLE, STORAGE_SAMPLE_COLUMNS, STORAGE_SAMPLE_TYPES, "device_id, ts", rows
    )
