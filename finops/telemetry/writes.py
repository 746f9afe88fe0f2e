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

import numpy as np
import psycopg
from django.db import connection, transaction

from finops.ops.columns import Column, copy_columns

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


GPU_MINUTE_TABLE = "telemetry_gpuminute"
# The rollup columns after gpu_id, ts (finops.telemetry.rollups.ROLLUP_COLUMNS), then the
# edge mark.
GPU_MINUTE_VALUE_COLUMNS = (
    "samples", "covered_s", "busy_s", "util_mean_pct", "util_max_pct", "mem_frac_mean",
    "mem_frac_max", "mem_pressure_s", "throttle_power_cap_s", "throttle_hw_slowdown_s",
    "throttle_sw_thermal_s", "throttle_hw_thermal_s", "throttle_power_brake_s",
    "clock_ratio_mean", "power_mean_w", "temp_max_c", "energy_j", "pcie_tx_bytes",
    "pcie_rx_bytes", "util_s", "mem_s", "clock_s", "power_s", "from_edge",
)  # fmt: skip
GPU_MINUTE_COLUMNS = ("gpu_id", "ts", *GPU_MINUTE_VALUE_COLUMNS)
GPU_MINUTE_TYPES = ("int8", "timestamptz", "int4", *["float8"] * 22, "bool")


def gpu_minute_rows_upsert(rows: Sequence[tuple[Any, ...]]) -> int:
    """Insert or replace minute rows (GPU_MINUTE_COLUMNS order) by (gpu, ts): a minute sent
    again replaces the first. PostgreSQL: COPY into a staging table, then one
    ``INSERT … ON CONFLICT DO UPDATE``; SQLite: the same statement per row."""
    if not rows:
        return 0
    cols = ", ".join(GPU_MINUTE_COLUMNS)
    update = ", ".join(f"{c} = excluded.{c}" for c in GPU_MINUTE_VALUE_COLUMNS)
    # Table and column names are this module's constants, never request data.
    upsert = (f"INSERT INTO {GPU_MINUTE_TABLE} ({cols}) {{source}} "
              f"ON CONFLICT (gpu_id, ts) DO UPDATE SET {update}")  # fmt: skip
    with connection.cursor() as wrapper:
        if connection.vendor != "postgresql":
            placeholders = ", ".join(["%s"] * len(GPU_MINUTE_COLUMNS))
            wrapper.executemany(upsert.format(source=f"VALUES ({placeholders})"), rows)
            return len(rows)
        cursor = wrapper.cursor
        stage = f"{GPU_MINUTE_TABLE}_stage"
        cursor.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {stage} ON COMMIT DELETE ROWS "  # noqa: S608
            f"AS SELECT {cols} FROM {GPU_MINUTE_TABLE} WITH NO DATA"
        )
        cursor.execute(f"TRUNCATE {stage}")
        copy_rows(cursor, stage, GPU_MINUTE_COLUMNS, GPU_MINUTE_TYPES, rows)
        cursor.execute(upsert.format(source=f"SELECT {cols} FROM {stage}"))  # noqa: S608
        cursor.execute(f"TRUNCATE {stage}")
        return len(rows)


def gpu_minute_columns_upsert(columns: dict[str, Any]) -> int:
    """Insert or replace minute rows given as numpy columns (GPU_MINUTE_COLUMNS, with ``ts``
    as epoch seconds and NaN for a null measurement). PostgreSQL: one binary COPY built by
    numpy (``finops.ops.columns``) straight into the table, or when some were stored before,
    into a staging table and one ``INSERT … ON CONFLICT DO UPDATE``: no row becomes a Python
    tuple. SQLite: rows."""
    n = len(columns["gpu_id"])
    if not n:
        return 0
    if connection.vendor != "postgresql":
        from datetime import UTC, datetime

        ts = [datetime.fromtimestamp(s, tz=UTC) for s in columns["ts"].tolist()]
        values = [[None if v != v else v for v in columns[c].tolist()]
                  for c in GPU_MINUTE_VALUE_COLUMNS]  # fmt: skip
        gpu_ids = columns["gpu_id"].tolist()
        return gpu_minute_rows_upsert(list(zip(gpu_ids, ts, *values, strict=True)))
    cols = ", ".join(GPU_MINUTE_COLUMNS)
    update = ", ".join(f"{c} = excluded.{c}" for c in GPU_MINUTE_VALUE_COLUMNS)
    stage = f"{GPU_MINUTE_TABLE}_stage"
    kinds = dict(zip(GPU_MINUTE_COLUMNS, GPU_MINUTE_TYPES, strict=True))
    copied = []
    for name in GPU_MINUTE_COLUMNS:
        values = np.asarray(columns[name])
        if name == "ts":  # epoch seconds -> microseconds
            values = values.astype(np.int64) * 1_000_000
        null = np.isnan(values) if values.dtype.kind == "f" else None
        copied.append(Column(name, kinds[name], values, null if null is not None and null.any()
                             else None))  # fmt: skip
    with connection.cursor() as wrapper:
        cursor = wrapper.cursor
        try:  # none of the minutes stored before (the usual case): straight in
            with transaction.atomic():
                copy_columns(cursor, GPU_MINUTE_TABLE, copied, n)
            return n
        except psycopg.errors.UniqueViolation:
            pass  # some were: replace them through the staging table
        # Table and column names are this module's constants; the values travel by COPY.
        cursor.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {stage} ON COMMIT DELETE ROWS "  # noqa: S608
            f"AS SELECT {cols} FROM {GPU_MINUTE_TABLE} WITH NO DATA"
        )
        cursor.execute(f"TRUNCATE {stage}")
        copy_columns(cursor, stage, copied, n)
        cursor.execute(
            f"INSERT INTO {GPU_MINUTE_TABLE} ({cols}) SELECT {cols} FROM {stage} "  # noqa: S608
            f"ON CONFLICT (gpu_id, ts) DO UPDATE SET {update}"
        )
        cursor.execute(f"TRUNCATE {stage}")
    return n
