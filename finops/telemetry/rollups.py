"""Minute and hour rollups of GPU samples, computed in the database.

Each sample stands for [ts, ts + dt): dt is the time to the next sample of the same GPU
when that is at most ``MAX_SAMPLE_GAP_S``, else (before a gap, or at the end of a series)
the time since the previous one, capped alike, else one second (a silent agent does not
make a GPU look busy). The interval is cut at minute edges and every column follows the
split: busy, memory-pressure and throttle seconds are sums of the pieces; means are
weighted by them over the seconds that had the measurement; bytes are rate x seconds;
energy is the counter's increase to the next sample spread over that interval (a counter
reset books nothing). docs/telemetry.md has the rules.

Recomputing a range deletes its rollup rows and inserts them again in one transaction;
any range gives the rows of a whole-day recompute.
"""

from __future__ import annotations

from collections.abc import Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

# The rules' constants live with the agent's implementation of the same rules.
from collectors.rollups import EDGE_TOLERANCE_S, MAX_SAMPLE_GAP_S, THROTTLE_BITS
from finops.telemetry.models import RollupBacklog

ROLLUP_COLUMNS = (
    "gpu_id", "ts", "samples", "covered_s", "busy_s", "util_mean_pct", "util_max_pct",
    "mem_frac_mean", "mem_frac_max", "mem_pressure_s", *THROTTLE_BITS, "clock_ratio_mean",
    "power_mean_w", "temp_max_c", "energy_j", "pcie_tx_bytes", "pcie_rx_bytes",
    "util_s", "mem_s", "clock_s", "power_s",
)  # fmt: skip


@dataclass(frozen=True)
class _Dialect:
    minute: str  # SQL truncating column ts to its minute
    hour: str
    seconds_between: str  # format(a=..., b=...): seconds from b to a
    least: str
    real: str
    next_minute: str  # format(col=...): the minute after a truncated minute


POSTGRES = _Dialect(
    minute="date_trunc('minute', {col})",
    hour="date_trunc('hour', {col})",
    # date_part is double precision; EXTRACT is numeric, which made every sum numeric (x1.3).
    seconds_between="date_part('epoch', {a} - {b})",
    least="LEAST",
    real="float8",
    next_minute="({col} + interval '1 minute')",
)
SQLITE = _Dialect(
    minute="strftime('%%Y-%%m-%%d %%H:%%M:00', {col})",
    hour="strftime('%%Y-%%m-%%d %%H:00:00', {col})",
    # julianday is a double of days: round to the millisecond, below is float noise.
    seconds_between="ROUND((julianday({a}) - julianday({b})) * 86400.0, 3)",
    least="MIN",
    real="REAL",
    next_minute="strftime('%%Y-%%m-%%d %%H:%%M:00', {col}, '+1 minute')",
)


def _dialect() -> _Dialect:
    return POSTGRES if connection.vendor == "postgresql" else SQLITE


def _minute_sql(d: _Dialect, shard_filter: str = "") -> str:
    """Each sample of [start - cap, end) owns the interval [ts, ts + dt), cut at the minute
    edge into at most two pieces (dt <= cap = 60 s); every column sums or weights pieces.
    Neighbours come from [start - 2 cap, end + cap), and the sample after the last one of
    that context is looked up by index, so any range gives the rows of a whole-day
    recompute."""
    cap = float(MAX_SAMPLE_GAP_S)
    gap_next = d.seconds_between.format(a="next_ts", b="ts")
    gap_prev = d.seconds_between.format(a="ts", b="prev_ts")
    to_edge = f"(60.0 - {d.seconds_between.format(a='ts', b=d.minute.format(col='ts'))})"

    def share(condition: str) -> str:  # seconds of the minute where ``condition`` holds
        return f"COALESCE(SUM(w) FILTER (WHERE {condition}), 0)"

    def seconds(condition: str) -> str:  # the same, clamped to the minute
        return f"{d.least}({share(condition)}, 60)"

    def mean(column: str) -> str:  # time-weighted over the seconds that measured it
        return f"SUM({column} * w) / NULLIF({share(f'{column} IS NOT NULL')}, 0)"

    throttles = ",\n       ".join(
        seconds(f"(clocks_event_reasons & {bit}) <> 0") for bit in THROTTLE_BITS.values()
    )
    later = (
        "(SELECT {col} FROM telemetry_gpusample n WHERE n.gpu_id = s.gpu_id "
        "AND n.ts >= %(context_end)s ORDER BY n.ts LIMIT 1)"
    )
    return f"""
INSERT INTO telemetry_gpuminute ({", ".join(ROLLUP_COLUMNS)})
WITH s AS (
    SELECT s.gpu_id, s.ts, s.sm_util_pct, s.mem_used_bytes,
           COALESCE(s.mem_total_bytes, g.vram_bytes) AS mem_total,
           s.power_w, s.temp_c, s.sm_clock_mhz, s.sm_clock_max_mhz, s.clocks_event_reasons,
           s.pcie_tx_bytes_per_s, s.pcie_rx_bytes_per_s, s.energy_mj,
           LEAD(s.ts) OVER w AS lead_ts, LAG(s.ts) OVER w AS prev_ts,
           LEAD(s.energy_mj) OVER w AS lead_energy_mj
    FROM telemetry_gpusample s JOIN fleet_gpu g ON g.id = s.gpu_id
    WHERE s.ts >= %(context_start)s AND s.ts < %(context_end)s {shard_filter}
    WINDOW w AS (PARTITION BY s.gpu_id ORDER BY s.ts)
), o AS (
    -- The owners; the last of the context finds its successor beyond it (an energy
    -- increase across a long gap is spread over that gap).
    SELECT s.*,
           COALESCE(lead_ts, {later.format(col="n.ts")}) AS next_ts,
           CASE WHEN lead_ts IS NULL THEN {later.format(col="n.energy_mj")}
                ELSE lead_energy_mj END AS next_energy_mj
    FROM s WHERE s.ts >= %(owner_start)s AND s.ts < %(end)s
), g AS (
    SELECT o.*, {gap_next} AS gap_next, {gap_prev} AS gap_prev FROM o
), d AS (
    SELECT g.*,
           CASE WHEN gap_next <= {cap} THEN gap_next WHEN gap_prev <= {cap} THEN gap_prev
                ELSE 1.0 END AS dt,
           {to_edge} AS to_edge,
           {d.minute.format(col="ts")} AS m0,
           CASE WHEN mem_used_bytes IS NULL OR mem_total IS NULL OR mem_total = 0 THEN NULL
                WHEN mem_used_bytes >= mem_total THEN 1.0
                ELSE CAST(mem_used_bytes AS {d.real}) / mem_total END AS mem_frac,
           CASE WHEN sm_clock_mhz IS NULL OR sm_clock_max_mhz IS NULL
                     OR sm_clock_max_mhz = 0 THEN NULL
                ELSE CAST(sm_clock_mhz AS {d.real}) / sm_clock_max_mhz END AS clock_ratio,
           -- Joules per second of the interval to the next sample (a reset: none).
           CASE WHEN next_energy_mj IS NULL OR energy_mj IS NULL OR next_energy_mj < energy_mj
                     OR gap_next IS NULL OR gap_next <= 0 THEN NULL
                ELSE CAST(next_energy_mj - energy_mj AS {d.real}) / 1000 / gap_next
           END AS energy_w
    FROM g
), p AS (
    SELECT d.*, m0 AS bucket, CASE WHEN dt < to_edge THEN dt ELSE to_edge END AS w, 1 AS own
    FROM d
    UNION ALL
    SELECT d.*, {d.next_minute.format(col="m0")} AS bucket, dt - to_edge AS w, 0 AS own
    FROM d WHERE dt > to_edge + {EDGE_TOLERANCE_S}
)
SELECT gpu_id, bucket, SUM(own),
       {d.least}(SUM(w), 60),
       {seconds("sm_util_pct > 0")},
       {mean("sm_util_pct")},
       MAX(sm_util_pct),
       {mean("mem_frac")},
       MAX(mem_frac),
       {seconds("sm_util_pct > 0 AND mem_frac >= %(pressure)s")},
       {throttles},
       {mean("clock_ratio")},
       {mean("power_w")},
       MAX(temp_c),
       SUM(energy_w * w),
       SUM(pcie_tx_bytes_per_s * w),
       SUM(pcie_rx_bytes_per_s * w),
       {seconds("sm_util_pct IS NOT NULL")},
       {seconds("mem_frac IS NOT NULL")},
       {seconds("clock_ratio IS NOT NULL")},
       {seconds("power_w IS NOT NULL")}
FROM p
WHERE bucket >= %(start)s AND bucket < %(end)s
GROUP BY gpu_id, bucket
ON CONFLICT (gpu_id, ts) DO NOTHING
"""  # noqa: S608 (constants only; a minute an agent sent is kept)


def _weighted(column: str, weight: str) -> str:
    return f"SUM({column} * {weight}) / NULLIF(SUM({weight}), 0)"


def _hour_sql(d: _Dialect, only: str = "") -> str:
    throttles = ", ".join(f"SUM({name})" for name in THROTTLE_BITS)
    return f"""
INSERT INTO telemetry_gpuhour ({", ".join(ROLLUP_COLUMNS)})
SELECT gpu_id, {d.hour.format(col="ts")}, SUM(samples),
       {d.least}(SUM(covered_s), 3600), SUM(busy_s),
       {_weighted("util_mean_pct", "util_s")}, MAX(util_max_pct),
       {_weighted("mem_frac_mean", "mem_s")}, MAX(mem_frac_max),
       SUM(mem_pressure_s), {throttles},
       {_weighted("clock_ratio_mean", "clock_s")}, {_weighted("power_mean_w", "power_s")},
       MAX(temp_max_c), SUM(energy_j), SUM(pcie_tx_bytes), SUM(pcie_rx_bytes),
       SUM(util_s), SUM(mem_s), SUM(clock_s), SUM(power_s)
FROM telemetry_gpuminute
WHERE ts >= %(start)s AND ts < %(end)s {only}
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
        # Minutes an agent rolled up itself (POST /api/v1/ingest/gpu-minutes) are kept.
        cursor.execute(
            "DELETE FROM telemetry_gpuminute "  # noqa: S608
            f"WHERE ts >= %(start)s AND ts < %(end)s {delete_filter} AND NOT from_edge",
            params,
        )
        cursor.execute(
            _minute_sql(d, shard_filter),
            {
                **params,
                "owner_start": _param(start - gap),
                "context_start": _param(start - 2 * gap),
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
    from finops.telemetry.partitions import GPU_MINUTES, partitions_ensure_range

    partitions_ensure_range(GPU_MINUTES, start, end)
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
    return {"minutes": minutes, "hours": hours_recompute(start=start, end=end)}


def hours_recompute(
    *, start: datetime, end: datetime, gpu_ids: Collection[int] | None = None
) -> int:
    """Replace the hour rollups of every hour [start, end) touches from their minutes; of
    the GPUs ``gpu_ids`` only, when given (a batch of edge minutes touches its own)."""
    hour = timedelta(hours=1)
    hours_params = {
        "start": _param(_floor(start, hour)),
        "end": _param(_floor(end - timedelta(minutes=1), hour) + hour),
    }
    # Integers from the caller's GPU rows, never request text.
    only = f"AND gpu_id IN ({', '.join(str(int(g)) for g in gpu_ids)})" if gpu_ids else ""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM telemetry_gpuhour WHERE ts >= %(start)s AND ts < %(end)s {only}",  # noqa: S608
            hours_params,
        )
        cursor.execute(_hour_sql(_dialect(), only), hours_params)
        return int(cursor.rowcount)


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
