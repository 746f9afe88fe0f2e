"""Minute and hour rollups of GPU samples, computed in the database.

Each sample stands for the time until the next sample of the same GPU, capped at
``MAX_SAMPLE_GAP_S`` (a silent agent does not make a GPU look busy for an hour); the last
sample of a series stands for the interval before it. Busy, memory-pressure and throttle
seconds are sums of those durations; means are duration-weighted. Energy comes from the
NVML energy counter's increments (a counter reset is skipped, not counted negative).

Recomputing a range deletes its rollup rows and inserts them again in one transaction, so
any interval can be recomputed any number of times with the same result.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from finops.telemetry.models import RollupBacklog

MAX_SAMPLE_GAP_S = 60
THROTTLE_BITS = {
    "throttle_power_cap_s": 0x4,
    "throttle_hw_slowdown_s": 0x8,
    "throttle_sw_thermal_s": 0x20,
    "throttle_hw_thermal_s": 0x40,
    "throttle_power_brake_s": 0x80,
}
ROLLUP_COLUMNS = (
    "gpu_id", "ts", "samples", "covered_s", "busy_s", "util_mean_pct", "util_max_pct",
    "mem_frac_mean", "mem_frac_max", "mem_pressure_s", *THROTTLE_BITS, "clock_ratio_mean",
    "power_mean_w", "temp_max_c", "energy_j", "pcie_tx_bytes", "pcie_rx_bytes",
)  # fmt: skip


@dataclass(frozen=True)
class _Dialect:
    minute: str  # SQL truncating column ts to its minute
    hour: str
    seconds_between: str  # format(a=..., b=...): seconds from b to a
    least: str
    real: str


POSTGRES = _Dialect(
    minute="date_trunc('minute', {col})",
    hour="date_trunc('hour', {col})",
    # date_part is double precision; EXTRACT is numeric, which made every sum numeric (x1.3).
    seconds_between="date_part('epoch', {a} - {b})",
    least="LEAST",
    real="float8",
)
SQLITE = _Dialect(
    minute="strftime('%%Y-%%m-%%d %%H:%%M:00', {col})",
    hour="strftime('%%Y-%%m-%%d %%H:00:00', {col})",
    # julianday is a double of days: round to the millisecond, below is float noise.
    seconds_between="ROUND((julianday({a}) - julianday({b})) * 86400.0, 3)",
    least="MIN",
    real="REAL",
)


def _dialect() -> _Dialect:
    return POSTGRES if connection.vendor == "postgresql" else SQLITE


def _minute_sql(d: _Dialect, shard_filter: str = "") -> str:
    # Conditional sums use FILTER: measurably cheaper than CASE inside the aggregate.
    throttles = ",\n".join(
        f"{d.least}(COALESCE(SUM(dt) FILTER (WHERE (clocks_event_reasons & {bit}) <> 0), 0), 60)"
        for bit in THROTTLE_BITS.values()
    )
    gap_next = d.seconds_between.format(a="next_ts", b="ts")
    gap_prev = d.seconds_between.format(a="ts", b="prev_ts")
    return f"""
INSERT INTO telemetry_gpuminute ({", ".join(ROLLUP_COLUMNS)})
WITH s AS (
    SELECT s.gpu_id, s.ts, s.sm_util_pct, s.mem_used_bytes,
           COALESCE(s.mem_total_bytes, g.vram_bytes) AS mem_total,
           s.power_w, s.temp_c, s.sm_clock_mhz, s.sm_clock_max_mhz, s.clocks_event_reasons,
           s.pcie_tx_bytes_per_s, s.pcie_rx_bytes_per_s, s.energy_mj,
           LEAD(s.ts) OVER w AS next_ts, LAG(s.ts) OVER w AS prev_ts,
           LAG(s.energy_mj) OVER w AS prev_energy_mj
    FROM telemetry_gpusample s JOIN fleet_gpu g ON g.id = s.gpu_id
    WHERE s.ts >= %(context_start)s AND s.ts < %(context_end)s {shard_filter}
    WINDOW w AS (PARTITION BY s.gpu_id ORDER BY s.ts)
), d AS (
    SELECT s.*, {d.minute.format(col="ts")} AS bucket,
           {d.least}(COALESCE({gap_next}, {gap_prev}, 1.0), {MAX_SAMPLE_GAP_S}) AS dt,
           {d.least}(CAST(mem_used_bytes AS {d.real}) / NULLIF(mem_total, 0), 1.0) AS mem_frac
    FROM s WHERE ts >= %(start)s AND ts < %(end)s
)
SELECT gpu_id, bucket, COUNT(*),
       {d.least}(SUM(dt), 60),
       {d.least}(COALESCE(SUM(dt) FILTER (WHERE sm_util_pct > 0), 0), 60),
       SUM(sm_util_pct * dt) / NULLIF(SUM(dt) FILTER (WHERE sm_util_pct IS NOT NULL), 0),
       MAX(sm_util_pct),
       SUM(mem_frac * dt) / NULLIF(SUM(dt) FILTER (WHERE mem_frac IS NOT NULL), 0),
       MAX(mem_frac),
       {d.least}(
           COALESCE(SUM(dt) FILTER (WHERE sm_util_pct > 0 AND mem_frac >= %(pressure)s), 0), 60
       ),
       {throttles},
       AVG(CAST(sm_clock_mhz AS {d.real}) / NULLIF(sm_clock_max_mhz, 0)),
       AVG(power_w),
       MAX(temp_c),
       SUM(CAST(energy_mj - prev_energy_mj AS {d.real}) / 1000)
           FILTER (WHERE energy_mj >= prev_energy_mj),
       SUM(pcie_tx_bytes_per_s * dt),
       SUM(pcie_rx_bytes_per_s * dt)
FROM d
GROUP BY gpu_id, bucket
"""  # noqa: S608 (constants only)


def _weighted(column: str) -> str:
    return (
        f"SUM({column} * covered_s) / "
        f"NULLIF(SUM(CASE WHEN {column} IS NOT NULL THEN covered_s END), 0)"
    )


def _hour_sql(d: _Dialect) -> str:
    throttles = ", ".join(f"SUM({name})" for name in THROTTLE_BITS)
    return f"""
INSERT INTO telemetry_gpuhour ({", ".join(ROLLUP_COLUMNS)})
SELECT gpu_id, {d.hour.format(col="ts")}, SUM(samples),
       {d.least}(SUM(covered_s), 3600), SUM(busy_s),
       {_weighted("util_mean_pct")}, MAX(util_max_pct),
       {_weighted("mem_frac_mean")}, MAX(mem_frac_max),
       SUM(mem_pressure_s), {throttles},
       {_weighted("clock_ratio_mean")}, {_weighted("power_mean_w")}, MAX(temp_max_c),
       SUM(energy_j), SUM(pcie_tx_bytes), SUM(pcie_rx_bytes)
FROM telemetry_gpuminute
WHERE ts >= %(start)s AND ts < %(end)s
GROUP BY gpu_id, {d.hour.format(col="ts")}
"""  # noqa: S608 (constants only)


def _floor(ts: datetime, unit: timedelta) -> datetime:
    seconds = int(unit.total_seconds())
    epoch = int(ts.timestamp())
    return datetime.fromtimestamp(epoch - epoch % seconds, tz=ts.tzinfo)


def _param(ts: datetime) -> object:
    return connection.ops.adapt_datetimefield_value(ts)


def _normalised_range(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("start and end must be timezone-aware")
    minute = timedelta(minutes=1)
    start = _floor(start, minute)
    end = _floor(end - timedelta(microseconds=1), minute) + minute if end > start else start
    return start, end


def _minutes_recompute(start: datetime, end: datetime, *, shard: int = 0, shards: int = 1) -> int:
    """Replace the minute rollups of [start, end) for GPUs with id % shards == shard."""
    d = _dialect()
    gap = timedelta(seconds=MAX_SAMPLE_GAP_S)
    # shard and shards are integers from this module, never request data.
    shard_filter = f"AND s.gpu_id %% {int(shards)} = {int(shard)}" if shards > 1 else ""
    delete_filter = f"AND gpu_id %% {int(shards)} = {int(shard)}" if shards > 1 else ""
    params = {"start": _param(start), "end": _param(end)}
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM telemetry_gpuminute "  # noqa: S608
            f"WHERE ts >= %(start)s AND ts < %(end)s {delete_filter}",
            params,
        )
        cursor.execute(
            _minute_sql(d, shard_filter),
            {
                **params,
                "context_start": _param(start - gap),
                "context_end": _param(end + gap),
                "pressure": settings.TELEMETRY_MEMORY_PRESSURE_FRACTION,
            },
        )
        return int(cursor.rowcount)


def _minutes_shard_in_thread(start: datetime, end: datetime, shard: int, shards: int) -> int:
    try:
        return _minutes_recompute(start, end, shard=shard, shards=shards)
    finally:
        connection.close()  # this thread's own connection


def rollups_recompute(
    *, start: datetime, end: datetime, workers: int | None = None
) -> dict[str, int]:
    """Recompute the minutes of [start, end) and every hour they touch. Returns row counts.

    On PostgreSQL, outside a caller's transaction, the minutes are computed by ``workers``
    connections in parallel, each for a disjoint set of GPUs and each atomic for its GPUs
    (window functions do not run in PostgreSQL's parallel workers). Inside a transaction,
    or on SQLite, everything runs in the caller's connection and transaction."""
    start, end = _normalised_range(start, end)
    if end <= start:
        return {"minutes": 0, "hours": 0}
    workers = workers or settings.TELEMETRY_ROLLUP_WORKERS
    if workers > 1 and connection.vendor == "postgresql" and not connection.in_atomic_block:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            minutes = sum(
                pool.map(
                    lambda shard: _minutes_shard_in_thread(start, end, shard, workers),
                    range(workers),
                )
            )
    else:
        with transaction.atomic():
            minutes = _minutes_recompute(start, end)
    hour = timedelta(hours=1)
    hours_params = {
        "start": _param(_floor(start, hour)),
        "end": _param(_floor(end - timedelta(minutes=1), hour) + hour),
    }
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM telemetry_gpuhour WHERE ts >= %(start)s AND ts < %(end)s", hours_params
        )
        cursor.execute(_hour_sql(_dialect()), hours_params)
        hours = int(cursor.rowcount)
    return {"minutes": minutes, "hours": hours}


def rollups_recent(*, now: datetime | None = None) -> dict[str, int]:
    """The periodic rollup: the trailing lateness window up to the last complete minute."""
    now = now or timezone.now()
    end = _floor(now, timedelta(minutes=1))
    start = end - timedelta(seconds=settings.TELEMETRY_ROLLUP_LATENESS_S)
    return rollups_recompute(start=start, end=end)


def rollup_backlog_drain(*, limit: int = 100) -> int:
    """Recompute ranges queued by late samples; each claimed row is deleted with its work."""
    done = 0
    for _ in range(limit):
        with transaction.atomic():
            item = (
                RollupBacklog.objects.select_for_update(skip_locked=True).order_by("start").first()
            )
            if item is None:
                break
            rollups_recompute(start=item.start, end=item.end)
            item.delete()
            done += 1
    return done


def rollups_catch_up(*, start: datetime, end: datetime, now: datetime | None = None) -> int:
    """Bring the rollups of [start, end) up to date before the ledger reads them: recompute
    the queued late ranges that overlap it and the part of it inside the lateness window
    (which only the periodic rollup would otherwise reach). Returns the ranges recomputed."""
    now = now or timezone.now()
    done = 0
    with transaction.atomic():
        queued = list(
            RollupBacklog.objects.select_for_update(skip_locked=True).filter(
                start__lt=end, end__gt=start
            )
        )
        for item in queued:
            rollups_recompute(start=item.start, end=item.end)
            item.delete()
            done += 1
    recent_start = max(start, now - timedelta(seconds=settings.TELEMETRY_ROLLUP_LATENESS_S))
    recent_end = min(end, _floor(now, timedelta(minutes=1)))
    if recent_end > recent_start:
        rollups_recompute(start=recent_start, end=recent_end)
        done += 1
    return done
