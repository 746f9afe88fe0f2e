"""The attribution engine: every paid GPU-hour to a team, idle, or unallocated.

For each hour window and GPU:

* **paid** seconds are the seconds the GPU showed life: telemetry coverage from its hour
  rollup, or time a job held it, whichever is longer (a node with neither is down);
* jobs holding the GPU at the same time split each instant equally, or by their VRAM when
  every one of them reports it; a multi-GPU job is charged on every GPU it holds;
* paid time nobody held is **unallocated** where the GPU was busy anyway (someone ran work
  without reporting a job) and **idle** otherwise;
* the **usage** basis charges a job its allocation times the GPU's measured SM activity and
  books the rest to its team as **waste**; the allocation basis charges the allocation;
* storage (capacity x price per GB-month) and on-prem energy (measured kWh x PUE x price)
  of a node are shared by teams by their share of the node's paid GPU time, the rest idle.

Amounts are Decimals to 6 places; idle takes the rounding residue, so per window
sum(teams) + idle + unallocated = paid GPU + storage + energy exactly.
Recomputing a range replaces its entries in one transaction.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from operator import itemgetter
from typing import Any

import numpy as np
from django.db import connection, transaction
from django.db.models import F, FloatField, Func, Q, Sum
from django.db.models.functions import TruncDay
from django.utils import timezone

from collectors.pricing.offers import HOURS_PER_MONTH
from finops.costing.dirty import hour_floor
from finops.costing.models import (
    Basis,
    Bucket,
    Component,
    DirtyWindow,
    LedgerDay,
    LedgerEntry,
    OutputDay,
)
from finops.costing.selectors import job_seconds_rows, regeneration_flag
from finops.fleet.models import Gpu, StorageDevice
from finops.jobs.models import GpuAllocation, RenderJob
from finops.pricing.selectors import PriceBook, ResolvedPrice, storage_price_resolve
from finops.telemetry.models import GpuHour
from finops.telemetry.writes import copy_rows

HOUR_S = 3600.0
Q6 = Decimal("0.000001")


def q6(value: Decimal) -> Decimal:
    return value.quantize(Q6)


def _dec(seconds: float) -> Decimal:
    return Decimal(repr(round(seconds, 6)))


@dataclass
class _Piece:
    job_id: int
    team_id: int
    seconds: float


def _split_gpu(
    allocations: list[tuple[int, int, float, float, int | None]], range_start: float, hours: int
) -> tuple[dict[int, list[_Piece]], dict[int, float]]:
    """Per hour index: each allocation's share of the GPU (seconds), and the seconds anyone
    held the GPU. ``allocations``: (job, team, start, end, vram) in epoch seconds."""
    starts = np.array([a[2] for a in allocations])
    ends = np.array([a[3] for a in allocations])
    vram = [a[4] for a in allocations]
    weights = np.array(vram, dtype=float) if all(v for v in vram) else np.ones(len(allocations))
    edges = range_start + HOUR_S * np.arange(hours + 1)
    points = np.unique(np.concatenate([starts, ends, edges]))
    delta = np.zeros(len(points))
    np.add.at(delta, np.searchsorted(points, starts), weights)
    np.add.at(delta, np.searchsorted(points, ends), -weights)
    held = np.cumsum(delta)[:-1]
    lengths = np.diff(points)
    active = held > 1e-12
    per_weight = np.where(active, lengths / np.where(active, held, 1.0), 0.0)
    integral = np.concatenate([[0.0], np.cumsum(per_weight)])
    union: dict[int, float] = defaultdict(float)
    segment_hours = ((points[:-1] - range_start) // HOUR_S).astype(int)
    for hour, length in zip(segment_hours[active], lengths[active], strict=True):
        union[int(hour)] += float(length)
    pieces: dict[int, list[_Piece]] = defaultdict(list)
    for (job_id, team_id, start, end, _), weight in zip(allocations, weights, strict=True):
        first = int((start - range_start) // HOUR_S)
        last = int((end - range_start - 1e-9) // HOUR_S)
        for hour in range(first, last + 1):
            lo = max(start, range_start + hour * HOUR_S)
            hi = min(end, range_start + (hour + 1) * HOUR_S)
            i, j = np.searchsorted(points, [lo, hi])
            share = float(weight * (integral[j] - integral[i]))
            if share > 0:
                pieces[hour].append(_Piece(job_id, team_id, share))
    return pieces, union


LEDGER_COLUMNS = (
    "window_start",
    "window_end",
    "bucket",
    "team_id",
    "job_id",
    "node_id",
    "gpu_id",
    "component",
    "quantity",
    "unit",
    "unit_price",
    "amount",
    "currency",
    "basis",
    "price_reason",
    "computed_at",
)
LEDGER_TYPES = (
    "timestamptz",
    "timestamptz",
    "text",
    "int8",
    "int8",
    "int8",
    "int8",
    "text",
    "numeric",
    "text",
    "numeric",
    "numeric",
    "text",
    "text",
    "text",
    "timestamptz",
)
_DEFAULTS = {"bucket": Bucket.TEAM, "unit": "gpu_hour", "currency": "USD", "price_reason": ""}


def _entry(window: datetime, **values: Any) -> dict[str, Any]:
    """One ledger row as a dict of LEDGER_COLUMNS (rows are written with COPY)."""
    return {
        **_DEFAULTS,
        "window_start": window,
        "window_end": window + timedelta(hours=1),
        **values,
    }


def _split_by_time(
    amount: Decimal, team_seconds: dict[int, float], paid_s: float
) -> tuple[dict[int, Decimal], Decimal]:
    """``amount`` shared by teams' held seconds over paid seconds; the residue is idle."""
    shares = {
        team: q6(amount * _dec(s) / _dec(paid_s)) for team, s in team_seconds.items() if paid_s > 0
    }
    return shares, amount - sum(shares.values(), Decimal(0))


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


def _seconds(value: float | datetime | None) -> float | None:
    return value.timestamp() if isinstance(value, datetime) else value


def ledger_compute(
    *, start: datetime, end: datetime, now: datetime | None = None
) -> list[LedgerEntry]:
    """The ledger entries of the hour windows in [start, end), both bases."""
    now = now or timezone.now()
    start, end = hour_floor(start), hour_floor(end - timedelta(microseconds=1)) + timedelta(hours=1)
    hours = int((end - start).total_seconds() // HOUR_S)
    range_start = start.timestamp()
    gpus = {
        g.id: g
        for g in Gpu.objects.filter(mig_parent__isnull=True).select_related("node__site", "model")
    }
    parent_of = dict(
        Gpu.objects.filter(mig_parent__isnull=False).values_list("id", "mig_parent_id")
    )

    by_gpu: dict[int, list[tuple[int, int, float, float, int | None]]] = defaultdict(list)
    allocations = GpuAllocation.objects.filter(
        Q(end__isnull=True) | Q(end__gt=start), start__lt=end
    )
    # Times as epoch seconds straight from the database (building a datetime per row was
    # most of this loop); sorted by what identifies a job outside this database, so rounding
    # lands the same way whatever order the events arrived in.
    rows = (
        allocations.annotate(start_s=_epoch("start"), end_s=_epoch("end"))
        .values_list("job_id", "job__team_id", "gpu_id", "start_s", "end_s", "vram_bytes")
        .order_by("start", "end", "job__source", "job__external_id", "gpu_id")
    )
    start_s, end_s, now_s = start.timestamp(), end.timestamp(), now.timestamp()
    for job_id, team_id, gpu_id, a_start, a_end, vram in rows:
        a_start, a_end = _seconds(a_start), _seconds(a_end)
        lo, hi = max(a_start, start_s), min(now_s if a_end is None else a_end, end_s)
        if hi > lo:
            by_gpu[parent_of.get(gpu_id, gpu_id)].append((job_id, team_id, lo, hi, vram))

    telemetry: dict[tuple[int, int], tuple[float, float, float | None, float | None]] = {}
    for gpu_id, ts, covered, busy, util, energy in GpuHour.objects.filter(
        ts__gte=start, ts__lt=end
    ).values_list("gpu_id", "ts", "covered_s", "busy_s", "util_mean_pct", "energy_j"):
        telemetry[(gpu_id, int((ts.timestamp() - range_start) // HOUR_S))] = (
            covered,
            busy,
            util,
            energy,
        )

    book = PriceBook(providers={g.node.site.provider for g in gpus.values()})
    prices: dict[tuple[int, int], ResolvedPrice] = {}

    def price(gpu: Gpu, hour: int) -> ResolvedPrice:
        key = (gpu.node_id, hour)
        if key not in prices:
            at = datetime.fromtimestamp(range_start + hour * HOUR_S, tz=UTC)
            prices[key] = book.resolve(node=gpu.node, at=at, gpu_model=gpu.model)
        return prices[key]

    entries: list[dict[str, Any]] = []
    # node, hour -> team -> held seconds, and paid seconds (for storage and energy)
    node_team_s: dict[tuple[int, int], dict[int, float]] = defaultdict(lambda: defaultdict(float))
    node_paid_s: dict[tuple[int, int], float] = defaultdict(float)
    node_energy_j: dict[tuple[int, int], float] = defaultdict(float)
    for gpu_id in set(by_gpu) | {g for g, _ in telemetry}:
        gpu = gpus.get(gpu_id)
        if gpu is None:
            continue
        pieces, union = (
            _split_gpu(by_gpu[gpu_id], range_start, hours) if by_gpu.get(gpu_id) else ({}, {})
        )
        for hour in range(hours):
            covered, busy, util, energy = telemetry.get((gpu_id, hour), (0.0, 0.0, None, None))
            held_s = union.get(hour, 0.0)
            paid_s = min(max(covered, held_s), HOUR_S)
            if paid_s <= 0:
                continue
            window = datetime.fromtimestamp(range_start + hour * HOUR_S, tz=UTC)
            resolved = price(gpu, hour)
            rate = resolved.price if resolved.price is not None else Decimal(0)
            common = {
                "gpu_id": gpu.id,
                "node_id": gpu.node_id,
                "currency": resolved.currency,
                "unit": "gpu_hour",
                "unit_price": resolved.price,
                "price_reason": resolved.reason[:200],
            }
            paid_amount = q6(_dec(paid_s) / 3600 * rate)
            job_amounts = [q6(_dec(p.seconds) / 3600 * rate) for p in pieces.get(hour, [])]
            unallocated_s = min(paid_s - held_s, max(0.0, busy - held_s))
            unallocated_amount = q6(_dec(unallocated_s) / 3600 * rate)
            idle_amount = paid_amount - sum(job_amounts, Decimal(0)) - unallocated_amount
            if idle_amount < 0 and job_amounts:  # rounding: the largest job absorbs it
                biggest = max(range(len(job_amounts)), key=job_amounts.__getitem__)
                job_amounts[biggest] += idle_amount
                idle_amount = Decimal(0)
            activity = (
                Decimal(repr(min(max(util / 100.0, 0.0), 1.0))) if util is not None else Decimal(1)
            )
            # One dict of what a GPU-hour's job lines share, merged per line (no per-line
            # keyword packing); without telemetry the usage basis equals the allocation.
            head = _entry(window, bucket=Bucket.TEAM, component=Component.GPU, **common)
            team_s = node_team_s[(gpu.node_id, hour)]
            for piece, amount in zip(pieces.get(hour, []), job_amounts, strict=True):
                team_s[piece.team_id] += piece.seconds
                quantity = q6(_dec(piece.seconds) / 3600)
                if activity == 1:
                    used, used_quantity = amount, quantity
                else:
                    used, used_quantity = q6(amount * activity), q6(quantity * activity)
                job = head | {"team_id": piece.team_id, "job_id": piece.job_id}
                entries.append(
                    job | {"basis": Basis.ALLOCATION, "quantity": quantity, "amount": amount}
                )
                entries.append(
                    job | {"basis": Basis.USAGE, "quantity": used_quantity, "amount": used}
                )
                if amount - used > 0:
                    entries.append(
                        job
                        | {
                            "basis": Basis.USAGE,
                            "component": Component.WASTE,
                            "quantity": quantity - used_quantity,
                            "amount": amount - used,
                        }
                    )
            idle_s = paid_s - held_s - unallocated_s
            fleet_lines = []
            if unallocated_amount > 0 or unallocated_s > 0:
                fleet_lines.append(
                    {
                        "bucket": Bucket.UNALLOCATED,
                        "component": Component.GPU,
                        "quantity": q6(_dec(unallocated_s) / 3600),
                        "amount": unallocated_amount,
                    }
                )
            if idle_amount > 0 or idle_s > 0:
                fleet_lines.append(
                    {
                        "bucket": Bucket.IDLE,
                        "component": Component.IDLE,
                        "quantity": q6(_dec(max(idle_s, 0.0)) / 3600),
                        "amount": idle_amount,
                    }
                )
            for basis in (Basis.ALLOCATION, Basis.USAGE):
                entries.extend(
                    _entry(window, basis=basis, **common, **line) for line in fleet_lines
                )
            node_paid_s[(gpu.node_id, hour)] += paid_s
            if energy:
                node_energy_j[(gpu.node_id, hour)] += energy
    entries += _node_costs(node_paid_s, node_team_s, node_energy_j, prices, range_start)
    return entries


def _node_costs(
    node_paid_s: dict[tuple[int, int], float],
    node_team_s: dict[tuple[int, int], dict[int, float]],
    node_energy_j: dict[tuple[int, int], float],
    prices: dict[tuple[int, int], ResolvedPrice],
    range_start: float,
) -> list[dict[str, Any]]:
    """Storage and on-prem energy per node-hour, shared by teams' held GPU time."""
    entries: list[dict[str, Any]] = []
    devices: dict[int, list[StorageDevice]] = defaultdict(list)
    for device in (
        StorageDevice.objects.filter(
            node_id__in={n for n, _ in node_paid_s}, capacity_bytes__isnull=False
        )
        .exclude(volume_type="")
        .select_related("node__site")
    ):
        devices[device.node_id].append(device)
    for (node_id, hour), paid_s in node_paid_s.items():
        window = datetime.fromtimestamp(range_start + hour * HOUR_S, tz=UTC)
        costs: list[tuple[str, Decimal, Decimal, str, str]] = []
        for device in devices.get(node_id, []):
            resolved = storage_price_resolve(device=device, at=window)
            if resolved.price is not None and device.capacity_bytes:
                gb = Decimal(device.capacity_bytes) / Decimal(10**9)
                costs.append(
                    (
                        Component.STORAGE,
                        q6(gb * resolved.price / HOURS_PER_MONTH),
                        q6(gb / HOURS_PER_MONTH),
                        "gb_month",
                        resolved.currency,
                    )
                )
        resolved = prices.get((node_id, hour))
        rate = resolved.rate if resolved else None
        energy_j = node_energy_j.get((node_id, hour), 0.0)
        if rate is not None and rate.energy_per_kwh is not None and energy_j > 0:
            kwh = _dec(energy_j / 3.6e6)
            amount = q6(kwh * (rate.pue or Decimal(1)) * rate.energy_per_kwh)
            costs.append((Component.ENERGY, amount, q6(kwh), "kwh", rate.currency))
        for component, amount, quantity, unit, currency in costs:
            shares, rest = _split_by_time(amount, node_team_s.get((node_id, hour), {}), paid_s)
            common = {
                "node_id": node_id,
                "component": component,
                "quantity": quantity,
                "unit": unit,
                "currency": currency,
            }
            lines = [{"bucket": Bucket.TEAM, "team_id": t, "amount": a} for t, a in shares.items()]
            if rest > 0:
                lines.append({"bucket": Bucket.IDLE, "amount": rest})
            for basis in (Basis.ALLOCATION, Basis.USAGE):
                entries.extend(_entry(window, basis=basis, **common, **line) for line in lines)
    return entries


def ledger_recompute(
    *, start: datetime, end: datetime, now: datetime | None = None
) -> dict[str, int]:
    """Replace the ledger of [start, end) in one transaction; clears those dirty marks."""
    entries = ledger_compute(start=start, end=end, now=now)
    start, end = hour_floor(start), hour_floor(end - timedelta(microseconds=1)) + timedelta(hours=1)
    computed_at = timezone.now()
    with transaction.atomic():
        deleted, _ = LedgerEntry.objects.filter(
            window_start__gte=start, window_start__lt=end
        ).delete()
        if connection.vendor == "postgresql":
            # Every column present (absent ones None), then one C-level lookup per row.
            base = dict.fromkeys(LEDGER_COLUMNS, None) | {"computed_at": computed_at}
            as_row = itemgetter(*LEDGER_COLUMNS)
            rows = [as_row(base | e) for e in entries]
            with connection.cursor() as cursor:
                copy_rows(
                    cursor.cursor, LedgerEntry._meta.db_table, LEDGER_COLUMNS, LEDGER_TYPES, rows
                )
        else:
            LedgerEntry.objects.bulk_create((LedgerEntry(**e) for e in entries), batch_size=2000)
        DirtyWindow.objects.filter(window_start__gte=start, window_start__lt=end).delete()
        ledger_days_refresh(start=start, end=end)
    return {
        "windows": int((end - start).total_seconds() // HOUR_S),
        "entries": len(entries),
        "replaced": deleted,
    }


def ledger_days_refresh(*, start: datetime, end: datetime) -> int:
    """Rebuild the daily summary of every UTC day that [start, end) touches."""
    day_start = start.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    day_end = (end - timedelta(microseconds=1)).astimezone(UTC).replace(
        hour=0, minute=0, second=0, microsecond=0
    ) + timedelta(days=1)
    LedgerDay.objects.filter(day__gte=day_start, day__lt=day_end).delete()
    if connection.vendor == "postgresql" and connection.in_atomic_block:
        # A day of a large fleet is a few hundred thousand lines: sort them in memory, not
        # in temporary files (the default 4 MB spills). For this transaction only.
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL work_mem = '64MB'")
    rows = (
        LedgerEntry.objects.filter(window_start__gte=day_start, window_start__lt=day_end)
        .annotate(d=TruncDay("window_start", tzinfo=UTC), regen=regeneration_flag())
        .values("d", "basis", "bucket", "team_id", "node_id", "component", "regen")
        .annotate(q=Sum("quantity"), a=Sum("amount"))
        .order_by()
    )
    summary = [
        LedgerDay(day=r["d"], basis=r["basis"], bucket=r["bucket"], team_id=r["team_id"],
                  node_id=r["node_id"], component=r["component"], regeneration=r["regen"],
                  quantity=r["q"], amount=r["a"])
        for r in rows
    ]  # fmt: skip
    LedgerDay.objects.bulk_create(summary, batch_size=5000)
    OutputDay.objects.filter(day__gte=day_start, day__lt=day_end).delete()
    generated, usable = job_seconds_rows(
        RenderJob.objects.filter(finished_at__gte=day_start, finished_at__lt=day_end),
        dims=["team_id"],
        step_expr=TruncDay("finished_at", tzinfo=UTC),
    )
    outputs: dict[tuple[datetime, int], list[float]] = defaultdict(lambda: [0.0, 0.0])
    for column, rows in ((0, generated), (1, usable)):
        for r in rows:
            outputs[(r["step_start"], r["team_id"])][column] += r["total"] or 0.0
    OutputDay.objects.bulk_create(
        OutputDay(day=day, team_id=team, generated_seconds=g, usable_seconds=u)
        for (day, team), (g, u) in outputs.items()
    )
    return len(summary)


def dirty_windows_recompute(*, limit: int = 168) -> int:
    """Recompute the oldest dirty hours (late jobs, verdicts, prices)."""
    hours = list(
        DirtyWindow.objects.order_by("window_start").values_list("window_start", flat=True)[:limit]
    )
    for hour in hours:
        ledger_recompute(start=hour, end=hour + timedelta(hours=1))
    return len(hours)
