"""The fleet funnel in money: of every dollar of GPU time paid, how much a job held, how
much of that the SM was busy, how much the usage basis counts as used, and how much went
into attempts that came out usable. The stages nest by construction:

* **paid**: every GPU-time line of the ledger (components ``gpu`` and ``idle``, every
  bucket: teams' jobs, idle and unallocated time) — the allocation report's GPU and idle
  cost;
* **held**: the teams' GPU lines (a job held the GPU);
* **active**: of each GPU-hour's held time, the SM-busy seconds of the hour (the rollup's
  ``busy_s``) shared among the jobs that held it by their measured activity, never more
  than a job held; an hour without telemetry counts as busy, as the usage basis assumes;
* **used**: the usage basis — each line ``round(amount * activity, 6)``, so held - used is
  the usage basis's waste line;
* **on usable output**: the used part of the attempts judged usable.

Used ≤ active because a job's activity (utilisation-weighted) never exceeds its busy
seconds; the hour's busy seconds shared by activity give each job at least its used part.
Every ledger recompute keeps its day's stages per hour in ``FunnelHour``, and readers sum
those rows: a window costs its hours x teams x GPU models, not its jobs.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db import connection
from django.db.models import QuerySet, Sum

from finops.accounts.models import Team
from finops.costing.models import FunnelHour
from finops.fleet.models import GpuModel

STAGES = ("paid", "held", "active", "used", "usable")
DAY = timedelta(days=1)
_FIELDS = [f"{s}_{k}" for s in STAGES for k in ("amount", "hours")]

# One query for any range of hours: GPU-hour held and used quantities, the hour's busy
# share apportioned by activity, then every GPU-time line summed per team and GPU model.
_SQL = """
WITH gh AS (
    SELECT gpu_id, window_start, SUM(quantity * activity) AS u
    FROM costing_ledgerentry
    WHERE window_start >= %(start)s AND window_start < %(end)s
      AND bucket = 'team' AND component = 'gpu' AND gpu_id IS NOT NULL
    GROUP BY gpu_id, window_start
), lines AS (
    SELECT l.window_start, l.team_id, g.model_id, l.bucket, l.component, l.amount,
           l.quantity, l.activity,
           CASE
               WHEN l.bucket <> 'team' OR l.component <> 'gpu' THEN 0
               WHEN h.busy_s IS NULL THEN l.quantity
               WHEN gh.u IS NULL OR gh.u = 0 THEN 0
               WHEN h.busy_s / 3600.0 * l.quantity * l.activity / gh.u < l.quantity
                   THEN h.busy_s / 3600.0 * l.quantity * l.activity / gh.u
               ELSE l.quantity
           END AS active_q,
           CASE WHEN j.usable AND j.status = 'succeeded' THEN 1 ELSE 0 END AS usable
    FROM costing_ledgerentry l
    LEFT JOIN fleet_gpu g ON g.id = l.gpu_id
    LEFT JOIN gh ON gh.gpu_id = l.gpu_id AND gh.window_start = l.window_start
    LEFT JOIN telemetry_gpuhour h ON h.gpu_id = l.gpu_id AND h.ts = l.window_start
    LEFT JOIN jobs_renderjob j ON j.id = l.job_id
    WHERE l.window_start >= %(start)s AND l.window_start < %(end)s
      AND l.component IN ('gpu', 'idle')
)
SELECT window_start, team_id, model_id,
       SUM(amount), SUM(quantity),
       SUM(CASE WHEN bucket = 'team' AND component = 'gpu' THEN amount ELSE 0 END),
       SUM(CASE WHEN bucket = 'team' AND component = 'gpu' THEN quantity ELSE 0 END),
       SUM(CASE WHEN quantity > 0 THEN amount * active_q / quantity ELSE 0 END),
       SUM(active_q),
       SUM(CASE WHEN bucket = 'team' AND component = 'gpu' THEN ROUND(amount * activity, 6)
                ELSE 0 END),
       SUM(CASE WHEN bucket = 'team' AND component = 'gpu' THEN quantity * activity ELSE 0 END),
       SUM(CASE WHEN bucket = 'team' AND component = 'gpu' AND usable = 1
                THEN ROUND(amount * activity, 6) ELSE 0 END),
       SUM(CASE WHEN bucket = 'team' AND component = 'gpu' AND usable = 1
                THEN quantity * activity ELSE 0 END)
FROM lines
GROUP BY window_start, team_id, model_id
"""


def _money(value: Any) -> Decimal:
    return Decimal(str(value or 0)).quantize(Decimal("0.000001"))


def funnel_lines(start: datetime, end: datetime) -> list[dict[str, Any]]:
    """The stages of [start, end) from the ledger's lines, per hour, team (None: idle and
    unallocated time) and GPU model."""
    params = {"start": connection.ops.adapt_datetimefield_value(start),
              "end": connection.ops.adapt_datetimefield_value(end)}  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute(_SQL, params)
        rows = cursor.fetchall()
    return [{"hour": r[0], "team_id": r[1], "gpu_model_id": r[2],
             **{name: _money(v) for name, v in zip(_FIELDS, r[3:], strict=True)}}
            for r in rows]  # fmt: skip


def funnel_day_replace(day: datetime) -> None:
    """Replace ``day``'s hourly funnel rows (inside the recompute's transaction)."""
    FunnelHour.objects.filter(hour__gte=day, hour__lt=day + DAY).delete()
    rows = funnel_lines(day, day + DAY)
    if connection.vendor != "postgresql":  # SQLite returns the hour as text
        from django.utils.dateparse import parse_datetime

        for row in rows:
            if isinstance(row["hour"], str):
                row["hour"] = parse_datetime(row["hour"])
    FunnelHour.objects.bulk_create([FunnelHour(**row) for row in rows])


def funnel(
    *,
    teams: QuerySet[Team],
    all_teams: bool,
    start: datetime,
    end: datetime,
    by: str = "fleet",
    step: str = "window",
) -> dict[str, Any]:
    """The stages over [start, end) by ``fleet``, ``team`` or ``gpu_model``, from the hourly
    rows (the hours whose start lies in the window, as the ledger's lines are read). A
    caller who does not see every team gets only its teams' rows, where paid is the time
    its jobs held (idle and unallocated time are the fleet's, shown to those who see every
    team)."""
    if by not in ("fleet", "team", "gpu_model"):
        raise ValueError(f"by: {by[:20]!r}: use fleet, team or gpu_model")
    if step not in ("window", "1d"):
        raise ValueError(f"step: {step[:20]!r}: use window or 1d")
    if step == "1d":  # each UTC day of the window (its first and last may be part days)
        days, day = [], start.replace(hour=0, minute=0, second=0, microsecond=0)
        while day < end:
            a, b = max(start, day), min(end, day + DAY)
            body = funnel(teams=teams, all_teams=all_teams, start=a, end=b, by=by)
            days.append({"start": a.isoformat(), "end": b.isoformat(), "rows": body["rows"]})
            day += DAY
        whole = funnel(teams=teams, all_teams=all_teams, start=start, end=end, by=by)
        return {**whole, "step": "1d", "days": days}
    rows = list(
        FunnelHour.objects.filter(hour__gte=start, hour__lt=end)
        .values("team_id", "gpu_model_id")
        .annotate(**{f: Sum(f) for f in _FIELDS})
        .order_by()
    )
    visible = set(teams.values_list("id", flat=True))
    slugs = dict(Team.objects.values_list("id", "slug"))
    models = dict(GpuModel.objects.values_list("id", "name"))
    out: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for r in rows:
        if r["team_id"] is None and not all_teams:
            continue
        if r["team_id"] is not None and r["team_id"] not in visible:
            continue
        key = ("fleet" if by == "fleet" else slugs.get(r["team_id"], "(idle and unallocated)")
               if by == "team" else models.get(r["gpu_model_id"], "(no GPU model)"))  # fmt: skip
        for f in _FIELDS:
            out[key][f] += _money(r[f])
    result = []
    for key in sorted(out):
        cell = out[key]
        result.append({
            "name": key,
            "stages": [{"stage": s, "cost": str(cell[f"{s}_amount"].quantize(Decimal("0.01"))),
                        "gpu_hours": str(cell[f"{s}_hours"].quantize(Decimal("0.0001")))}
                       for s in STAGES],
            "yield": (round(float(cell["usable_amount"] / cell["paid_amount"]), 4)
                      if cell["paid_amount"] else None),
        })  # fmt: skip
    return {"window": {"start": start.isoformat(), "end": end.isoformat()}, "by": by,
            "currency": "USD", "rows": result}  # fmt: skip
