"""The attribution engine: every paid GPU-hour to a team, idle, or unallocated.

For each hour window and GPU:

* **paid** seconds are the seconds the GPU showed life: telemetry coverage from its hour
  rollup, or time a job held it, whichever is longer (a node with neither is down);
* jobs holding the GPU at the same time split each instant equally, or by their VRAM when
  every one of them reports it; a multi-GPU job is charged on every GPU it holds;
* paid time nobody held is **unallocated** where the GPU was busy anyway (someone ran work
  without reporting a job) and **idle** otherwise;
* the **usage** basis charges a job its allocation times the GPU's measured SM activity and
  books the rest to its team as **waste**; the allocation basis charges the allocation. A
  line carries both: ``amount`` and the ``activity`` factor;
* storage (capacity x price per GB-month) and on-prem energy (measured kWh x PUE x price)
  of a node are shared by teams by their share of the node's paid GPU time, the rest idle.

Arithmetic is in integers: microseconds, millionths of a GPU-hour, millionths of the
currency. A line's quantity is rounded to 6 places (half up) and its amount is
quantity x unit price rounded to 6 places; idle takes the residue of the GPU-hour, so per
window sum(teams) + idle + unallocated = paid GPU + storage + energy exactly.

The work is a UTC day at a time, vectorised over every GPU of the fleet (numpy): one sweep
over the allocations' start and end points gives each instant's holders, and each job's
share of each hour is a sum over the segments it spans. Recomputing replaces the lines of
whole UTC days, their daily summaries and their prices in one transaction (storage of a
computed day: ``finops.costing.ledger_store``).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import numpy as np
import pandas as pd
from django.db import connection, transaction
from django.db.models import BigIntegerField, BooleanField, F, FloatField, Func, Q, Value
from django.db.models.expressions import RawSQL
from django.db.models.functions import Coalesce
from django.utils import timezone

from collectors.pricing.offers import HOURS_PER_MONTH
from finops.costing.ledger_store import HOUR_US, NONE, Block, DayLedger, day_store, round_div
from finops.costing.models import (
    Bucket,
    Component,
    DirtyWindow,
    LedgerDay,
    LedgerEntry,
    LedgerPrice,
    LedgerTeamDay,
)
from finops.costing.selectors import regeneration_flag
from finops.costing.summaries import day_summaries_replace
from finops.fleet.models import Gpu, StorageDevice
from finops.jobs.models import GpuAllocation
from finops.ops.columns import MICRO, fetch_columns
from finops.pricing.selectors import PriceBook, ResolvedPrice, storage_price_resolve
from finops.telemetry.models import GpuHour, GpuMinute

HOUR_S = 3600
MINUTE_US = 60 * MICRO
DAY = timedelta(days=1)
_GPU_SHIFT = 42  # sweep keys: GPU index << 42 | microseconds into the day
# The allocations overlapping [%s, %s), through the span's GiST index (jobs migration 0003).
SPAN_OVERLAPS = (
    "tstzrange(jobs_gpuallocation.start, COALESCE(jobs_gpuallocation.\"end\", 'infinity'), '[)')"
    " && tstzrange(%s, %s, '[)')"
)


def day_floor(ts: datetime) -> datetime:
    return ts.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def _micro(value: Decimal) -> int:
    """A Decimal in millionths, rounded half up."""
    return int((value * MICRO).to_integral_value(ROUND_HALF_UP))


def _epoch(field: str) -> Func | F:
    """Seconds since 1970-01-01 UTC of a datetime column: a float computed by PostgreSQL, or
    (SQLite, the single-user demo) the datetime itself, converted by ``_seconds``."""
    if connection.vendor == "postgresql":
        return Func(
            F(field),
            template="EXTRACT(EPOCH FROM %(expressions)s)::float8",
            output_field=FloatField(),
        )
    return F(field)


def _seconds(values: list[Any], default: float) -> np.ndarray:
    return np.array(
        [
            default if v is None else (v.timestamp() if isinstance(v, datetime) else v)
            for v in values
        ],
        dtype=float,
    )


@dataclass
class _Fleet:
    gpus: list[Gpu]
    index: dict[int, int]  # GPU id (a MIG instance's: its parent's) -> position
    node: np.ndarray  # node id per GPU position
    gpu_id: np.ndarray
    nodes: np.ndarray  # node ids, sorted
    node_pos: np.ndarray  # per GPU position: its node's position in ``nodes``
    node_gpu: np.ndarray  # per node position: its first GPU's position (prices by its model)
    book: PriceBook  # the fleet's providers' rates, loaded once per recompute
    model: np.ndarray  # GPU model id per GPU position (NONE: unknown)

    @classmethod
    def load(cls) -> _Fleet:
        gpus = list(
            Gpu.objects.filter(mig_parent__isnull=True)
            .select_related("node__site", "model")
            .order_by("id")
        )
        index = {g.id: i for i, g in enumerate(gpus)}
        for child, parent in Gpu.objects.filter(mig_parent__isnull=False).values_list(
            "id", "mig_parent_id"
        ):
            if parent in index:
                index[child] = index[parent]
        node = np.array([g.node_id for g in gpus], dtype=np.int64)
        nodes, node_gpu, node_pos = np.unique(node, return_index=True, return_inverse=True)
        book = PriceBook(providers={g.node.site.provider for g in gpus})
        model = np.array([NONE if g.model_id is None else g.model_id for g in gpus], dtype=np.int64)
        return cls(gpus, index, node, np.array([g.id for g in gpus], dtype=np.int64), nodes,
                   node_pos.ravel(), node_gpu, book, model)  # fmt: skip


def _allocations(fleet: _Fleet, start: datetime, end: datetime, now: datetime) -> dict[str, Any]:
    """The day's allocations as columns, clipped to [start, min(end, now)) for open ones, in
    microseconds from ``start``; sorted by what identifies a job outside this database, so
    rounding lands the same way whatever order the events arrived in."""
    now_s = now.timestamp()
    rows = (
        GpuAllocation.objects.filter(Q(end__isnull=True) | Q(end__gt=start), start__lt=end)
        .annotate(start_s=_epoch("start"), end_s=_epoch("end"), regen=regeneration_flag())
        .order_by()
    )
    if connection.vendor == "postgresql":
        # A constant condition with bound parameters: nothing from outside is spliced in.
        span = RawSQL(SPAN_OVERLAPS, [start, end], output_field=BooleanField())  # noqa: S611
        rows = rows.filter(span)
        # Straight into arrays: a day of a large fleet is tens of thousands of rows, and a
        # Python tuple per row was half of computing the day.
        query = rows.annotate(
            end_or_now=Coalesce("end_s", Value(now_s), output_field=FloatField()),
            # The job's peak VRAM (the contract's field), unless the allocation gives its own.
            vram_or_0=Coalesce(
                "vram_bytes", "job__peak_vram_bytes", Value(0), output_field=BigIntegerField()
            ),
            team=F("job__team_id"),
            job_source=F("job__source"),
            job_external_id=F("job__external_id"),
        ).values_list("job_id", "team", "gpu_id", "start_s", "end_or_now", "vram_or_0", "regen",
                      "end_s", "job_source", "job_external_id")  # fmt: skip
        sql, params = query.query.get_compiler(using=query.db).as_sql()
        kinds = ("int8", "int8", "int8", "float8", "float8", "int8", "bool")
        columns = list(zip(("job_id", "team", "gpu_id", "start_s", "end_or_now", "vram_or_0",
                            "regen"), kinds, strict=True))  # fmt: skip
        order = (
            'q.start_s, q.end_s, q.job_source COLLATE "C", q.job_external_id COLLATE "C", q.gpu_id'
        )
        with connection.cursor() as cursor:
            got = fetch_columns(cursor, sql, params, columns, order)
        job, team, gpu, a_start, a_end, vram, regen = (got[name] for name, _ in columns)
    else:
        listed = list(
            rows.order_by("start", "end", "job__source", "job__external_id", "gpu_id").values_list(
                "job_id",
                "job__team_id",
                "gpu_id",
                "start_s",
                "end_s",
                "vram_bytes",
                "regen",
                "job__peak_vram_bytes",
            )
        )
        cols = [list(c) for c in zip(*listed, strict=True)] if listed else [[]] * 8
        job, team, gpu = (np.array(c, dtype=np.int64) for c in cols[:3])
        a_start, a_end = _seconds(cols[3], now_s), _seconds(cols[4], now_s)
        vram = np.array(
            [v if v is not None else (p or 0) for v, p in zip(cols[5], cols[7], strict=True)],
            dtype=np.int64,
        )
        regen = np.array(cols[6], dtype=bool)
    day_s, span_us = start.timestamp(), int((end - start).total_seconds()) * MICRO
    lo = np.clip(np.rint((a_start - day_s) * MICRO), 0, span_us).astype(np.int64)
    hi = np.clip(np.rint((a_end - day_s) * MICRO), 0, span_us).astype(np.int64)
    index = fleet.index
    g = np.array([index.get(x, NONE) for x in gpu.tolist()], dtype=np.int64)
    keep = (g != NONE) & (hi > lo)
    return {
        "job": job[keep],
        "team": team[keep],
        "g": g[keep],
        "lo": lo[keep],
        "hi": hi[keep],
        "vram": vram[keep].astype(float),
        "regen": regen[keep],
    }


@dataclass
class _Activity:
    """Per GPU and minute of the day: the measured SM activity (0-1, 0 where unmeasured),
    whether it was measured, and the energy drawn (joules per microsecond, 0 where the
    minute has no energy reading), each with its running integral over the day in
    microseconds, so any of them over any span is two look-ups."""

    rate: np.ndarray  # (gpus, minutes + 1), the last column 0
    measured: np.ndarray
    power: np.ndarray
    rate_cum: np.ndarray  # (gpus, minutes + 1): integral from the day's start to minute k
    measured_cum: np.ndarray
    power_cum: np.ndarray
    # (gpus, hours): the hour's energy is known minute by minute (shared by what each job
    # drew); False where only the hour rollup has it (shared by held time).
    minute_energy: np.ndarray
    hour_energy: np.ndarray  # (gpus, hours): joules of the hour's minutes

    @classmethod
    def of(
        cls, rate: np.ndarray, measured: np.ndarray, power: np.ndarray, minute_energy: np.ndarray
    ) -> _Activity:
        pad = np.zeros((rate.shape[0], 1))
        rate, measured, power = (np.hstack([x, pad]) for x in (rate, measured, power))

        def cumulative(x: np.ndarray) -> np.ndarray:
            return np.hstack([pad, np.cumsum(x[:, :-1] * MINUTE_US, axis=1)])

        hours = minute_energy.shape[1]
        hour_energy = (power[:, :-1] * MINUTE_US).reshape(len(power), hours, 60).sum(axis=2)
        return cls(rate, measured, power, cumulative(rate), cumulative(measured),
                   cumulative(power), minute_energy, hour_energy)  # fmt: skip

    def over(self, g: np.ndarray, t0: np.ndarray, t1: np.ndarray) -> tuple[np.ndarray, ...]:
        """(active microseconds, measured microseconds, joules) of GPU positions ``g`` over
        [t0, t1)."""

        def integral(cum: np.ndarray, rate: np.ndarray, t: np.ndarray) -> np.ndarray:
            m = t // MINUTE_US
            return cum[g, m] + rate[g, m] * (t - m * MINUTE_US)

        return tuple(
            integral(cum, rate, t1) - integral(cum, rate, t0)
            for cum, rate in (
                (self.rate_cum, self.rate),
                (self.measured_cum, self.measured),
                (self.power_cum, self.power),
            )
        )


def _sweep(
    a: dict[str, Any], hours: int, gpus: int, activity: _Activity | None = None
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Each allocation's share of each hour it spans (the pieces), and per (GPU, hour) the
    microseconds anyone held the GPU. With ``activity``, each piece also gets the active
    and the measured microseconds of its share (the GPU's activity over the very segments
    it held, weighted like its share)."""
    g, lo, hi, vram = a["g"], a["lo"], a["hi"], a["vram"]
    held = np.zeros(gpus * hours)
    if not len(g):
        empty = np.zeros(0, dtype=np.int64)
        nothing = np.zeros(0)
        return {"alloc": empty, "hour": empty, "share_us": nothing, "active_us": nothing,
                "measured_us": nothing, "energy_j": nothing}, held  # fmt: skip
    used = np.unique(g)
    edges = (used[:, None] << _GPU_SHIFT) | (np.arange(hours + 1, dtype=np.int64) * HOUR_US)
    key_lo, key_hi = (g << _GPU_SHIFT) | lo, (g << _GPU_SHIFT) | hi
    points = np.unique(np.concatenate([key_lo, key_hi, edges.ravel()]))
    i_lo, i_hi = np.searchsorted(points, key_lo), np.searchsorted(points, key_hi)
    n = len(points)

    def running(weights: np.ndarray | None) -> np.ndarray:
        step = np.bincount(i_lo, weights, n) - np.bincount(i_hi, weights, n)
        return np.cumsum(step)[:-1]  # per segment [points[k], points[k + 1])

    count = running(None)
    with_vram = running((vram > 0).astype(float))
    vram_sum = running(vram)
    length = np.diff(points).astype(float)
    active = count > 0.5
    by_vram = active & (np.abs(with_vram - count) < 0.5)  # every holder reports VRAM
    per_job = np.where(active & ~by_vram, length / np.where(active, count, 1.0), 0.0)
    per_byte = np.where(by_vram, length / np.where(by_vram, vram_sum, 1.0), 0.0)
    seg_gpu, seg_t = points[:-1] >> _GPU_SHIFT, points[:-1] & ((1 << _GPU_SHIFT) - 1)
    seg_cell = seg_gpu * hours + seg_t // HOUR_US
    np.add.at(held, seg_cell[active], length[active])

    # Pieces: an allocation cut at hour edges; each piece spans segments [first, last).
    first_h, last_h = lo // HOUR_US, (hi - 1) // HOUR_US
    spans = last_h - first_h + 1
    alloc = np.repeat(np.arange(len(g)), spans)
    hour = first_h[alloc] + np.arange(len(alloc)) - np.repeat(np.cumsum(spans) - spans, spans)
    p_lo = np.maximum(lo[alloc], hour * HOUR_US)
    p_hi = np.minimum(hi[alloc], (hour + 1) * HOUR_US)
    gk = g[alloc] << _GPU_SHIFT
    s_first, s_last = np.searchsorted(points, gk | p_lo), np.searchsorted(points, gk | p_hi)
    segments = s_last - s_first
    offsets = np.cumsum(segments) - segments
    seg = np.repeat(s_first - offsets, segments) + np.arange(segments.sum())
    contrib = per_job[seg] + np.repeat(vram[alloc], segments) * per_byte[seg]

    def per_piece(values: np.ndarray) -> np.ndarray:
        return np.add.reduceat(values, offsets) if len(values) else np.zeros(0)

    out = {"alloc": alloc, "hour": hour, "share_us": per_piece(contrib)}
    if activity is not None:
        span = hours * HOUR_US
        t0 = np.clip(seg_t[seg], 0, span)
        t1 = np.clip(seg_t[seg] + length[seg].astype(np.int64), 0, span)
        active, measured, energy = activity.over(seg_gpu[seg], t0, t1)
        fraction = contrib / np.maximum(length[seg], 1.0)
        out["active_us"] = per_piece(active * fraction)
        out["measured_us"] = per_piece(measured * fraction)
        out["energy_j"] = per_piece(energy * fraction)
    return out, held


def _telemetry(fleet: _Fleet, start: datetime, end: datetime, hours: int) -> dict[str, np.ndarray]:
    shape = (len(fleet.gpus), hours)
    out = {
        "covered": np.zeros(shape, dtype=np.int64),
        "busy": np.zeros(shape, dtype=np.int64),
        "util": np.full(shape, np.nan),
        "energy": np.zeros(shape),
    }
    rows = GpuHour.objects.filter(ts__gte=start, ts__lt=end, gpu__mig_parent__isnull=True)
    if connection.vendor == "postgresql":
        zero, nan = Value(0.0), Value(float("nan"))
        query = rows.annotate(
            ts_s=_epoch("ts"), covered=Coalesce("covered_s", zero, output_field=FloatField()),
            busy=Coalesce("busy_s", zero, output_field=FloatField()),
            util=Coalesce("util_mean_pct", nan, output_field=FloatField()),
            energy=Coalesce("energy_j", zero, output_field=FloatField()),
        ).values_list("gpu_id", "ts_s", "covered", "busy", "util", "energy")  # fmt: skip
        sql, params = query.query.get_compiler(using=query.db).as_sql()
        names = ("gpu_id", "ts_s", "covered", "busy", "util", "energy")
        kinds = ("int8", "float8", "float8", "float8", "float8", "float8")
        with connection.cursor() as cursor:
            got = fetch_columns(cursor, sql, params, list(zip(names, kinds, strict=True)))
        gpu, ts, covered, busy, util, energy = (got[n] for n in names)
    else:
        listed = list(rows.values_list("gpu_id", "ts", "covered_s", "busy_s", "util_mean_pct",
                                       "energy_j"))  # fmt: skip
        cols = [list(c) for c in zip(*listed, strict=True)] if listed else [[]] * 6
        gpu, ts = np.array(cols[0], dtype=np.int64), _seconds(cols[1], 0.0)
        covered, busy, energy = (np.array([v or 0.0 for v in c], dtype=float) for c in
                                 (cols[2], cols[3], cols[5]))  # fmt: skip
        util = np.array([np.nan if v is None else v for v in cols[4]], dtype=float)
    g = np.array([fleet.index.get(x, NONE) for x in gpu.tolist()], dtype=np.int64)
    h = ((ts - start.timestamp()) // HOUR_S).astype(np.int64)
    keep = (g != NONE) & (h >= 0) & (h < hours)
    g, h = g[keep], h[keep]
    out["covered"][g, h] = np.rint(covered[keep] * MICRO)
    out["busy"][g, h] = np.rint(busy[keep] * MICRO)
    out["util"][g, h] = util[keep]
    out["energy"][g, h] = energy[keep]
    return out


def _minute_activity(
    fleet: _Fleet, start: datetime, end: datetime, hour_util: np.ndarray
) -> _Activity:
    """SM activity and energy per GPU and minute from the minute rollups; an hour with an
    hour rollup but no minute rollups (an import of hourly data) takes the hour's mean
    activity for its minutes. Minutes with neither are unmeasured."""
    n_gpus, hours = hour_util.shape
    minutes = hours * 60
    rate, measured = np.zeros((n_gpus, minutes)), np.zeros((n_gpus, minutes))
    power = np.zeros((n_gpus, minutes))
    has_energy = np.zeros((n_gpus, minutes), dtype=bool)
    rows = GpuMinute.objects.filter(
        ts__gte=start, ts__lt=end, gpu__mig_parent__isnull=True, covered_s__gt=0
    )
    if connection.vendor == "postgresql":
        nan = Value(float("nan"))
        query = rows.annotate(
            ts_s=_epoch("ts"),
            util=Coalesce("util_mean_pct", nan, output_field=FloatField()),
            energy=Coalesce("energy_j", nan, output_field=FloatField()),
        ).values_list("gpu_id", "ts_s", "util", "energy")
        sql, params = query.query.get_compiler(using=query.db).as_sql()
        names = ("gpu_id", "ts_s", "util", "energy")
        with connection.cursor() as cursor:
            got = fetch_columns(
                cursor, sql, params,
                list(zip(names, ("int8", "float8", "float8", "float8"), strict=True)),
            )  # fmt: skip
        gpu, ts, util, energy = (got[n] for n in names)
    else:
        listed = list(rows.values_list("gpu_id", "ts", "util_mean_pct", "energy_j"))
        cols = [list(c) for c in zip(*listed, strict=True)] if listed else [[]] * 4
        gpu, ts = np.array(cols[0], dtype=np.int64), _seconds(cols[1], 0.0)
        util, energy = (
            np.array([np.nan if v is None else v for v in c], dtype=float) for c in cols[2:]
        )
    g = np.array([fleet.index.get(x, NONE) for x in gpu.tolist()], dtype=np.int64)
    m = ((ts - start.timestamp()) // 60).astype(np.int64)
    keep = (g != NONE) & (m >= 0) & (m < minutes)
    with_util = keep & ~np.isnan(util)
    rate[g[with_util], m[with_util]] = np.clip(util[with_util] / 100, 0, 1)
    measured[g[with_util], m[with_util]] = 1.0
    with_energy = keep & ~np.isnan(energy) & (energy >= 0)
    power[g[with_energy], m[with_energy]] = energy[with_energy] / MINUTE_US
    has_energy[g[with_energy], m[with_energy]] = True
    hourly_only = (measured.reshape(n_gpus, hours, 60).sum(axis=2) == 0) & ~np.isnan(hour_util)
    fill = np.repeat(hourly_only, 60, axis=1)
    rate[fill] = np.repeat(np.clip(np.nan_to_num(hour_util) / 100, 0, 1), 60, axis=1)[fill]
    measured[fill] = 1.0
    minute_energy = has_energy.reshape(n_gpus, hours, 60).any(axis=2)
    return _Activity.of(rate, measured, power, minute_energy)


def _pricing_of(gpu: Gpu) -> tuple[Any, ...]:
    """Everything ``PriceBook.resolve`` reads of a GPU's node and model."""
    node = gpu.node
    return (node.site.provider, node.site.region, node.instance_type, node.pricing_model,
            node.price_override_per_gpu_hour, node.currency, gpu.model_id)  # fmt: skip


def day_compute(
    *, day: datetime, now: datetime | None = None, fleet: _Fleet | None = None
) -> DayLedger:
    """The ledger lines of one UTC day (24 hour windows), in memory."""
    now = now or timezone.now()
    start, end = day_floor(day), day_floor(day) + DAY
    hours = 24
    fleet = fleet or _Fleet.load()
    out = DayLedger(start)
    if not fleet.gpus:
        return out
    n_gpus = len(fleet.gpus)
    a = _allocations(fleet, start, end, now)
    tel = _telemetry(fleet, start, end, hours)
    activity = _minute_activity(fleet, start, end, tel["util"]) if len(a["g"]) else None
    pieces, held_flat = _sweep(a, hours, n_gpus, activity)
    held = np.rint(held_flat).astype(np.int64).reshape(n_gpus, hours)
    paid = np.minimum(np.maximum(tel["covered"], held), HOUR_US)
    present = paid > 0

    # Prices per (node, hour) present: by the node's first GPU's model.
    node_present = np.zeros((len(fleet.nodes), hours), dtype=bool)
    np.logical_or.at(node_present, fleet.node_pos, present)
    node_rate = np.full(node_present.shape, NONE, dtype=np.int64)
    node_currency = np.full(node_present.shape, b"USD", dtype="S3")
    resolved_at: dict[tuple[int, int], ResolvedPrice] = {}
    shared: dict[tuple[Any, ...], tuple[ResolvedPrice, int]] = {}  # nodes priced alike
    for n, h in zip(*np.nonzero(node_present), strict=True):
        gpu, hour = fleet.gpus[fleet.node_gpu[n]], int(h)
        alike = (*_pricing_of(gpu), hour)
        if alike not in shared:
            at = start + timedelta(hours=hour)
            resolved = fleet.book.resolve(node=gpu.node, at=at, gpu_model=gpu.model)
            shared[alike] = (resolved, NONE if resolved.price is None else _micro(resolved.price))
        resolved, node_rate[n, h] = shared[alike]
        resolved_at[(gpu.node_id, hour)] = resolved
        node_currency[n, h] = resolved.currency.encode()
        out.prices.append(
            (hour, gpu.node_id, int(node_rate[n, h]), resolved.currency, resolved.reason[:200])
        )
    rate, currency = node_rate[fleet.node_pos], node_currency[fleet.node_pos]
    rate0 = np.maximum(rate, 0)

    def cost(quantity: np.ndarray, unit_rate: np.ndarray) -> np.ndarray:
        return round_div(quantity * unit_rate, MICRO)

    # Job lines: quantity in millionths of a GPU-hour (1 per 3600 microseconds).
    p_alloc, p_hour = pieces["alloc"], pieces["hour"]
    p_gpu = a["g"][p_alloc]
    p_quantity = np.floor(pieces["share_us"] / HOUR_S + 0.5).astype(np.int64)
    p_amount = cost(p_quantity, rate0[p_gpu, p_hour])
    cell = p_gpu * hours + p_hour

    unallocated = np.minimum(paid - held, np.maximum(0, tel["busy"] - held)) * present
    idle_us = (paid - held - unallocated) * present
    paid_amount = cost(round_div(paid, HOUR_S), rate0)
    unalloc_q = round_div(unallocated, HOUR_S)
    unalloc_amount = cost(unalloc_q, rate0)
    jobs_amount = np.bincount(cell, p_amount, n_gpus * hours).astype(np.int64)
    idle_amount = paid_amount - jobs_amount.reshape(n_gpus, hours) - unalloc_amount
    short = np.flatnonzero(idle_amount.ravel() < 0)
    if len(short):  # rounding: the largest job of the GPU-hour absorbs it
        order = np.lexsort((p_alloc, -p_amount, cell))
        firsts = order[np.r_[True, cell[order][1:] != cell[order][:-1]]]
        biggest = dict(zip(cell[firsts].tolist(), firsts.tolist(), strict=True))
        for c in short:
            p_amount[biggest[int(c)]] += idle_amount.flat[c]
            idle_amount.flat[c] = 0
    # Usage basis: each job's activity over the seconds it held the GPU (its share of each
    # segment), measured where the minutes have telemetry; none at all: assumed 1.
    measured_us = pieces.get("measured_us", np.zeros(len(p_alloc)))
    assumed = measured_us < 0.5
    p_activity = np.where(
        assumed,
        MICRO,
        np.rint(np.clip(pieces.get("active_us", measured_us) / np.maximum(measured_us, 1.0),
                        0, 1) * MICRO),
    ).astype(np.int64)  # fmt: skip

    job_line = p_quantity > 0
    jl_gpu, jl_hour = p_gpu[job_line], p_hour[job_line]
    jl_alloc = p_alloc[job_line]
    out.blocks.append(
        Block(Bucket.TEAM, Component.GPU, "gpu_hour", hour=jl_hour, team=a["team"][jl_alloc],
              node=fleet.node[jl_gpu], quantity=p_quantity[job_line], amount=p_amount[job_line],
              currency=currency[jl_gpu, jl_hour], job=a["job"][jl_alloc], gpu=fleet.gpu_id[jl_gpu],
              unit_price=rate[jl_gpu, jl_hour], activity=p_activity[job_line],
              regeneration=a["regen"][jl_alloc], activity_assumed=assumed[job_line],
              gpu_model=fleet.model[jl_gpu])
    )  # fmt: skip
    for bucket, component, mask, quantity, amount in (
        (Bucket.UNALLOCATED, Component.GPU, (unallocated > 0) | (unalloc_amount > 0),
         unalloc_q, unalloc_amount),
        (Bucket.IDLE, Component.IDLE, present & ((idle_us > 0) | (idle_amount > 0)),
         round_div(idle_us, HOUR_S), idle_amount),
    ):  # fmt: skip
        gi, h = np.nonzero(mask)
        out.blocks.append(
            Block(bucket, component, "gpu_hour", hour=h, team=np.full(len(h), NONE),
                  node=fleet.node[gi], quantity=quantity[gi, h], amount=amount[gi, h],
                  currency=currency[gi, h], gpu=fleet.gpu_id[gi], unit_price=rate[gi, h],
                  gpu_model=fleet.model[gi])
        )  # fmt: skip
    # Energy per GPU-hour: the sum of its minutes where minute rollups measured it (what jobs'
    # shares are taken from), else the hour rollup's.
    minute_energy = np.zeros((n_gpus, hours), dtype=bool)
    energy = tel["energy"]
    if activity is not None:
        minute_energy = activity.minute_energy
        energy = np.where(minute_energy, activity.hour_energy, energy)
    out.blocks += _node_costs(fleet, start, hours, paid, energy, minute_energy, pieces, a,
                              resolved_at)  # fmt: skip
    return out


def _node_costs(
    fleet: _Fleet,
    start: datetime,
    hours: int,
    paid: np.ndarray,
    energy: np.ndarray,
    minute_energy: np.ndarray,
    pieces: dict[str, np.ndarray],
    a: dict[str, Any],
    resolved_at: dict[tuple[int, int], ResolvedPrice],
) -> list[Block]:
    """Storage and on-prem energy per node-hour, shared by teams (quantity and amount
    alike; the residue is idle): storage by their share of the node's paid GPU time, energy
    by the energy each job drew: the GPU's minute energy over the very segments the job held
    it (split like its GPU time where jobs share the GPU), the unheld rest idle. GPU-hours
    whose energy only the hour rollup measured split it like the GPU time (a job's share of
    the paid time); their team lines are marked ``activity_assumed`` (reports say so)."""
    nodes, node_pos = fleet.nodes, fleet.node_pos
    node_paid = np.zeros((len(nodes), hours), dtype=np.int64)
    np.add.at(node_paid, node_pos, paid)
    node_energy = np.zeros((len(nodes), hours))
    np.add.at(node_energy, node_pos, np.where(paid > 0, energy, 0.0))
    devices: dict[int, list[StorageDevice]] = defaultdict(list)
    for device in (
        StorageDevice.objects.filter(node_id__in=nodes.tolist(), capacity_bytes__isnull=False)
        .exclude(volume_type="")
        .select_related("node__site")
    ):
        devices[device.node_id].append(device)
    # (component, unit) -> rows of (node position, hour, quantity, amount, currency)
    costs: dict[tuple[str, str], list[tuple[int, int, int, int, bytes]]] = defaultdict(list)
    storage_prices: dict[tuple[Any, ...], ResolvedPrice] = {}
    for n, h in zip(*np.nonzero(node_paid > 0), strict=True):
        node_id, window = int(nodes[n]), start + timedelta(hours=int(h))
        storage: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for device in devices.get(node_id, []):
            site = device.node.site
            alike = (device.volume_type, site.provider, site.region, device.node.currency, h)
            if alike not in storage_prices:  # a query each: devices priced alike share it
                storage_prices[alike] = storage_price_resolve(device=device, at=window)
            price = storage_prices[alike]
            if price.price is not None and device.capacity_bytes:
                gb_months = Decimal(device.capacity_bytes) / Decimal(10**9) / HOURS_PER_MONTH
                storage[price.currency][0] += _micro(gb_months)
                storage[price.currency][1] += _micro(gb_months * price.price)
        for cur, (quantity, amount) in storage.items():
            costs[(Component.STORAGE, "gb_month")].append((n, h, quantity, amount, cur.encode()))
        resolved = resolved_at.get((node_id, int(h)))
        rate = resolved.rate if resolved else None
        if rate is not None and rate.energy_per_kwh is not None and node_energy[n, h] > 0:
            kwh = round(node_energy[n, h] / 3.6)  # millionths of a kWh
            amount = _micro(
                Decimal(kwh).scaleb(-6) * (rate.pue or Decimal(1)) * rate.energy_per_kwh
            )
            costs[(Component.ENERGY, "kwh")].append((n, h, kwh, amount, rate.currency.encode()))
    if not costs:
        return []
    # Held microseconds and joules drawn per (node position, hour, team).
    p_gpu, p_hour = a["g"][pieces["alloc"]], pieces["hour"]
    p_paid = paid[p_gpu, p_hour]
    by_minute = minute_energy[p_gpu, p_hour]
    by_time = np.where(p_paid > 0, energy[p_gpu, p_hour] * pieces["share_us"]
                       / np.maximum(p_paid, 1), 0.0)  # fmt: skip
    drawn = pieces.get("energy_j", np.zeros(len(p_gpu)))
    frame = pd.DataFrame({
        "n": node_pos[p_gpu], "h": p_hour, "team": a["team"][pieces["alloc"]],
        "us": pieces["share_us"], "j": np.where(by_minute, drawn, by_time),
        "by_time": ~by_minute & (by_time > 0),
    })  # fmt: skip
    held = (
        frame.groupby(["n", "h", "team"], sort=True)
        .agg(us=("us", "sum"), j=("j", "sum"), by_time=("by_time", "any"))
        .reset_index()
    )
    blocks = []
    for (component, unit), rows in costs.items():
        c = pd.DataFrame(rows, columns=["n", "h", "quantity", "amount", "currency"])
        shares = held.merge(c, on=["n", "h"])
        n, h = shares["n"].to_numpy(), shares["h"].to_numpy()
        if component == Component.ENERGY:
            fraction = shares["j"].to_numpy() / node_energy[n, h]
        else:
            fraction = shares["us"].to_numpy() / node_paid[n, h]
        share_q = np.floor(shares["quantity"].to_numpy() * fraction + 0.5).astype(np.int64)
        share_a = np.floor(shares["amount"].to_numpy() * fraction + 0.5).astype(np.int64)
        blocks.append(
            Block(Bucket.TEAM, component, unit, hour=h, team=shares["team"].to_numpy(),
                  node=nodes[n], quantity=share_q, amount=share_a,
                  currency=shares["currency"].to_numpy().astype("S3"),
                  activity_assumed=shares["by_time"].to_numpy(dtype=bool)
                  if component == Component.ENERGY else None)
        )  # fmt: skip
        cell = c["n"].to_numpy() * hours + c["h"].to_numpy()
        given_q = np.bincount(n * hours + h, share_q, len(nodes) * hours)[cell]
        given_a = np.bincount(n * hours + h, share_a, len(nodes) * hours)[cell]
        rest_q = c["quantity"].to_numpy() - np.rint(given_q).astype(np.int64)
        rest_a = c["amount"].to_numpy() - np.rint(given_a).astype(np.int64)
        rest = rest_a > 0
        blocks.append(
            Block(Bucket.IDLE, component, unit, hour=c["h"].to_numpy()[rest],
                  team=np.full(int(rest.sum()), NONE), node=nodes[c["n"].to_numpy()[rest]],
                  quantity=np.maximum(rest_q[rest], 0), amount=rest_a[rest],
                  currency=c["currency"].to_numpy()[rest].astype("S3"))
        )  # fmt: skip
    return blocks


LOCK_CLASS = 0x4C44  # pg_advisory_xact_lock(class, day): one recompute of a day at a time


def _day_lock(day: datetime) -> None:
    """Wait for any other transaction recomputing ``day``: two at once would each delete the
    lines they see and both insert theirs (PostgreSQL; SQLite has one writer anyway)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_advisory_xact_lock(%s, %s)", [LOCK_CLASS, int(day.timestamp()) // 86400]
            )


def ledger_recompute(
    *, start: datetime, end: datetime, now: datetime | None = None
) -> dict[str, Any]:
    """Replace the ledger of every UTC day that [start, end) touches, in one transaction:
    lines, prices and daily summaries (by team and node, by job dimension, output, clip);
    clears those days' dirty marks.
    Returns counts, with the node-hours that no price resolved for (``unpriced``: node id
    to its hours)."""
    first, last = day_floor(start), day_floor(end - timedelta(microseconds=1)) + DAY
    days = [first + DAY * i for i in range((last - first) // DAY)]
    computed_at = timezone.now()
    entries = deleted = 0
    unpriced: dict[int, list[datetime]] = defaultdict(list)
    with transaction.atomic():
        fleet = _Fleet.load()
        for day in days:
            window = {"window_start__gte": day, "window_start__lt": day + DAY}
            _day_lock(day)
            # Marks cleared before reading: an event committed from here on marks its hour
            # again, and is recomputed next time.
            DirtyWindow.objects.filter(**window).delete()
            ledger = day_compute(day=day, now=now, fleet=fleet)
            deleted += LedgerEntry.objects.filter(**window).delete()[0]
            LedgerPrice.objects.filter(**window).delete()
            LedgerDay.objects.filter(day=day).delete()
            LedgerTeamDay.objects.filter(day=day).delete()
            day_store(ledger, computed_at)
            entries += len(ledger)
            for hour, node_id, price, _, _ in ledger.prices:
                if price == NONE:
                    unpriced[node_id].append(day + timedelta(hours=hour))
            day_summaries_replace(day)
    return {"windows": 24 * len(days), "entries": entries, "replaced": deleted,
            "unpriced": dict(unpriced)}  # fmt: skip


def dirty_windows_recompute(*, limit: int = 168) -> int:
    """Recompute the UTC days of the oldest dirty hours (late jobs, verdicts, prices)."""
    hours = list(
        DirtyWindow.objects.order_by("window_start").values_list("window_start", flat=True)[:limit]
    )
    for day in sorted({day_floor(h) for h in hours}):
        ledger_recompute(start=day, end=day + DAY)
    return len(hours)
