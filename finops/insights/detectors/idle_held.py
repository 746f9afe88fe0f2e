"""Idle-held GPUs, per GPU: memory in use at or above 10% of VRAM while SM activity stays
at zero for at least 30 minutes in a row (``idle_held_mem_frac``, ``idle_held_minutes``).
A notebook left open, a hung job, a process that outlived its job: to a time-based view
the GPU is allocated and even in use.

Two cases, each run of minutes priced at the GPU's rate (its ledger cost per paid hour in
the window) for the held time:

* **stalled job**: a job held the GPU through the run; its team pays for nothing. The
  finding is the team's.
* **orphan**: no job held it; idle cost that scaling down cannot release until the
  process dies. The finding is fleet-wide.

Fix: end the stalled job (and look at why it hung), or kill the orphan process; the
recommendation names the node, the GPU, the time range and whether a job held it."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import numpy as np
import pandas as pd
from django.db.models import Q

from finops.accounts.models import Team
from finops.insights.context import Context
from finops.insights.detectors import Draft, dec, fix_action, money, severity_of
from finops.jobs.models import GpuAllocation
from finops.telemetry.models import GpuMinute

ORPHAN = "orphan"
STALLED = "stalled_job"


def idle_held_minutes(ctx: Context, gpu_ids: list[int] | None = None) -> pd.DataFrame:
    """The window's idle-held minutes (memory at or above the threshold, no SM activity):
    gpu_id, ts (epoch seconds), covered_s, job_id and team_id of a job holding it (NaN
    when none). Only those minutes are read (a filter on the minute table)."""
    t = ctx.thresholds
    minutes = GpuMinute.objects.filter(
        ts__gte=ctx.start, ts__lt=ctx.end, gpu__mig_parent__isnull=True, covered_s__gt=0,
        busy_s=0, mem_frac_mean__gte=t["idle_held_mem_frac"],
    )  # fmt: skip
    if gpu_ids is not None:
        minutes = minutes.filter(gpu_id__in=gpu_ids)
    frame = pd.DataFrame.from_records(
        list(minutes.values_list("gpu_id", "ts", "covered_s").order_by("gpu_id", "ts")),
        columns=["gpu_id", "ts", "covered_s"],
    )
    frame["job_id"] = np.nan
    frame["team_id"] = np.nan
    if not len(frame):
        frame["ts"] = frame["ts"].astype("int64")
        return frame
    frame["ts"] = frame["ts"].map(lambda ts: int(ts.timestamp())).astype("int64")
    allocations = GpuAllocation.objects.filter(
        gpu_id__in=frame["gpu_id"].unique().tolist(), start__lt=ctx.end
    ).filter(Q(end__isnull=True) | Q(end__gt=ctx.start))
    far = int(ctx.end.timestamp()) + 60
    for gpu_id, job_id, team_id, a, b in allocations.values_list(
        "gpu_id", "job_id", "job__team_id", "start", "end"
    ):
        lo, hi = int(a.timestamp()), int(b.timestamp()) if b is not None else far
        inside = (frame["gpu_id"] == gpu_id) & (frame["ts"] >= lo) & (frame["ts"] + 60 <= hi)
        frame.loc[inside, "job_id"] = job_id
        frame.loc[inside, "team_id"] = team_id
    return frame


def idle_held_runs(minutes: pd.DataFrame, min_minutes: float) -> pd.DataFrame:
    """Runs of consecutive idle-held minutes on one GPU with the same holder (a job or
    none) at least ``min_minutes`` long: gpu_id, job_id, team_id, start, end (epoch s),
    minutes, covered_s."""
    if not len(minutes):
        return pd.DataFrame(columns=["gpu_id", "job_id", "team_id", "start", "end", "minutes",
                                     "covered_s"])  # fmt: skip
    m = minutes.sort_values(["gpu_id", "ts"]).reset_index(drop=True)
    holder = m["job_id"].fillna(-1)
    new = (
        m["gpu_id"].ne(m["gpu_id"].shift())
        | m["ts"].ne(m["ts"].shift() + 60)
        | holder.ne(holder.shift())
    )
    m["run"] = new.cumsum()
    runs = m.groupby("run").agg(
        gpu_id=("gpu_id", "first"), job_id=("job_id", "first"), team_id=("team_id", "first"),
        start=("ts", "min"), last=("ts", "max"), minutes=("ts", "count"),
        covered_s=("covered_s", "sum"),
    )  # fmt: skip
    runs["end"] = runs["last"] + 60
    return runs[runs["minutes"] >= min_minutes].drop(columns="last").reset_index(drop=True)


def _at(epoch: int) -> str:
    return datetime.fromtimestamp(int(epoch), tz=UTC).strftime("%Y-%m-%d %H:%M")


def detect(ctx: Context) -> list[Draft]:
    t = ctx.thresholds
    runs = idle_held_runs(idle_held_minutes(ctx), t["idle_held_minutes"])
    if not len(runs):
        return []
    rate = ctx.gpu_hour_price()
    cost = ctx.cost_of_gpus(runs["gpu_id"].unique())
    gpus = ctx.gpus.set_index("gpu_id")
    runs["case"] = np.where(runs["job_id"].notna(), STALLED, ORPHAN)
    slugs = dict(Team.objects.values_list("id", "slug"))
    drafts = []
    for (gpu_id, case, team_id), group in runs.groupby(
        ["gpu_id", "case", runs["team_id"].fillna(-1)], sort=True
    ):
        gpu = gpus.loc[gpu_id]
        hourly = rate.get(gpu_id)
        held_s = float(group["covered_s"].sum())
        waste = hourly * dec(held_s / 3600) if hourly is not None else Decimal(0)
        team = int(team_id) if team_id != -1 else None
        spans = [
            {"start": _at(r.start), "end": _at(r.end), "minutes": int(r.minutes),
             "job_id": int(r.job_id) if r.job_id == r.job_id else None}
            for r in group.itertuples()
        ]  # fmt: skip
        longest = int(group["minutes"].max())
        first = spans[0]
        where = f"GPU {gpu['uuid']} on {gpu['hostname']}"
        when = f"{first['start']} to {first['end']} UTC" + (
            f" (and {len(spans) - 1} more runs)" if len(spans) > 1 else ""
        )
        if case == STALLED:
            jobs = sorted({s["job_id"] for s in spans if s["job_id"] is not None})
            what = (
                f"{where} held memory and computed nothing for {held_s / 60:,.0f} minutes "
                f"({when}) while job {', '.join(map(str, jobs))} of {slugs.get(team, team)} "
                "held it: a stalled job, paid for and producing nothing. End the job, look at "
                "why it hung (a dead data loader, a deadlock, a wait on a collective), and "
                "set a watchdog that kills a job idle with memory held this long."
            )
        else:
            what = (
                f"{where} held memory and computed nothing for {held_s / 60:,.0f} minutes "
                f"({when}) with no job holding it: an orphan process (a notebook left open, a "
                "process that outlived its job). Kill it; until it dies, scaling down cannot "
                "release this GPU."
            )
        if hourly is None:
            what += " No ledger cost is known for this GPU in the window, so it is unpriced."
        drafts.append(Draft(
            pattern="idle_held", scope_kind="gpu", scope_key=str(gpu["uuid"]), team_id=team,
            evidence={
                "case": case, "node": gpu["hostname"], "gpu_model": gpu["gpu_model"],
                "idle_held_s": round(held_s, 1), "runs": spans[:20], "run_count": len(spans),
                "longest_run_minutes": longest,
                "gpu_hour_price": str(money(hourly)) if hourly is not None else None,
                "idle_held_cost": str(money(waste)),
            },
            waste=waste, scope_cost=cost.get(gpu_id, Decimal(0)), recommendation=what,
            action=fix_action(
                kind="end_stalled_job" if case == STALLED else "kill_orphan",
                scope_cost=cost.get(gpu_id, Decimal(0)), saved=waste, usable_seconds=0.0,
                assumptions=["the GPU's rate applies to every idle-held minute",
                             "the held time repeats at this rate over the month"],
                node=gpu["hostname"], gpu=gpu["uuid"], held_by_job=case == STALLED,
                spans=spans[:20],
            ),
            thresholds={"idle_held_mem_frac": t["idle_held_mem_frac"],
                        "idle_held_minutes": t["idle_held_minutes"]},
            severity=severity_of(longest, 2 * t["idle_held_minutes"]),
            dedup_suffix=case if team is None else f"{case}:{slugs.get(team, team)}",
        ))  # fmt: skip
    return drafts


def idle_held_seconds(ctx: Context, gpu_ids: list[int]) -> dict[int, float]:
    """Per GPU, the seconds in runs long enough to count (for realized savings)."""
    runs = idle_held_runs(idle_held_minutes(ctx, gpu_ids), ctx.thresholds["idle_held_minutes"])
    return {int(k): float(v) for k, v in runs.groupby("gpu_id")["covered_s"].sum().items()}
