"""Reads of the ledger: the allocation report (DESIGN "Public contract")."""

from __future__ import annotations

import calendar
import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db import connection
from django.db.models import (
    BooleanField,
    Case,
    CharField,
    Count,
    DecimalField,
    Exists,
    ExpressionWrapper,
    F,
    FloatField,
    Max,
    Min,
    OuterRef,
    Q,
    QuerySet,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Cast, Concat, Round, TruncDay, TruncHour
from django.utils import timezone

from finops.accounts.models import Team
from finops.costing.models import (
    Basis,
    Bucket,
    ClipDay,
    Component,
    LedgerDay,
    LedgerDimensionDay,
    LedgerEntry,
    LedgerPrice,
    LedgerTeamDay,
    OutputDay,
)
from finops.costing.money import money_str, quantity_str
from finops.jobs.models import Clip, JobStatus, RenderJob
from finops.validation import ParameterError, time_parse

AGGREGATES = {
    "team": "team__slug",
    "project": "job__project",
    "model": "job__model_name",
    "model_version": "job__model_version",
    "resolution": "job_resolution",
    "gpu_model": "gpu__model__name",
    "node": "node__hostname",
    "job": "job_key",
}
# What the daily summaries hold of each aggregate: by team, node and GPU model
# (``LedgerDay``), by the job's dimensions (``LedgerDimensionDay``).
DAY_AGGREGATES = {"team": "team__slug", "node": "node__hostname", "gpu_model": "gpu_model__name"}
DIMENSION_AGGREGATES = {
    "team": "team__slug",
    "project": "project",
    "model": "model_name",
    "model_version": "model_version",
    "resolution": "resolution",
}
# Dimensions a job carries: usable seconds can be attributed to them.
JOB_DIMENSIONS = {
    "team": "team__slug",
    "project": "project",
    "model": "model_name",
    "model_version": "model_version",
    "resolution": "resolution_",
    "job": "job_key",
}
# The cost a team is allocated, the base idle is shared by.
ALLOCATED_COSTS = ("gpu_cost", "waste_cost", "storage_cost", "energy_cost")
STEPS = {"1h": timedelta(hours=1), "1d": timedelta(days=1), "window": None}
IDLE_POLICIES = ("separate", "share", "hide")
MAX_WINDOW = timedelta(days=366)


def regeneration_flag() -> Case:
    """True for ledger lines of attempts that were not usable (or did not finish)."""
    failed = [JobStatus.FAILED, JobStatus.OOM, JobStatus.CANCELLED]
    return Case(
        When(Q(job__usable=False) | Q(job__status__in=failed), then=Value(True)),
        default=Value(False),
        output_field=BooleanField(),
    )


class QueryError(ValueError):
    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(f"{parameter}: {message}")
        self.parameter = parameter
        self.message = message


def parse_window(value: str, *, now: datetime | None = None) -> tuple[datetime, datetime]:
    """``7d``/``24h`` (trailing), ``today``, ``yesterday``, ``lastweek`` (Monday to Monday),
    ``thismonth`` (the whole calendar month), ``monthtodate`` (its start to now),
    ``lastmonth``, or ``START,END`` in RFC 3339."""
    now = now or timezone.now()
    today = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    value = (value or "").strip()
    match = re.fullmatch(r"(\d{1,12})([hd])", value)
    if match:
        amount = int(match.group(1))
        if amount < 1:
            raise QueryError("window", "must be at least 1h")
        span = timedelta(hours=amount) if match.group(2) == "h" else timedelta(days=amount)
        if span > MAX_WINDOW:
            raise QueryError("window", f"{value!r} is longer than {MAX_WINDOW.days} days")
        start, end = now - span, now
    elif value == "today":
        start, end = today, today + timedelta(days=1)
    elif value == "yesterday":
        start, end = today - timedelta(days=1), today
    elif value == "lastweek":
        monday = today - timedelta(days=today.weekday())
        start, end = monday - timedelta(days=7), monday
    elif value == "thismonth":
        start = today.replace(day=1)
        end = (start + timedelta(days=32)).replace(day=1)
    elif value == "monthtodate":
        start = today.replace(day=1)
        end = max(now, start + timedelta(hours=1))
    elif value == "lastmonth":
        end = today.replace(day=1)
        start = (end - timedelta(days=1)).replace(day=1)
    elif "," in value:
        raw_start, _, raw_end = value.partition(",")
        try:
            start = time_parse(raw_start, parameter="window")
            end = time_parse(raw_end, parameter="window")
        except ParameterError as exc:
            raise QueryError("window", f"START,END: {exc.message}") from None
    else:
        raise QueryError(
            "window",
            f"{value[:40]!r}: use 7d, 24h, today, yesterday, lastweek, thismonth, monthtodate, "
            "lastmonth or START,END",
        )
    if end <= start:
        raise QueryError("window", "end must be after start")
    if end - start > MAX_WINDOW:
        raise QueryError("window", f"is longer than {MAX_WINDOW.days} days")
    return start.astimezone(UTC), end.astimezone(UTC)


@dataclass(frozen=True)
class AllocationQuery:
    start: datetime
    end: datetime
    aggregate: tuple[str, ...]
    step: str
    idle: str
    basis: str
    share_idle_by: str = "fleet"

    @classmethod
    def from_params(cls, params: Any, *, now: datetime | None = None) -> AllocationQuery:
        start, end = parse_window(params.get("window", "7d"), now=now)
        aggregate = tuple(
            a.strip() for a in params.get("aggregate", "team").split(",") if a.strip()
        )
        unknown = [a for a in aggregate if a not in AGGREGATES]
        if not aggregate or unknown:
            raise QueryError(
                "aggregate", f"{', '.join(unknown) or 'nothing'}: use {', '.join(AGGREGATES)}"
            )
        step = params.get("step", "window")
        if step not in STEPS:
            raise QueryError("step", f"{step[:40]!r}: use {', '.join(STEPS)}")
        idle = params.get("idle", "separate")
        if idle not in IDLE_POLICIES:
            raise QueryError("idle", f"{idle[:40]!r}: use {', '.join(IDLE_POLICIES)}")
        basis = params.get("basis", Basis.ALLOCATION)
        if basis not in Basis.values:
            raise QueryError("basis", f"{basis[:40]!r}: use {', '.join(Basis.values)}")
        share_by = params.get("share_idle_by", "fleet")
        if share_by not in ("fleet", "node"):
            raise QueryError("share_idle_by", f"{share_by[:40]!r}: use fleet or node")
        if step == "1h" and end - start > timedelta(days=31):
            raise QueryError("step", "1h steps are limited to windows of 31 days")
        return cls(start, end, aggregate, step, idle, basis, share_by)


def _steps(query: AllocationQuery) -> list[tuple[datetime, datetime]]:
    size = STEPS[query.step]
    if size is None:
        return [(query.start, query.end)]
    out, cursor = [], query.start
    if size == timedelta(days=1):
        cursor = cursor.replace(hour=0, minute=0, second=0, microsecond=0)
    else:
        cursor = cursor.replace(minute=0, second=0, microsecond=0)
    while cursor < query.end:
        out.append((max(cursor, query.start), min(cursor + size, query.end)))
        cursor += size
    return out


def _step_of(query: AllocationQuery, ts: datetime, steps: list[tuple[datetime, datetime]]) -> int:
    if len(steps) == 1:
        return 0
    size = STEPS[query.step]
    if size is None:
        return 0
    return max(0, min(len(steps) - 1, int((ts - steps[0][0]) // size)))


def job_key() -> Case:
    """``source:external_id`` of a line's job; null (``__none__`` in reports) for lines of
    no job (storage, energy)."""
    return Case(
        When(job__isnull=True, then=Value(None)),
        default=Concat(F("job__source"), Value(":"), F("job__external_id")),
        output_field=CharField(),
    )


def resolution_of(prefix: str = "") -> Case:
    """``WIDTHxHEIGHT`` of a job (``prefix``: the path to it, ``job__`` from a ledger line),
    empty where it reported no size; null for a line of no job."""
    size = Concat(
        Cast(f"{prefix}width", CharField()), Value("x"), Cast(f"{prefix}height", CharField())
    )
    reported = Q(**{f"{prefix}width__isnull": False, f"{prefix}height__isnull": False})
    whens = [When(job__isnull=True, then=Value(None))] if prefix else []
    return Case(*whens, When(reported, then=size), default=Value(""), output_field=CharField())


@dataclass(frozen=True)
class Part:
    """A part of a report's window and the table that answers it: ``lines`` (the hourly
    ledger), ``team`` (``LedgerTeamDay``), ``day`` (``LedgerDay``) or ``dimension``
    (``LedgerDimensionDay``)."""

    source: str
    start: datetime
    end: datetime


def _day_ceil(ts: datetime) -> datetime:
    floor = ts.replace(hour=0, minute=0, second=0, microsecond=0)
    return floor if floor == ts else floor + timedelta(days=1)


def report_parts(query: AllocationQuery, *, summaries: bool = True) -> list[Part]:
    """Whole UTC days from the daily summary that holds the report's aggregates, the hours
    before the first and after the last whole day from the ledger lines: what a report
    reads grows with the rows it shows and at most two days of lines, not with the jobs of
    the window. Hourly steps, aggregates by job and idle shared per node by a job
    dimension read lines."""
    aggregates = set(query.aggregate)
    by_node = query.idle == "share" and query.share_idle_by == "node"
    if not summaries or query.step == "1h":
        source = "lines"
    elif aggregates == {"team"} and not by_node:
        source = "team"
    elif aggregates <= set(DAY_AGGREGATES):
        source = "day"
    elif aggregates <= set(DIMENSION_AGGREGATES) and not by_node:
        source = "dimension"
    else:
        source = "lines"
    return day_parts(query.start, query.end, source)


def day_parts(start: datetime, end: datetime, source: str) -> list[Part]:
    """``[start, end)`` as its whole UTC days from the summary ``source`` and the hours
    before and after them from the lines (all of it from lines when ``source`` is lines)."""
    first = _day_ceil(start)
    last = end.replace(hour=0, minute=0, second=0, microsecond=0)
    if source == "lines" or first >= last:
        return [Part("lines", start, end)]
    parts = [Part(source, first, last)]
    if start < first:
        parts.insert(0, Part("lines", start, first))
    if last < end:
        parts.append(Part("lines", last, end))
    return parts


SUMS = ("amount", "quantity", "unpriced_quantity", "assumed_quantity")
SUMMARIES: dict[str, Any] = {
    "team": LedgerTeamDay,
    "day": LedgerDay,
    "dimension": LedgerDimensionDay,
}


def _part_rows(
    query: AllocationQuery, part: Part, visible: Q, group: list[str]
) -> list[dict[str, Any]]:
    """The rows of one part of the report, keyed ``step_start`` (daily and hourly steps),
    ``bucket``, ``component``, ``node_id`` (idle shared per node), ``k_<aggregate>`` and
    ``regen``, with the basis's ``amount``, ``quantity`` and unpriced and assumed hours."""
    keys = {f"k_{a}": F(path) for a, path in _paths(part.source, query.aggregate).items()}
    if part.source == "lines":
        entries = LedgerEntry.objects.filter(
            window_start__gte=part.start, window_start__lt=part.end
        ).filter(visible)
        if "job" in query.aggregate:
            entries = entries.annotate(job_key=job_key())
        if "resolution" in query.aggregate:
            entries = entries.annotate(job_resolution=resolution_of("job__"))
        step = (
            TruncHour("window_start")
            if query.step == "1h"
            else TruncDay("window_start", tzinfo=UTC)
        )
        return basis_rows(
            entries.annotate(step_start=step, regen=regeneration_flag(), **keys)
            .values("regen", *group)
            .annotate(**basis_sums(query.basis))
            .order_by()
        )
    model = SUMMARIES[part.source]
    return list(
        model.objects.filter(day__gte=part.start, day__lt=part.end, basis=query.basis)
        .filter(visible)
        .annotate(step_start=F("day"), regen=F("regeneration"), **keys)
        .values("regen", *group)
        .annotate(**{name: Sum(name) for name in SUMS})
        .order_by()
    )


def _paths(source: str, aggregate: tuple[str, ...]) -> dict[str, str]:
    table = {"lines": AGGREGATES, "team": DAY_AGGREGATES, "day": DAY_AGGREGATES,
             "dimension": DIMENSION_AGGREGATES}  # fmt: skip
    return {a: table[source][a] for a in aggregate}


def _key(r: dict[str, Any], aggregate: tuple[str, ...]) -> tuple[Any, ...]:
    return tuple(r[f"k_{a}"] if r[f"k_{a}"] is not None else "__none__" for a in aggregate)


def unpriced_warnings(parts: list[Part], visible: Q) -> list[str]:
    """One warning per node whose GPU time in the report had no price (booked at 0): its
    hostname, unpriced GPU-hours and the hours it had no price. GPU-hours from the lines or
    the daily summary, the hours from the prices the ledger recorded per node-hour."""
    gpu_hours: dict[int, Decimal] = defaultdict(Decimal)
    for part in parts:
        if part.source == "lines":
            rows = LedgerEntry.objects.filter(
                visible, window_start__gte=part.start, window_start__lt=part.end,
                unit="gpu_hour", unit_price__isnull=True,
            )  # fmt: skip
            field = "quantity"
        else:  # whatever summary the report read, the nodes come from LedgerDay
            rows = LedgerDay.objects.filter(
                visible, day__gte=part.start, day__lt=part.end, basis=Basis.ALLOCATION,
                unpriced_quantity__gt=0,
            )  # fmt: skip
            field = "unpriced_quantity"
        for node_id, total in (
            rows.values("node_id").annotate(total=Sum(field)).values_list("node_id", "total")
        ):
            gpu_hours[node_id] += total or 0
    if not gpu_hours:
        return []
    start, end = parts[0].start, parts[-1].end
    hours = {
        r["node_id"]: r
        for r in LedgerPrice.objects.filter(
            node_id__in=list(gpu_hours), unit_price__isnull=True,
            window_start__gte=start, window_start__lt=end,
        )
        .values("node_id", "node__hostname")
        .annotate(hours=Count("id"), first=Min("window_start"), last=Max("window_start"))
        .order_by()
    }  # fmt: skip
    out = []
    for node_id in sorted(hours, key=lambda n: hours[n]["node__hostname"]):
        r = hours[node_id]
        out.append(
            f"node {r['node__hostname']}: {quantity_str(gpu_hours[node_id])} GPU-hours in "
            f"{r['hours']} hour(s) from {r['first']:%Y-%m-%d %H:00}Z to "
            f"{r['last'] + timedelta(hours=1):%Y-%m-%d %H:00}Z have no price (no override, "
            "rate or default rate) and are booked at 0: load a rate card or set a price, then "
            "recompute_costs"
        )
    return out


def allocation_report(
    *, query: AllocationQuery, teams: QuerySet[Team], all_teams: bool, summaries: bool = True
) -> dict[str, Any]:
    """The allocation report (DESIGN "Public contract"). Whole days come from the daily
    summaries where they hold the aggregates; ``summaries=False`` reads every part from the
    ledger lines (the summaries' property test compares the two)."""
    # Group only by what the report needs: per-day or per-hour starts only for those steps,
    # nodes only to share idle per node.
    by_node = query.idle == "share" and query.share_idle_by == "node"
    group = [
        *(["step_start"] if query.step != "window" else []),
        "bucket",
        "component",
        *(["node_id"] if by_node else []),
        *[f"k_{a}" for a in query.aggregate],
    ]
    visible = Q(bucket=Bucket.TEAM, team__in=teams)
    if all_teams:
        visible |= ~Q(bucket=Bucket.TEAM)
    parts = report_parts(query, summaries=summaries)
    rows = [r for part in parts for r in _part_rows(query, part, visible, group)]
    steps = _steps(query)
    table: list[dict[tuple[Any, ...], dict[str, Decimal]]] = [
        defaultdict(lambda: defaultdict(Decimal)) for _ in steps
    ]
    idle_by_node: list[dict[Any, Decimal]] = [defaultdict(Decimal) for _ in steps]
    alloc_by_node: list[dict[Any, Decimal]] = [defaultdict(Decimal) for _ in steps]
    currency = "USD"
    for r in rows:
        i = _step_of(query, r.get("step_start", query.start), steps)
        if r["bucket"] != Bucket.TEAM:
            key: tuple[Any, ...] = (r["bucket"],)
            if r["bucket"] == Bucket.IDLE:
                idle_by_node[i][r.get("node_id")] += r["amount"]
        else:
            key = _key(r, query.aggregate)
            alloc_by_node[i][r.get("node_id")] += r["amount"]
        cell = table[i][key]
        cell["unpriced_gpu_hours"] += r.get("unpriced_quantity") or 0
        component = r["component"]
        if component == Component.GPU:
            cell["gpu_cost"] += r["amount"]
            cell["gpu_hours"] += r["quantity"]
            cell["usage_assumed_gpu_hours"] += r.get("assumed_quantity") or 0
        elif component == Component.IDLE:
            cell["idle_cost"] += r["amount"]
            cell["gpu_hours"] += r["quantity"]
        else:
            cell[f"{component}_cost"] += r["amount"]
            if component == Component.ENERGY:
                cell["energy_by_held_time_kwh"] += r.get("assumed_quantity") or 0
        if r["regen"]:
            cell["regeneration_cost"] += r["amount"]
    usable = _job_seconds(query, steps, teams, parts)
    job_dims = all(a in JOB_DIMENSIONS for a in query.aggregate)
    out_steps = []
    for i, (step_start, step_end) in enumerate(steps):
        cells = table[i]
        team_keys = [k for k in cells if k not in ((Bucket.IDLE,), (Bucket.UNALLOCATED,))]
        if query.idle == "share":
            _share_idle(query, cells, team_keys, idle_by_node[i], alloc_by_node[i], rows, i, steps)
        if query.idle != "separate":
            cells.pop((Bucket.IDLE,), None)
        result_rows = []
        for key in sorted(cells, key=lambda k: tuple(str(x) for x in k)):
            c = cells[key]
            name = ",".join(str(x) for x in key)
            total = sum(
                (
                    c[f]
                    for f in ("gpu_cost", "idle_cost", "storage_cost", "energy_cost", "waste_cost")
                ),
                Decimal(0),
            )
            generated, usable_s = usable[i].get(key, (0.0, 0.0)) if job_dims else (None, None)
            if key[0] in (Bucket.IDLE, Bucket.UNALLOCATED):
                generated = usable_s = None
            result_rows.append(
                {
                    "name": name,
                    "gpu_hours": quantity_str(c["gpu_hours"]),
                    "unpriced_gpu_hours": quantity_str(c["unpriced_gpu_hours"]),
                    "usage_assumed_gpu_hours": quantity_str(c["usage_assumed_gpu_hours"]),
                    "gpu_cost": money_str(c["gpu_cost"]),
                    "idle_cost": money_str(c["idle_cost"]),
                    "storage_cost": money_str(c["storage_cost"]),
                    "energy_cost": money_str(c["energy_cost"]),
                    "waste_cost": money_str(c["waste_cost"]),
                    "regeneration_cost": money_str(c["regeneration_cost"]),
                    "total_cost": money_str(total),
                    "generated_seconds": round(generated, 3) if generated is not None else None,
                    "usable_seconds": round(usable_s, 3) if usable_s is not None else None,
                    "cost_per_usable_second": money_str(total / Decimal(repr(usable_s)))
                    if usable_s
                    else None,
                }
            )
        out_steps.append(
            {"start": step_start.isoformat(), "end": step_end.isoformat(), "rows": result_rows}
        )
    unpriced = any(c["unpriced_gpu_hours"] for cells in table for c in cells.values())
    warnings = unpriced_warnings(parts, visible) if unpriced else []
    assumed = sum(
        (c["usage_assumed_gpu_hours"] for cells in table for c in cells.values()), Decimal(0)
    )
    if assumed:
        warnings.append(
            f"{quantity_str(assumed)} GPU-hours of jobs had no telemetry: their activity is "
            "assumed to be 100% (usage_assumed_gpu_hours), so the usage basis shows no waste "
            "for them"
        )
    by_time = sum(
        (c["energy_by_held_time_kwh"] for cells in table for c in cells.values()), Decimal(0)
    )
    if by_time:
        warnings.append(
            f"{quantity_str(by_time)} kWh of energy was measured only per hour (no minute "
            "rollups): it is shared by the time each job held the GPU in the hour, not by the "
            "energy each job drew"
        )
    return {
        "currency": currency,
        "warnings": warnings,
        "window": {"start": query.start.isoformat(), "end": query.end.isoformat()},
        "aggregate": list(query.aggregate),
        "step": query.step,
        "idle": query.idle,
        "basis": query.basis,
        "steps": out_steps,
    }


def attempts_started(start: datetime, end: datetime) -> QuerySet[RenderJob]:
    """Attempts at clips (jobs with a clip) that started in ``[start, end)``, each marked
    ``first_usable`` when it is usable and no earlier attempt of its clip was."""
    earlier_usable = RenderJob.objects.filter(
        clip_id=OuterRef("clip_id"), usable=True, started_at__lt=OuterRef("started_at")
    )
    return RenderJob.objects.filter(
        started_at__gte=start, started_at__lt=end, clip__isnull=False
    ).annotate(
        first_usable=ExpressionWrapper(
            Q(usable=True) & ~Exists(earlier_usable), output_field=BooleanField()
        )
    )


def clip_costs(
    *, teams: Any, start: datetime, end: datetime, limit: int | None = None
) -> dict[str, Any]:
    """The clips of ``teams`` in ``[start, end)``: ``attempts`` (attempts at clips that
    started in the window), ``usable_clips`` (clips whose first usable attempt started in
    it), ``count`` (clips with ledger cost in it) and ``clips``, the ``limit`` most
    expensive of those (all with no limit) with their cost in the window and their attempts
    and usable attempts (all of them, in or out of the window). Whole days from the daily
    clip summary, the hours around them from the ledger lines and jobs; the counts are sums,
    so a window's read grows with its days and clips, never per job."""
    query = AllocationQuery(start, end, ("team",), "window", "separate", Basis.ALLOCATION)
    parts = report_parts(query)
    costs_sql, params = [], []
    attempts = usable_clips = 0
    for part in parts:
        if part.source == "lines":
            rows = LedgerEntry.objects.filter(
                team__in=teams, window_start__gte=part.start, window_start__lt=part.end,
                job__clip__isnull=False,
            ).annotate(c_clip=F("job__clip_id"), c_total=F("amount"))  # fmt: skip
            counted = (
                attempts_started(part.start, part.end)
                .filter(team__in=teams)
                .aggregate(n=Count("id"), good=Count("id", filter=Q(first_usable=True)))
            )
        else:
            rows = ClipDay.objects.filter(
                team__in=teams, day__gte=part.start, day__lt=part.end, cost__isnull=False
            ).annotate(c_clip=F("clip_id"), c_total=F("cost"))
            counted = ClipDay.objects.filter(
                team__in=teams, day__gte=part.start, day__lt=part.end
            ).aggregate(n=Sum("attempts"), good=Sum("first_usable"))
        attempts += counted["n"] or 0
        usable_clips += counted["good"] or 0
        values = rows.values_list("c_clip", "c_total").order_by()
        sql, part_params = values.query.get_compiler(using=values.db).as_sql()
        costs_sql.append(f"SELECT q.c_clip, q.c_total FROM ({sql}) q")  # noqa: S608
        params += part_params
    with connection.cursor() as cursor:
        cursor.execute(
            "WITH costs AS (SELECT u.c_clip AS clip_id, SUM(u.c_total) AS cost "  # noqa: S608
            f"FROM ({' UNION ALL '.join(costs_sql)}) u GROUP BY u.c_clip) "
            "SELECT * FROM (SELECT 0 AS kind, clip_id, cost FROM costs "
            "ORDER BY cost DESC, clip_id LIMIT %s) top_ "
            "UNION ALL SELECT 1, COUNT(*), NULL FROM costs",
            [*params, 2**62 if limit is None else limit],
        )
        rows_out = cursor.fetchall()
    shown = sorted(
        ((clip_id, Decimal(str(cost))) for kind, clip_id, cost in rows_out if kind == 0),
        key=lambda r: (-r[1], r[0]),
    )
    count = next(int(clip_id or 0) for kind, clip_id, _ in rows_out if kind == 1)
    ids = [clip_id for clip_id, _ in shown]
    tried = {
        clip_id: (n or 0, good or 0)
        for clip_id, n, good in ClipDay.objects.filter(clip_id__in=ids)
        .values("clip_id")
        .annotate(n=Sum("attempts"), good=Sum("usable_attempts"))
        .values_list("clip_id", "n", "good")
        .order_by()
    }  # fmt: skip
    clips = {
        c["id"]: c
        for c in Clip.objects.filter(id__in=ids).values(
            "id", "external_id", "team__slug", "project", "model_name"
        )
    }
    return {
        "count": count,
        "attempts": int(attempts),
        "usable_clips": int(usable_clips),
        "clips": [
            {
                "clip_id": clip_id,
                "clip__external_id": clips[clip_id]["external_id"],
                "team__slug": clips[clip_id]["team__slug"],
                "project": clips[clip_id]["project"],
                "model_name": clips[clip_id]["model_name"],
                "attempts": int(tried.get(clip_id, (0, 0))[0]),
                "usable": int(tried.get(clip_id, (0, 0))[1]),
                "cost": cost.quantize(Decimal("0.000001")),
            }
            for clip_id, cost in shown
            if clip_id in clips
        ],
    }


@dataclass(frozen=True)
class MonthBurn:
    """A team's month so far against its monthly budget; ``forecast`` extrapolates the
    month-to-date cost at the rate of the elapsed part (at least an hour) to the month's end."""

    budget: Decimal | None
    spent: Decimal
    forecast: Decimal

    @property
    def burn(self) -> float | None:
        return float(self.spent / self.budget) if self.budget else None

    @property
    def forecast_burn(self) -> float | None:
        return float(self.forecast / self.budget) if self.budget else None


def month_burn(teams: Any, *, now: datetime | None = None) -> dict[int, MonthBurn]:
    """Month-to-date team cost (allocation basis, idle not shared) per team of ``teams``,
    from the daily summary by team: one grouped query."""
    now = now or timezone.now()
    month_start = now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    days = calendar.monthrange(month_start.year, month_start.month)[1]
    elapsed = max((now - month_start).total_seconds(), 3600.0)
    teams = list(teams)
    spent = dict(
        LedgerTeamDay.objects.filter(
            day__gte=month_start,
            day__lt=now,
            basis=Basis.ALLOCATION,
            bucket=Bucket.TEAM,
            team_id__in=[t.pk for t in teams],
        )
        .values("team_id")
        .annotate(total=Sum("amount"))
        .values_list("team_id", "total")
    )
    scale = Decimal(days * 86400) / Decimal(repr(elapsed))
    return {
        t.pk: MonthBurn(
            budget=t.monthly_budget,
            spent=spent.get(t.pk) or Decimal(0),
            forecast=(spent.get(t.pk) or Decimal(0)) * scale,
        )
        for t in teams
    }


def used_amounts() -> tuple[Round, Round]:
    """A ledger line's amount and quantity on the usage basis: times its activity, rounded to
    6 places (half up, as the engine's daily summary rounds)."""
    return (
        Round(F("amount") * F("activity"), 6, output_field=DecimalField()),
        Round(F("quantity") * F("activity"), 6, output_field=DecimalField()),
    )


def basis_sums(basis: str) -> dict[str, Sum]:
    """Sums of ledger lines as ``basis`` charges them, for ``basis_rows``: the allocation
    basis charges a line's amount; the usage basis a team's GPU line times its activity,
    rounded to 6 places as the engine's daily summary is, and the rest as waste."""
    flags = {
        "unpriced_quantity": Sum(
            Case(
                When(unit="gpu_hour", unit_price__isnull=True, then=F("quantity")),
                default=Value(Decimal(0)),
                output_field=DecimalField(),
            )
        ),
        "assumed_quantity": Sum(
            Case(
                When(activity_assumed=True, then=F("quantity")),
                default=Value(Decimal(0)),
                output_field=DecimalField(),
            )
        ),
    }
    if basis == Basis.ALLOCATION:
        return {"basis_amount": Sum("amount"), "basis_quantity": Sum("quantity"), **flags}
    used, used_quantity = used_amounts()
    return {
        **flags,
        "basis_amount": Sum(used),
        "basis_quantity": Sum(used_quantity),
        "waste_amount": Sum(F("amount") - used, output_field=DecimalField()),
        "waste_quantity": Sum(F("quantity") - used_quantity, output_field=DecimalField()),
    }


def basis_rows(rows: Any) -> list[dict[str, Any]]:
    """Rows grouped with ``basis_sums`` as ``amount`` and ``quantity``, the usage basis's
    waste as rows of their own (component ``waste``): the shape of the daily summary."""
    out = []
    for r in rows:
        waste, waste_quantity = r.pop("waste_amount", None), r.pop("waste_quantity", None)
        r["amount"], r["quantity"] = r.pop("basis_amount"), r.pop("basis_quantity")
        out.append(r)
        if waste:
            out.append({**r, "component": Component.WASTE, "amount": waste,
                        "quantity": waste_quantity, "unpriced_quantity": 0,
                        "assumed_quantity": 0})  # fmt: skip
    return out


def _share_idle(query, cells, team_keys, idle_by_node, alloc_by_node, rows, i, steps) -> None:  # type: ignore[no-untyped-def]
    """Spread idle cost (idle GPU time and the idle part of storage and energy) over the team
    rows by their share of all cost allocated to teams (GPU, waste, storage, energy: on the
    usage basis GPU + waste is the allocation), fleet-wide or per node: one rule, so on a
    one-node fleet both give the same shares."""
    idle_total = sum(idle_by_node.values(), Decimal(0))
    if not idle_total or not team_keys:
        return
    if query.share_idle_by == "fleet":
        base = {k: sum((cells[k][f] for f in ALLOCATED_COSTS), Decimal(0)) for k in team_keys}
        whole = sum(base.values(), Decimal(0))
        if whole:
            for k in team_keys:
                cells[k]["idle_cost"] += idle_total * base[k] / whole
        return
    per_node_key: dict[Any, dict[tuple[Any, ...], Decimal]] = defaultdict(
        lambda: defaultdict(Decimal)
    )
    for r in rows:
        if (
            r["bucket"] == Bucket.TEAM
            and _step_of(query, r.get("step_start", query.start), steps) == i
        ):
            per_node_key[r["node_id"]][_key(r, query.aggregate)] += r["amount"]
    for node_id, idle in idle_by_node.items():
        node_alloc = alloc_by_node.get(node_id, Decimal(0))
        if not node_alloc:
            continue  # a node nobody used keeps its idle unshared
        for key, amount in per_node_key[node_id].items():
            cells[key]["idle_cost"] += idle * amount / node_alloc
    shared = sum((cells[k]["idle_cost"] for k in team_keys), Decimal(0))
    if shared < idle_total:
        cells[(Bucket.IDLE,)]["idle_cost"] = idle_total - shared
        cells[(Bucket.IDLE,)].setdefault("gpu_hours", Decimal(0))


def job_seconds_rows(
    jobs: QuerySet[RenderJob], *, dims: list[str], step_expr: Any
) -> tuple[QuerySet[Any], QuerySet[Any]]:
    """(generated, usable) seconds of ``jobs`` grouped by ``step_start`` and ``dims``. A clip's
    seconds count once: only its first usable attempt is counted as usable."""
    seconds = ExpressionWrapper(Cast("frames", FloatField()) / F("fps"), output_field=FloatField())
    earlier_usable = RenderJob.objects.filter(
        clip_id=OuterRef("clip_id"), usable=True, finished_at__lt=OuterRef("finished_at")
    )
    jobs = jobs.filter(fps__gt=0, frames__isnull=False)
    generated = (
        jobs.filter(status=JobStatus.SUCCEEDED)
        .annotate(step_start=step_expr)
        .values("step_start", *dims)
        .annotate(total=Sum(seconds))
        .order_by()
    )
    usable = (
        jobs.filter(usable=True)
        .filter(Q(clip__isnull=True) | ~Exists(earlier_usable))
        .annotate(step_start=step_expr)
        .values("step_start", *dims)
        .annotate(total=Sum(seconds))
        .order_by()
    )
    return generated, usable


def output_seconds(
    *, query: AllocationQuery, teams: QuerySet[Team]
) -> dict[tuple[Any, ...], tuple[float, float]]:
    """(generated, usable) seconds per key of the query's job aggregates over its whole
    window, unrounded (the report rounds them to the millisecond)."""
    window = AllocationQuery(query.start, query.end, query.aggregate, "window", query.idle,
                             query.basis, query.share_idle_by)  # fmt: skip
    return _job_seconds(window, _steps(window), teams, report_parts(window, summaries=True))[0]


def _job_seconds(
    query: AllocationQuery,
    steps: list[tuple[datetime, datetime]],
    teams: QuerySet[Team],
    parts: list[Part],
) -> list[dict[tuple[Any, ...], tuple[float, float]]]:
    """(generated, usable) seconds per row key and step: whole days the report reads from a
    summary from the daily output summary (by team and job dimension), the rest from jobs."""
    out: list[dict[tuple[Any, ...], tuple[float, float]]] = [{} for _ in steps]
    if any(a not in JOB_DIMENSIONS for a in query.aggregate):
        return out
    dims = [JOB_DIMENSIONS[a] for a in query.aggregate]
    sums: list[dict[tuple[Any, ...], list[float]]] = [
        defaultdict(lambda: [0.0, 0.0]) for _ in steps
    ]
    for part in parts:
        if part.source != "lines":
            fields = [DIMENSION_AGGREGATES[a] for a in query.aggregate]
            for r in (
                OutputDay.objects.filter(team__in=teams, day__gte=part.start, day__lt=part.end)
                .values("day", *fields)
                .annotate(g=Sum("generated_seconds"), u=Sum("usable_seconds"))
                .order_by()
            ):
                cell = sums[_step_of(query, r["day"], steps)][tuple(r[f] for f in fields)]
                cell[0] += r["g"] or 0.0
                cell[1] += r["u"] or 0.0
            continue
        jobs = RenderJob.objects.filter(
            team__in=teams, finished_at__gte=part.start, finished_at__lt=part.end
        )
        if "job" in query.aggregate:
            jobs = jobs.annotate(job_key=Concat(F("source"), Value(":"), F("external_id")))
        if "resolution" in query.aggregate:
            jobs = jobs.annotate(resolution_=resolution_of())
        step_expr = (
            TruncHour("finished_at") if query.step == "1h" else TruncDay("finished_at", tzinfo=UTC)
        )
        generated, usable = job_seconds_rows(jobs, dims=dims, step_expr=step_expr)
        for column, rows in ((0, generated), (1, usable)):
            for r in rows:
                i = _step_of(query, r["step_start"], steps)
                sums[i][tuple(r[d] for d in dims)][column] += r["total"] or 0.0
    for i, per_key in enumerate(sums):
        out[i] = {k: (v[0], v[1]) for k, v in per_key.items()}
    return out
