"""Realized savings: what a resolved finding's fix brought back, against what it projected.

A resolution compares the finding's scope over the window that raised it (``before``)
with a window of the same length after the change (``after``; at least
``INSIGHTS_SAVINGS_MIN_WINDOW_S``). The change is the end of the last window the detector
saw the condition in when the detector resolved it, or the hour after a person resolved it.

Each pattern has a measure (docs/insights.md "Realized savings"): a unit cost of the
scope's work and a volume. The saving is the unit cost's fall, at the before-window's
volume, so a team that simply rendered less saves nothing:

    realized in the window = (unit before - unit after) x volume before x price
    realized a month       = that x 30 days / window length

``price`` is 1 for measures already in money; the regeneration measure counts attempts and
prices them at the before-window's cost per attempt (a faster GPU elsewhere must not count
as fewer attempts). "Too early" until the after-window is complete; "not measurable" with
the reason when either window has too little volume or the scope is gone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pandas as pd
from django.conf import settings
from django.utils import timezone

from finops.insights.context import Context
from finops.insights.detectors import dec, money
from finops.insights.models import (
    Finding,
    FindingResolution,
    RealizationState,
    ResolvedBy,
)

UNIT = Decimal("0.000001")
MONTH = Decimal(30 * 86400)


@dataclass
class Figure:
    """One window's measure of a scope: ``unit`` per ``volume`` unit, ``cost`` behind it."""

    unit: Decimal | None
    volume: float
    cost: Decimal
    price: Decimal = Decimal(1)  # money per unit of ``unit`` (1 when ``unit`` is money)
    facts: dict[str, Any] = field(default_factory=dict)

    def as_json(self, volume_unit: str) -> dict[str, Any]:
        return {
            "unit": str(self.unit.quantize(UNIT)) if self.unit is not None else None,
            "volume": round(self.volume, 3),
            "volume_unit": volume_unit,
            "cost": str(money(self.cost)),
            **({"price": str(self.price.quantize(UNIT))} if self.price != 1 else {}),
            **self.facts,
        }


@dataclass(frozen=True)
class Measure:
    name: str  # what the unit is, as people read it
    volume_unit: str
    # (context, finding, the before figure's facts or None when measuring before) -> Figure
    figure: Callable[[Context, Finding, dict[str, Any] | None], Figure]


def _ratio(cost: Decimal, volume: float) -> Decimal | None:
    return cost / dec(volume) if volume > 0 else None


# --- jobs: cost per usable or rendered second --------------------------------------------


def _rendered(ctx: Context, jobs: pd.DataFrame) -> pd.Series:
    """Seconds of video each job rendered in the window (finished, succeeded; usable or
    not: the fixes these measure change how fast and how often a render finishes, not
    whether the output is good)."""
    done = jobs["finished_at"].notna() & (jobs["finished_at"] >= ctx.start)
    done &= (jobs["finished_at"] < ctx.end) & (jobs["status"] == "succeeded")
    return jobs["seconds"].where(done, 0.0)


def _jobs_figure(ctx: Context, jobs: pd.DataFrame, seconds: str, **facts: Any) -> Figure:
    cost = Decimal(sum(jobs["cost"], Decimal(0)))
    volume = float((_rendered(ctx, jobs) if seconds == "rendered" else jobs[seconds]).sum())
    return Figure(_ratio(cost, volume), volume, cost, facts={"jobs": len(jobs), **facts})


def _resolution_of(jobs: pd.DataFrame, resolution: str) -> pd.Series:
    return jobs["resolution"] == resolution


def _memory(ctx: Context, f: Finding, before: dict[str, Any] | None) -> Figure:
    """The workloads (model, resolution) that ran on the GPU model, wherever they run."""
    jobs = ctx.jobs
    if before is None:
        on = jobs["first_gpu"].map(ctx.gpus.set_index("gpu_id")["gpu_model"]) == f.scope_key
        workloads = sorted(
            {
                (m, r)
                for m, r in zip(jobs.loc[on, "model_name"], jobs.loc[on, "resolution"], strict=True)
            }
        )
    else:
        workloads = [tuple(w) for w in before["workloads"]]
    pairs = list(zip(jobs["model_name"], jobs["resolution"], strict=True))
    mine = jobs[[p in set(workloads) for p in pairs]] if len(jobs) else jobs
    gpu_models = sorted(
        set(mine["first_gpu"].map(ctx.gpus.set_index("gpu_id")["gpu_model"]).dropna())
    )
    return _jobs_figure(
        ctx, mine, "rendered", workloads=[list(w) for w in workloads], ran_on=gpu_models
    )


def _scaling(ctx: Context, f: Finding, before: dict[str, Any] | None) -> Figure:
    """The team's model at the resolution, on the GPU models its multi-GPU jobs ran on."""
    jobs, e = ctx.jobs, f.evidence
    scope = jobs[
        (jobs["team_id"] == f.team_id)
        & (jobs["model_name"] == e.get("model"))
        & _resolution_of(jobs, str(e.get("resolution")))
    ]
    model_of = scope["first_gpu"].map(ctx.gpus.set_index("gpu_id")["gpu_model"])
    if before is None:
        gpu_models = sorted(set(model_of[scope["gpu_count"] > 1].dropna()))
    else:
        gpu_models = list(before["gpu_models"])
    mine = scope[model_of.isin(gpu_models)]
    multi = int((mine["gpu_count"] > 1).sum())
    return _jobs_figure(ctx, mine, "rendered", gpu_models=gpu_models, multi_gpu_jobs=multi)


def _regression(ctx: Context, f: Finding, before: dict[str, Any] | None) -> Figure:
    """Before: the regressed version alone (what the projection priced); after: every
    version of the team's model at the resolution (a roll-back changes the version)."""
    jobs, e = ctx.jobs, f.evidence
    scope = jobs[
        (jobs["team_id"] == f.team_id)
        & (jobs["model_name"] == e.get("model"))
        & _resolution_of(jobs, str(e.get("resolution")))
    ]
    if before is None:
        scope = scope[scope["model_version"] == e.get("version")]
    versions = sorted(set(scope["model_version"].dropna()))
    return _jobs_figure(ctx, scope, "usable_seconds", versions=versions)


def _placement(ctx: Context, f: Finding, before: dict[str, Any] | None) -> Figure:
    jobs, e = ctx.jobs, f.evidence
    scope = jobs[
        (jobs["team_id"] == f.team_id)
        & (jobs["model_name"] == e.get("model"))
        & (jobs["model_version"] == e.get("version"))
        & _resolution_of(jobs, str(e.get("resolution")))
    ]
    return _jobs_figure(ctx, scope, "usable_seconds")


def _regeneration(ctx: Context, f: Finding, before: dict[str, Any] | None) -> Figure:
    """Attempts per usable second, priced at the before-window's cost per attempt."""
    jobs = ctx.jobs
    team = jobs[jobs["team_id"] == f.team_id]
    done = team["finished_at"].notna() & (team["finished_at"] >= ctx.start)
    finished = team[done & (team["finished_at"] < ctx.end)]
    attempts = len(finished)
    usable = float(finished["usable_seconds"].sum())
    teams = ctx.ledger_team
    cost = Decimal(sum(teams.loc[teams["team_id"] == f.team_id, "amount"], Decimal(0)))
    if before is None:
        price = cost / attempts if attempts else Decimal(0)
    else:
        price = Decimal(before["cost_per_attempt"])
    unit = Decimal(attempts) / dec(usable) if usable > 0 else None
    return Figure(
        unit,
        usable,
        cost,
        price=price,
        facts={"attempts": attempts, "cost_per_attempt": str(price.quantize(UNIT))},
    )


# --- telemetry: lost cost per GPU-hour ----------------------------------------------------


def _gpu_id(ctx: Context, uuid: str) -> int | None:
    hit = ctx.gpus.loc[ctx.gpus["uuid"] == uuid, "gpu_id"]
    return int(hit.iloc[0]) if len(hit) else None


def _throttle(reasons: list[str]) -> Callable[[Context, Finding, dict[str, Any] | None], Figure]:
    def figure(ctx: Context, f: Finding, before: dict[str, Any] | None) -> Figure:
        """Lost throughput per busy GPU-hour: (1 - SM clock ratio while busy) x busy cost."""
        from finops.insights.detectors.throttling import per_gpu

        gpu_id = _gpu_id(ctx, f.scope_key)
        rows = per_gpu(ctx, reasons) if gpu_id is not None else pd.DataFrame()
        if gpu_id is None or gpu_id not in rows.index:
            return Figure(None, 0.0, Decimal(0))
        r = rows.loc[gpu_id]
        lost = (1 - r["clock_ratio"]) if r["clock_ratio"] == r["clock_ratio"] else r["share"]
        lost = min(max(float(lost), 0.0), 1.0)
        busy_cost = ctx.busy_cost_of_gpus().get(gpu_id, Decimal(0))
        hours = float(r["busy_s"]) / 3600
        lost_cost = busy_cost * dec(lost)
        return Figure(
            _ratio(lost_cost, hours),
            hours,
            lost_cost,
            facts={
                "lost_throughput_share": round(lost, 4),
                "throttled_share_of_busy": round(float(r["share"]), 4),
                "busy_cost": str(money(busy_cost)),
            },
        )

    return figure


def _node_gpu_ids(ctx: Context, hostname: str) -> list[int]:
    return ctx.gpus.loc[ctx.gpus["hostname"] == hostname, "gpu_id"].astype(int).tolist()


def _held_hours(ctx: Context, gpu_ids: list[int]) -> tuple[float, Decimal, Decimal]:
    """GPU-hours jobs held the GPUs, their paid GPU cost (held and idle) and paid hours."""
    lines = ctx.ledger_gpu[ctx.ledger_gpu["gpu_id"].isin(gpu_ids)]
    gpu_time = lines[lines["component"].isin(["gpu", "idle"])]
    held = gpu_time[(gpu_time["bucket"] == "team") & (gpu_time["component"] == "gpu")]
    return (
        float(sum(held["quantity"], Decimal(0))),
        Decimal(sum(gpu_time["amount"], Decimal(0))),
        Decimal(sum(gpu_time["quantity"], Decimal(0))),
    )


def _io(ctx: Context, f: Finding, before: dict[str, Any] | None) -> Figure:
    """Stalled GPU time's cost per held GPU-hour on the node."""
    from finops.insights.detectors.io_starvation import _held_and_stalled

    gpu_ids = _node_gpu_ids(ctx, f.scope_key)
    held_h, paid, paid_h = _held_hours(ctx, gpu_ids)
    node_ids = set(ctx.gpus.loc[ctx.gpus["gpu_id"].isin(gpu_ids), "node_id"].astype(int))
    rows = {int(n): (float(h or 0), float(s or 0)) for n, h, s in _held_and_stalled(ctx)}
    held_s = sum(rows.get(n, (0.0, 0.0))[0] for n in node_ids)
    stalled_s = sum(rows.get(n, (0.0, 0.0))[1] for n in node_ids)
    share = stalled_s / held_s if held_s else 0.0
    rate = paid / paid_h if paid_h else Decimal(0)
    lost = rate * dec(share * held_h)
    return Figure(
        _ratio(lost, held_h),
        held_h,
        lost,
        facts={"stalled_share_of_held": round(share, 4), "gpu_hour_price": str(money(rate))},
    )


def _idle(ctx: Context, f: Finding, before: dict[str, Any] | None) -> Figure:
    """Paid GPU cost per held GPU-hour on the node (releasing idle GPUs lowers it)."""
    gpu_ids = _node_gpu_ids(ctx, f.scope_key)
    held_h, paid, paid_h = _held_hours(ctx, gpu_ids)
    return Figure(
        _ratio(paid, held_h),
        held_h,
        paid,
        facts={
            "paid_gpu_hours": round(float(paid_h), 3),
            "idle_share": round(1 - held_h / float(paid_h), 4) if paid_h else None,
        },
    )


def _idle_held(ctx: Context, f: Finding, before: dict[str, Any] | None) -> Figure:
    """Idle-held time's cost per paid GPU-hour of the GPU."""
    from finops.insights.detectors.idle_held import idle_held_seconds

    gpu_id = _gpu_id(ctx, f.scope_key)
    if gpu_id is None:
        return Figure(None, 0.0, Decimal(0))
    _, paid, paid_h = _held_hours(ctx, [gpu_id])
    seconds = idle_held_seconds(ctx, [gpu_id]).get(gpu_id, 0.0)
    rate = paid / paid_h if paid_h else Decimal(0)
    lost = rate * dec(seconds / 3600)
    return Figure(
        _ratio(lost, float(paid_h)),
        float(paid_h),
        lost,
        facts={"idle_held_s": round(seconds, 1), "gpu_hour_price": str(money(rate))},
    )


MEASURES: dict[str, Measure] = {
    "memory_underinvestment": Measure(
        "cost per rendered second of the workloads that ran on the GPU model", "s", _memory
    ),
    "premature_horizontal_scaling": Measure(
        "cost per rendered second on the GPU models the multi-GPU jobs ran on", "s", _scaling
    ),
    "model_cost_regression": Measure(
        "cost per usable second: the regressed version before, every version after",
        "s",
        _regression,
    ),
    "placement": Measure("cost per usable second of the workload", "s", _placement),
    "regeneration_waste": Measure(
        "attempts per usable second, at the before-window's cost per attempt", "s", _regeneration
    ),
    "thermal_throttling": Measure(
        "lost throughput per busy GPU-hour",
        "busy GPU-h",
        _throttle(["hw_slowdown_s", "sw_thermal_s", "hw_thermal_s"]),
    ),
    "power_capping": Measure(
        "lost throughput per busy GPU-hour",
        "busy GPU-h",
        _throttle(["power_cap_s", "power_brake_s"]),
    ),
    "io_starvation": Measure("stalled GPU time's cost per held GPU-hour", "held GPU-h", _io),
    "idle_capacity": Measure("paid GPU cost per held GPU-hour", "held GPU-h", _idle),
    "idle_held": Measure("idle-held cost per paid GPU-hour", "paid GPU-h", _idle_held),
}


# --- resolutions ---------------------------------------------------------------------------


def _hour_ceil(ts: datetime) -> datetime:
    floor = ts.replace(minute=0, second=0, microsecond=0)
    return floor if floor == ts else floor + timedelta(hours=1)


def projected_monthly(finding: Finding) -> Decimal:
    """What the finding's fix projects to save a month: its action's current cost less its
    projected cost (the memory fix moves all the work to a faster GPU, the regeneration fix
    reaches the target attempt rate), per month of the finding's window; its monthly waste
    where the action prices no fix."""
    try:
        saved = Decimal(finding.action["current_cost"]) - Decimal(finding.action["projected_cost"])
    except (KeyError, TypeError, ArithmeticError):
        return finding.est_monthly_waste
    seconds = (finding.window_end - finding.window_start).total_seconds()
    return money(max(saved, Decimal(0)) * MONTH / Decimal(repr(seconds)))


def resolution_record(
    *, finding: Finding, by: str, now: datetime, user: str = ""
) -> FindingResolution:
    """A resolution of ``finding`` at ``now``, ``too early`` until its after-window ends."""
    length = max(
        finding.window_end - finding.window_start,
        timedelta(seconds=settings.INSIGHTS_SAVINGS_MIN_WINDOW_S),
    )
    changed = finding.window_end if by == ResolvedBy.DETECTOR else _hour_ceil(now)
    changed = max(changed, finding.window_end)
    return FindingResolution.objects.create(
        finding=finding,
        resolved_at=now,
        resolved_by=by,
        resolved_by_user=user[:150],
        before_start=finding.window_end - length,
        before_end=finding.window_end,
        changed_at=changed,
        after_end=changed + length,
        projected_monthly=projected_monthly(finding),
        currency=finding.currency,
    )


def resolution_measure(
    resolution: FindingResolution,
    *,
    now: datetime | None = None,
    contexts: dict[tuple[datetime, datetime], Context] | None = None,
) -> FindingResolution:
    """Measure ``resolution`` if its after-window is complete (else it stays too early).
    ``contexts`` caches loaded windows across resolutions measured together."""
    now = now or timezone.now()
    if now < resolution.after_end:
        return resolution
    finding = resolution.finding
    cache = contexts if contexts is not None else {}
    length = resolution.after_end - resolution.changed_at
    before_window = (resolution.before_start, resolution.before_end)
    after_window = (resolution.changed_at, resolution.after_end)
    measure = MEASURES.get(finding.pattern)
    resolution.measured_at = now
    if measure is None:
        return _not_measurable(resolution, f"no measure is defined for {finding.pattern}")

    def load(window: tuple[datetime, datetime]) -> Context:
        if window not in cache:
            cache[window] = Context.load(start=window[0], end=window[1])
        return cache[window]

    before = measure.figure(load(before_window), finding, None)
    after = measure.figure(load(after_window), finding, before.facts)
    resolution.measure = measure.name
    resolution.before = {
        "start": before_window[0].isoformat(),
        "end": before_window[1].isoformat(),
        **before.as_json(measure.volume_unit),
    }
    resolution.after = {
        "start": after_window[0].isoformat(),
        "end": after_window[1].isoformat(),
        **after.as_json(measure.volume_unit),
    }
    floor = settings.INSIGHTS_SAVINGS_MIN_VOLUME_SHARE
    if before.unit is None or before.volume <= 0:
        return _not_measurable(
            resolution, f"the scope had no {measure.volume_unit} of volume before the change"
        )
    if after.unit is None or after.volume < floor * before.volume:
        gone = after.volume <= 0
        return _not_measurable(
            resolution,
            (
                f"the scope had no volume after the change (it left the fleet, was retired or "
                f"stopped running): {measure.name} cannot be compared"
            )
            if gone
            else (
                f"the after-window's volume ({after.volume:,.1f} {measure.volume_unit}) is under "
                f"{floor:.0%} of the before-window's ({before.volume:,.1f}): too little to say"
            ),
        )
    saved = (before.unit - after.unit) * dec(before.volume) * before.price
    monthly = money(saved * MONTH / Decimal(repr(length.total_seconds())))
    resolution.state = RealizationState.MEASURED
    resolution.realized_monthly = monthly
    projected = resolution.projected_monthly
    resolution.ratio = round(float(monthly / projected), 4) if projected > 0 else None
    resolution.reason = _caveat(resolution)
    resolution.save()
    return resolution


def _caveat(resolution: FindingResolution) -> str:
    ratio = resolution.ratio
    if ratio is None or 0.8 <= ratio <= 1.2:
        return ""
    if ratio < 0.8:
        return (
            f"Realized {ratio:.0%} of the projection: the measure ({resolution.measure}) "
            "fell less than projected; the fix was partial, the work changed, or the "
            "projection's assumptions did not hold (see the finding's action)."
        )
    return (
        f"Realized {ratio:.0%} of the projection: the measure ({resolution.measure}) fell "
        "more than projected; other changes in the same scope count here too."
    )


def _not_measurable(resolution: FindingResolution, reason: str) -> FindingResolution:
    resolution.state = RealizationState.NOT_MEASURABLE
    resolution.realized_monthly = None
    resolution.ratio = None
    resolution.reason = reason
    resolution.save()
    return resolution


def resolutions_measure_due(*, now: datetime | None = None) -> int:
    """Measure every too-early resolution whose after-window is complete; returns how many
    were measured."""
    now = now or timezone.now()
    due = FindingResolution.objects.filter(
        state=RealizationState.TOO_EARLY, after_end__lte=now
    ).select_related("finding")
    cache: dict[tuple[datetime, datetime], Context] = {}
    count = 0
    for resolution in due.order_by("changed_at", "pk"):
        resolution_measure(resolution, now=now, contexts=cache)
        count += 1
    return count
