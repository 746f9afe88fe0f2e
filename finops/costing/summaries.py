"""The daily summaries the ledger keeps beside its lines, written by every recompute of a
day in the same transaction (after the day's lines):

* ``LedgerDimensionDay``: the lines summed by basis, bucket, the job's team, project,
  model, model version and resolution, component and regeneration, with the expressions
  the allocation report uses on the lines (``basis_sums``, ``used_amounts``), so a report
  by job dimension over whole days reads this instead;
* ``OutputDay``: attempts finished and seconds generated and usable per team and job
  dimension, by the day the attempt finished (a few rows: written as objects);
* ``ClipDay``: each clip's cost that day and the attempts that started that day.

(``LedgerDay`` and ``LedgerTeamDay`` are summed from the day's columns as they are stored:
``finops.costing.ledger_store``.)

On PostgreSQL the dimension and clip summaries are ``INSERT … SELECT`` of the grouped
queries, so no row passes through Python; SQLite (the single-user demo) runs the same
queries and inserts their rows.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import connection, models
from django.db.models import Count, DecimalField, F, Max, Min, Q, QuerySet, Sum, Value
from django.db.models.functions import Cast, TruncDay

from finops.costing.funnel import funnel_day_replace
from finops.costing.models import (
    Basis,
    Bucket,
    ClipDay,
    Component,
    LedgerDimensionDay,
    LedgerEntry,
    OutputDay,
)
from finops.costing.selectors import (
    attempts_started,
    basis_sums,
    job_seconds_rows,
    regeneration_flag,
    resolution_of,
    used_amounts,
)
from finops.jobs.models import RenderJob

DAY = timedelta(days=1)


def _insert(
    model: type[models.Model], day: datetime, rows: QuerySet[Any], fields: list[str]
) -> None:
    """Rows of ``rows`` (annotated ``s_<field>`` for each of ``fields``) as ``model`` rows of
    ``day``."""
    names = [f"s_{f}" for f in fields]
    if connection.vendor == "postgresql":
        query = rows.values_list(*names)
        sql, params = query.query.get_compiler(using=query.db).as_sql()
        columns = [model._meta.get_field(f).column for f in fields]
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {model._meta.db_table} (day, {', '.join(columns)}) "  # noqa: S608
                f"SELECT %s, {', '.join(f'q.{n}' for n in names)} FROM ({sql}) q",
                [day, *params],
            )
        return
    model.objects.bulk_create(
        [model(day=day, **{model._meta.get_field(f).attname: r[n]
                           for f, n in zip(fields, names, strict=True)})
         for r in rows.values(*names)],
        batch_size=2000,
    )  # fmt: skip


DIMENSIONS = {
    "team": F("team_id"),
    "project": F("job__project"),
    "model_name": F("job__model_name"),
    "model_version": F("job__model_version"),
}


def _dimension_day(day: datetime) -> None:
    """The day's lines by job dimension on both bases, from one grouped pass over the lines:
    the allocation basis's amounts, the usage basis's used amounts (``used_amounts``, as
    the reports charge them) and, for a team's GPU lines, the waste between the two."""
    lines = LedgerEntry.objects.filter(window_start__gte=day, window_start__lt=day + DAY).annotate(
        s_bucket=F("bucket"),
        **{f"s_{k}": v for k, v in DIMENSIONS.items()},
        s_resolution=resolution_of("job__"),
        s_component=F("component"),
        s_regeneration=regeneration_flag(),
    )
    keys = ["bucket", *DIMENSIONS, "resolution", "component", "regeneration"]
    used, used_quantity = used_amounts()
    flags = basis_sums(Basis.ALLOCATION)
    sums = {
        "g_amount": Sum("amount"),
        "g_quantity": Sum("quantity"),
        "g_used": Sum(used),
        "g_used_quantity": Sum(used_quantity),
        "g_unpriced": flags["unpriced_quantity"],
        "g_assumed": flags["assumed_quantity"],
    }
    grouped = lines.values(*[f"s_{k}" for k in keys]).annotate(**sums).order_by()
    table = LedgerDimensionDay._meta
    if connection.vendor == "postgresql":
        query = grouped.values_list(*[f"s_{k}" for k in keys], *sums)
        sql, params = query.query.get_compiler(using=query.db).as_sql()
        columns = ", ".join(table.get_field(k).column for k in keys)
        picked = ", ".join(f"g.s_{k}" for k in keys)
        as_waste = picked.replace("g.s_component", "'waste'")
        with connection.cursor() as cursor:
            cursor.execute(
                f"WITH g AS ({sql}) INSERT INTO {table.db_table} (day, basis, {columns}, "  # noqa: S608
                "quantity, amount, unpriced_quantity, assumed_quantity) "
                f"SELECT %s, 'allocation', {picked}, g.g_quantity, g.g_amount, g.g_unpriced, "
                f"g.g_assumed FROM g UNION ALL SELECT %s, 'usage', {picked}, g.g_used_quantity, "
                f"g.g_used, g.g_unpriced, g.g_assumed FROM g UNION ALL SELECT %s, 'usage', "
                f"{as_waste}, g.g_quantity - g.g_used_quantity, g.g_amount - g.g_used, 0, 0 "
                "FROM g WHERE g.s_bucket = 'team' AND g.s_component = 'gpu' "
                "AND g.g_amount - g.g_used > 0",
                [*params, day, day, day],
            )
        return
    made = []
    for r in grouped:
        dims = {table.get_field(k).attname: r[f"s_{k}"] for k in keys}
        made += [
            LedgerDimensionDay(day=day, basis=Basis.ALLOCATION, **dims, quantity=r["g_quantity"],
                               amount=r["g_amount"], unpriced_quantity=r["g_unpriced"],
                               assumed_quantity=r["g_assumed"]),
            LedgerDimensionDay(day=day, basis=Basis.USAGE, **dims, quantity=r["g_used_quantity"],
                               amount=r["g_used"], unpriced_quantity=r["g_unpriced"],
                               assumed_quantity=r["g_assumed"]),
        ]  # fmt: skip
        waste = r["g_amount"] - r["g_used"]
        if r["s_bucket"] == Bucket.TEAM and r["s_component"] == Component.GPU and waste > 0:
            made.append(LedgerDimensionDay(
                day=day, basis=Basis.USAGE, **{**dims, "component": Component.WASTE},
                quantity=r["g_quantity"] - r["g_used_quantity"], amount=waste,
            ))  # fmt: skip
    LedgerDimensionDay.objects.bulk_create(made, batch_size=2000)


def _output_day(day: datetime) -> None:
    """Attempts finished, seconds generated and usable per team and job dimension."""
    dims = ["team_id", "project", "model_name", "model_version", "resolution_"]
    jobs = RenderJob.objects.filter(finished_at__gte=day, finished_at__lt=day + DAY).annotate(
        resolution_=resolution_of()
    )
    step = TruncDay("finished_at", tzinfo=UTC)
    generated, usable = job_seconds_rows(jobs, dims=dims, step_expr=step)
    attempts = jobs.values(*dims).annotate(total=Count("id")).order_by()
    out: dict[tuple[Any, ...], list[float]] = defaultdict(lambda: [0, 0.0, 0.0])
    for column, rows in ((0, attempts), (1, generated), (2, usable)):
        for r in rows:
            out[tuple(r[d] for d in dims)][column] += r["total"] or 0
    OutputDay.objects.bulk_create(
        OutputDay(day=day, team_id=k[0], project=k[1], model_name=k[2], model_version=k[3],
                  resolution=k[4], attempts=int(a), generated_seconds=g, usable_seconds=u)
        for k, (a, g, u) in out.items()
    )  # fmt: skip


def _clip_day(day: datetime) -> None:
    """Each clip's cost that day (allocation basis), and its attempts that started that day."""
    fields = ["clip", "team", "cost", "attempts", "usable_attempts", "first_usable",
              "first_attempt_at", "last_attempt_at"]  # fmt: skip
    costs = (
        LedgerEntry.objects.filter(
            window_start__gte=day, window_start__lt=day + DAY, job__clip__isnull=False
        )
        .values(s_clip=F("job__clip_id"), s_team=F("job__team_id"))
        .annotate(
            s_cost=Sum("amount"),
            s_attempts=Value(0),
            s_usable_attempts=Value(0),
            s_first_usable=Value(0),
            s_first_attempt_at=Cast(Value(None), models.DateTimeField()),
            s_last_attempt_at=Cast(Value(None), models.DateTimeField()),
        )
        .order_by()
    )
    _insert(ClipDay, day, costs, fields)
    attempts = (
        attempts_started(day, day + DAY)
        .values(s_clip=F("clip_id"), s_team=F("team_id"))
        .annotate(
            s_cost=Cast(Value(None), DecimalField(max_digits=18, decimal_places=6)),
            s_attempts=Count("id"),
            s_usable_attempts=Count("id", filter=Q(usable=True)),
            s_first_usable=Count("id", filter=Q(first_usable=True)),
            s_first_attempt_at=Min("started_at"),
            s_last_attempt_at=Max("started_at"),
        )
        .order_by()
    )
    _insert(ClipDay, day, attempts, fields)


def day_summaries_replace(day: datetime) -> None:
    """Replace ``day``'s summaries by job dimension, output, clip and funnel stage (inside
    the recompute's transaction, after the day's lines are stored)."""
    for model in (LedgerDimensionDay, OutputDay, ClipDay):
        model.objects.filter(day=day).delete()
    _dimension_day(day)
    _output_day(day)
    _clip_day(day)
    funnel_day_replace(day)
