"""What the detectors read, loaded once per window as pandas frames: the fleet, GPU-hour
rollups, the ledger summed by GPU, node, team and job, and the jobs with their GPU time.
Detectors are vectorised over these frames.

Money is the allocation basis of the ledger (what was paid for the time held); a finding's
waste is a part of it and never more than its scope's cost in the window.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import pandas as pd
from django.conf import settings
from django.db.models import (
    Count,
    DecimalField,
    DurationField,
    ExpressionWrapper,
    F,
    Min,
    Q,
    QuerySet,
    Sum,
    Value,
)
from django.db.models.functions import Coalesce, Greatest, Least

from finops.costing.models import Basis, Bucket, LedgerDay, LedgerEntry, LedgerTeamDay
from finops.costing.selectors import day_parts
from finops.fleet.models import Gpu
from finops.jobs.models import JobStatus, RenderJob
from finops.ops.frames import query_frame
from finops.telemetry.models import GpuHour

FAILED = (JobStatus.FAILED, JobStatus.OOM, JobStatus.CANCELLED)


def _frame(rows: Any, columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame.from_records(list(rows), columns=columns)


def _sum_frame(rows: list[tuple[Any, ...]], keys: list[str], sums: list[str]) -> pd.DataFrame:
    """Rows of several parts of a window, summed per key (Decimal sums stay exact)."""
    frame = _frame(rows, [*keys, *sums])
    if not len(frame):
        return frame
    return frame.groupby(keys, sort=True)[sums].sum().reset_index()


@dataclass
class Context:
    start: datetime
    end: datetime
    gpus: pd.DataFrame
    hours: pd.DataFrame
    ledger_gpu: pd.DataFrame  # gpu_id, node_id, bucket, component, amount
    ledger_node: pd.DataFrame  # node_id, bucket, component, amount (all lines of the node)
    ledger_team: pd.DataFrame  # team_id, component, regeneration, amount
    jobs: pd.DataFrame
    currency: str = "USD"
    thresholds: dict[str, float] = field(default_factory=dict)

    @property
    def window_s(self) -> float:
        return (self.end - self.start).total_seconds()

    @property
    def month_factor(self) -> Decimal:
        """Money in the window -> money per 30 days."""
        return Decimal(30 * 86400) / Decimal(repr(self.window_s))

    @classmethod
    def load(cls, *, start: datetime, end: datetime) -> Context:
        gpus = _frame(
            Gpu.objects.filter(mig_parent__isnull=True).values_list(
                "id", "uuid", "node_id", "node__hostname", "node__interconnect", "model__name",
                "vram_bytes", "model__vram_bytes", "model__tdp_w", "node__site__provider",
                "node__instance_type", "node__pricing_model",
            ),
            ["gpu_id", "uuid", "node_id", "hostname", "interconnect", "gpu_model", "vram_bytes",
             "model_vram_bytes", "tdp_w", "provider", "instance_type", "pricing_model"],
        )  # fmt: skip
        if len(gpus):
            gpus["vram_bytes"] = gpus["vram_bytes"].fillna(gpus["model_vram_bytes"])
        hours = _frame(
            GpuHour.objects.filter(ts__gte=start, ts__lt=end, gpu__mig_parent__isnull=True)
            .values_list("gpu_id", "ts", "covered_s", "busy_s", "util_mean_pct",
                         "mem_pressure_s", "throttle_power_cap_s", "throttle_hw_slowdown_s",
                         "throttle_sw_thermal_s", "throttle_hw_thermal_s",
                         "throttle_power_brake_s", "clock_ratio_mean", "clock_s",
                         "power_mean_w", "power_s", "mem_frac_max"),
            ["gpu_id", "ts", "covered_s", "busy_s", "util_mean_pct", "mem_pressure_s",
             "power_cap_s", "hw_slowdown_s", "sw_thermal_s", "hw_thermal_s", "power_brake_s",
             "clock_ratio_mean", "clock_s", "power_mean_w", "power_s", "mem_frac_max"],
        )  # fmt: skip
        numeric = [c for c in hours.columns if c not in ("gpu_id", "ts")]
        hours[numeric] = hours[numeric].apply(pd.to_numeric, errors="coerce")
        lines = LedgerEntry.objects.filter(window_start__gte=start, window_start__lt=end)
        ledger_gpu = _frame(
            lines.filter(gpu__isnull=False)
            .values("gpu_id", "node_id", "bucket", "component")
            .annotate(total=Sum("amount"), hours=Sum("quantity"))
            .values_list("gpu_id", "node_id", "bucket", "component", "total", "hours")
            .order_by(),
            ["gpu_id", "node_id", "bucket", "component", "amount", "quantity"],
        )
        # By node and by team: whole days from the daily summary, the hours around them
        # from the lines (the same sums; tests/costing/test_ledger_summaries.py).
        node_rows: list[tuple[Any, ...]] = []
        team_rows: list[tuple[Any, ...]] = []
        for part in day_parts(start, end, "day"):
            if part.source == "lines":
                by_node: QuerySet[Any] = LedgerEntry.objects.filter(
                    window_start__gte=part.start, window_start__lt=part.end
                )
                by_team, regen = by_node, Q(job__usable=False) | Q(job__status__in=FAILED)
            else:
                days = {"day__gte": part.start, "day__lt": part.end, "basis": Basis.ALLOCATION}
                by_node = LedgerDay.objects.filter(**days)
                by_team, regen = LedgerTeamDay.objects.filter(**days), Q(regeneration=True)
            node_rows += (
                by_node.values("node_id", "bucket", "component")
                .annotate(total=Sum("amount"))
                .values_list("node_id", "bucket", "component", "total")
                .order_by()
            )
            team_rows += (
                by_team.filter(bucket=Bucket.TEAM)
                .values("team_id", "component")
                .annotate(total=Sum("amount"), regen=Coalesce(
                    Sum("amount", filter=regen), Value(Decimal(0)), output_field=DecimalField()))
                .values_list("team_id", "component", "total", "regen")
                .order_by()
            )  # fmt: skip
        ledger_node = _sum_frame(node_rows, ["node_id", "bucket", "component"], ["amount"])
        ledger_team = _sum_frame(team_rows, ["team_id", "component"], ["amount", "regeneration"])
        job_cost = dict(
            lines.filter(job__isnull=False)
            .values("job_id")
            .annotate(total=Sum("amount"))
            .values_list("job_id", "total")
            .order_by()
        )
        jobs = cls._jobs(start, end, job_cost)
        return cls(start=start, end=end, gpus=gpus, hours=hours, ledger_gpu=ledger_gpu,
                   ledger_node=ledger_node, ledger_team=ledger_team, jobs=jobs,
                   thresholds=dict(settings.INSIGHTS_THRESHOLDS))  # fmt: skip

    @staticmethod
    def _jobs(start: datetime, end: datetime, job_cost: dict[int, Decimal]) -> pd.DataFrame:
        """Jobs that held a GPU in the window (or finished in it), with their GPU count,
        GPU-seconds inside the window, first GPU, resolution ("WxH"), and ledger cost in the
        window."""
        held = ExpressionWrapper(
            Least(Coalesce(F("allocations__end"), Value(end)), Value(end))
            - Greatest(F("allocations__start"), Value(start)),
            output_field=DurationField(),
        )
        overlapping = Q(allocations__start__lt=end) & (
            Q(allocations__end__isnull=True) | Q(allocations__end__gt=start)
        )
        rows = (
            RenderJob.objects.filter(overlapping | Q(finished_at__gte=start, finished_at__lt=end))
            .annotate(
                gpu_count=Count("allocations__gpu", distinct=True),
                gpu_seconds_d=Sum(held, filter=overlapping),
                first_gpu=Min("allocations__gpu_id"),
            )
            .values_list("id", "team_id", "project", "model_name", "model_version", "status",
                         "usable", "clip_id", "frames", "fps", "steps", "width", "height",
                         "peak_vram_bytes", "step_time_s", "finished_at", "started_at",
                         "gpu_count", "gpu_seconds_d", "first_gpu", "source", "external_id")
            .order_by()
        )  # fmt: skip
        jobs = query_frame(
            rows,
            ["job_id", "team_id", "project", "model_name", "model_version", "status", "usable",
             "clip_id", "frames", "fps", "steps", "width", "height", "peak_vram_bytes",
             "step_time_s", "finished_at", "started_at", "gpu_count", "gpu_seconds_d",
             "first_gpu", "source", "external_id"],
            text=["project", "model_name", "model_version", "status", "source", "external_id"],
            times=["finished_at", "started_at"], flags=["usable"], durations=["gpu_seconds_d"],
        )  # fmt: skip
        if not len(jobs):
            jobs["gpu_seconds"] = []
            jobs["cost"] = []
            jobs["usable_seconds"] = []
            jobs["resolution"] = []
            return jobs
        for column in ("frames", "fps", "steps", "width", "height", "peak_vram_bytes",
                       "step_time_s", "gpu_count", "first_gpu"):  # fmt: skip
            jobs[column] = pd.to_numeric(jobs[column], errors="coerce")
        jobs["gpu_seconds"] = jobs["gpu_seconds_d"].fillna(0.0).clip(lower=0.0)
        jobs["cost"] = jobs["job_id"].map(job_cost).fillna(Decimal(0))
        jobs["resolution"] = (jobs["width"].fillna(0).astype(int).astype(str) + "x"
                              + jobs["height"].fillna(0).astype(int).astype(str))  # fmt: skip
        jobs["seconds"] = (jobs["frames"].astype(float) / jobs["fps"].astype(float)).fillna(0.0)
        # A clip's seconds count once: its first usable attempt finished in the window.
        finished = (
            jobs["finished_at"].notna()
            & (jobs["finished_at"] >= start)
            & (jobs["finished_at"] < end)
        )
        usable = jobs[finished & (jobs["usable"] == True)].sort_values("finished_at")  # noqa: E712
        keyed = usable["clip_id"].fillna(-usable["job_id"])
        first = usable[~keyed.duplicated()]
        jobs["usable_seconds"] = 0.0
        jobs.loc[first.index, "usable_seconds"] = first["seconds"]
        return jobs

    # --- money by scope -------------------------------------------------------------------

    def cost_of_gpus(self, gpu_ids: Any) -> pd.Series:
        """Ledger cost per GPU (every bucket and component of its lines)."""
        frame = self.ledger_gpu[self.ledger_gpu["gpu_id"].isin(list(gpu_ids))]
        return frame.groupby("gpu_id")["amount"].sum()

    def gpu_hour_price(self) -> pd.Series:
        """Per GPU: its ledger cost per paid hour in the window (GPU time, held or idle)."""
        lines = self.ledger_gpu[self.ledger_gpu["component"].isin(["gpu", "idle"])]
        grouped = lines.groupby("gpu_id")
        hours = grouped["quantity"].sum()
        hours = hours[hours > 0]
        return grouped["amount"].sum().reindex(hours.index) / hours

    def busy_cost_of_gpus(self) -> pd.Series:
        """Per GPU: the cost of the time jobs held it (team GPU lines) plus unallocated
        busy time: what throttling slows down."""
        frame = self.ledger_gpu[self.ledger_gpu["component"].eq("gpu")]
        return frame.groupby("gpu_id")["amount"].sum()
