"""Alert evaluation: every enabled rule, per subject, from the freshest data.

GPU rules read the minute rollups of the rule's trailing window (``params.window_s``,
300 s by default): thermal throttling and power capping as throttled seconds over busy
seconds (reasons 0x8/0x20/0x40 and 0x4/0x80), memory pressure as pressured over busy
seconds, paid idle as the covered seconds no job held and nothing ran, idle-held as the
seconds of the window with memory at or above ``params.mem_frac`` of VRAM and no SM
activity.
Telemetry stale is the seconds since a registered GPU was last seen; budget the
month-to-date cost (actual)
or its month-end forecast over the team's monthly budget.

State per (rule, subject), as Prometheus and Alertmanager have it: at or above the
threshold an alert is pending, and firing once it has held for ``for_s``; it resolves only
below ``resolve_threshold`` (hysteresis; the threshold when unset); between the two it
keeps its state. One open alert per rule and subject (a partial unique index); a tick
runs under a transaction-level advisory lock, so two schedulers evaluating at once never
fire twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import Max, Q, Sum
from django.utils import timezone

from finops.accounts.models import Team
from finops.alerts.models import Alert, AlertRule, AlertState, RuleKind
from finops.costing.selectors import month_burn
from finops.fleet.models import Gpu, Node
from finops.jobs.models import GpuAllocation
from finops.telemetry.models import GpuMinute

LOCK_CLASS = 0x414C  # pg_advisory_xact_lock(class, 0): one evaluation tick at a time
THROTTLE_COLUMNS = {
    RuleKind.THERMAL_THROTTLING: ("throttle_hw_slowdown_s", "throttle_sw_thermal_s",
                                  "throttle_hw_thermal_s"),
    RuleKind.POWER_CAPPING: ("throttle_power_cap_s", "throttle_power_brake_s"),
}  # fmt: skip


@dataclass(frozen=True)
class Observation:
    key: str  # the subject: a GPU UUID, a team slug
    value: float
    labels: dict[str, str]


@dataclass
class TickReport:
    evaluated: int = 0
    pending: int = 0
    fired: list[int] | None = None
    resolved: list[int] | None = None


def _gpu_labels() -> dict[int, dict[str, str]]:
    return {
        gid: {"gpu": uuid, "node": host, "site": site, "gpu_model": model or ""}
        for gid, uuid, host, site, model in Gpu.objects.filter(
            retired_at__isnull=True, mig_parent__isnull=True
        ).values_list("id", "uuid", "node__hostname", "node__site__slug", "model__name")
    }


def _gpu_minutes(
    window_s: int, now: datetime, columns: tuple[str, ...]
) -> dict[int, dict[str, float]]:
    rows = (
        GpuMinute.objects.filter(ts__gte=now - timedelta(seconds=window_s), ts__lt=now)
        .values("gpu_id")
        .annotate(**{c: Sum(c) for c in ("busy_s", "covered_s", *columns)})
    )
    return {r["gpu_id"]: r for r in rows}


def observe(
    rule: AlertRule, *, now: datetime, labels: dict[int, dict[str, str]] | None = None
) -> list[Observation]:
    """What the rule sees now, one observation per GPU (or node). ``labels`` are the
    fleet's GPU labels; a tick loads them once for all its rules."""
    window_s = int(rule.params.get("window_s", 300))
    labels = _gpu_labels() if labels is None else labels
    out: list[Observation] = []
    if rule.kind in THROTTLE_COLUMNS or rule.kind == RuleKind.MEMORY_PRESSURE:
        columns = THROTTLE_COLUMNS.get(rule.kind, ("mem_pressure_s",))
        for gpu_id, r in _gpu_minutes(window_s, now, columns).items():
            if gpu_id not in labels or not r["busy_s"]:
                continue
            throttled = min(sum(r[c] or 0 for c in columns), r["busy_s"])
            out.append(Observation(labels[gpu_id]["gpu"], throttled / r["busy_s"], labels[gpu_id]))
    elif rule.kind == RuleKind.GPU_IDLE:
        held = set(
            GpuAllocation.objects.filter(start__lt=now)
            .filter(Q(end__isnull=True) | Q(end__gt=now - timedelta(seconds=window_s)))
            .values_list("gpu_id", flat=True)
        )
        for gpu_id, r in _gpu_minutes(window_s, now, ()).items():
            if gpu_id not in labels or gpu_id in held or not r["covered_s"]:
                continue
            out.append(Observation(labels[gpu_id]["gpu"], 1 - (r["busy_s"] or 0) / r["covered_s"],
                                   labels[gpu_id]))  # fmt: skip
    elif rule.kind == RuleKind.IDLE_HELD:
        held_idle = Q(busy_s=0, mem_frac_mean__gte=float(rule.params.get("mem_frac", 0.10)))
        rows = (
            GpuMinute.objects.filter(ts__gte=now - timedelta(seconds=window_s), ts__lt=now)
            .values("gpu_id")
            .annotate(covered=Sum("covered_s"), idle_held=Sum("covered_s", filter=held_idle))
            .values_list("gpu_id", "covered", "idle_held")
        )
        for gpu_id, covered, idle_held in rows:
            # Over the whole window (not the covered part): 30 minutes means 30 minutes.
            if gpu_id in labels and covered:
                out.append(Observation(labels[gpu_id]["gpu"], (idle_held or 0) / window_s,
                                       labels[gpu_id]))  # fmt: skip
    elif rule.kind == RuleKind.TELEMETRY_STALE:
        for gid, seen in Gpu.objects.filter(
            retired_at__isnull=True, mig_parent__isnull=True, last_seen_at__isnull=False
        ).values_list("id", "last_seen_at"):
            if gid in labels:
                out.append(
                    Observation(labels[gid]["gpu"], (now - seen).total_seconds(), labels[gid])
                )
        # The node as a whole: silent when its freshest GPU is (it inhibits its GPUs').
        for host, site, seen in (
            Node.objects.filter(gpus__retired_at__isnull=True)
            .values("hostname", "site__slug")
            .annotate(seen=Max("gpus__last_seen_at"))
            .values_list("hostname", "site__slug", "seen")
        ):
            if seen is not None:
                out.append(Observation(f"node:{host}", (now - seen).total_seconds(),
                                       {"node": host, "site": site}))  # fmt: skip
    elif rule.kind == RuleKind.BUDGET:
        out = _budgets(rule, now=now)
    if rule.team_id is not None and rule.kind != RuleKind.BUDGET:
        ran_on = _team_gpus(rule.team_id, now, window_s)
        out = [o for o in out if o.key in ran_on]
    return out


def _team_gpus(team_id: int, now: datetime, window_s: int) -> set[str]:
    """UUIDs of the GPUs the team's jobs held at some point in the window."""
    return set(
        GpuAllocation.objects.filter(job__team_id=team_id, start__lt=now)
        .filter(Q(end__isnull=True) | Q(end__gt=now - timedelta(seconds=window_s)))
        .values_list("gpu__uuid", flat=True)
    )


def _budgets(rule: AlertRule, *, now: datetime) -> list[Observation]:
    """Month-to-date cost over the budget (``params.measure``: ``actual`` or ``forecast``,
    the month-to-date cost extrapolated to the month's end)."""
    teams = Team.objects.filter(monthly_budget__gt=0)
    if rule.team_id is not None:
        teams = teams.filter(pk=rule.team_id)
    teams = list(teams)
    burns = month_burn(teams, now=now)
    forecast = rule.params.get("measure", "forecast") == "forecast"
    out = []
    for team in teams:
        burn = burns[team.pk]
        ratio = burn.forecast_burn if forecast else burn.burn
        out.append(Observation(team.slug, float(ratio or 0.0), {"team": team.slug}))
    return out


def _lock() -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, 0)", [LOCK_CLASS])


def rules_evaluate(*, now: datetime | None = None) -> TickReport:
    """One evaluation tick of every enabled rule; returns which alerts fired and resolved
    (notifications are made from those by ``finops.alerts.notify``)."""
    now = now or timezone.now()
    report = TickReport(fired=[], resolved=[])
    with transaction.atomic():
        _lock()
        labels = _gpu_labels()
        for rule in AlertRule.objects.filter(enabled=True):
            _rule_evaluate(rule, now, report, labels)
    return report


def _rule_evaluate(
    rule: AlertRule, now: datetime, report: TickReport, labels: dict[int, dict[str, str]]
) -> None:
    resolve_below = rule.resolve_threshold if rule.resolve_threshold is not None else rule.threshold
    observed = {o.key: o for o in observe(rule, now=now, labels=labels)}
    open_alerts = {a.dedup_key: a for a in Alert.objects.filter(rule=rule).exclude(
        state=AlertState.RESOLVED).select_for_update()}  # fmt: skip
    report.evaluated += len(observed)
    for key, o in observed.items():
        alert = open_alerts.get(key)
        if o.value >= rule.threshold:
            if alert is None:
                alert = Alert.objects.create(rule=rule, dedup_key=key, labels=o.labels,
                                             state=AlertState.PENDING, value=o.value,
                                             pending_since=now, last_evaluated_at=now)  # fmt: skip
            alert.value, alert.last_evaluated_at = o.value, now
            if (
                alert.state == AlertState.PENDING
                and (now - alert.pending_since).total_seconds() >= rule.for_s
            ):
                alert.state, alert.fired_at = AlertState.FIRING, now
                report.fired.append(alert.pk)  # type: ignore[union-attr]
            elif alert.state == AlertState.PENDING:
                report.pending += 1
            alert.save()
        elif alert is not None and o.value < resolve_below:
            _resolve(alert, now, o.value, report)
        elif alert is not None:  # between the thresholds: as it was
            alert.value, alert.last_evaluated_at = o.value, now
            alert.save(update_fields=["value", "last_evaluated_at"])
    for key, alert in open_alerts.items():
        if key not in observed and rule.kind != RuleKind.TELEMETRY_STALE:
            # No data in the window: a throttling GPU that went idle is no longer throttling.
            _resolve(alert, now, None, report)


def _resolve(alert: Alert, now: datetime, value: Any, report: TickReport) -> None:
    was_firing = alert.state == AlertState.FIRING
    alert.state, alert.resolved_at, alert.last_evaluated_at = AlertState.RESOLVED, now, now
    if value is not None:
        alert.value = value
    alert.save()
    if was_firing:
        report.resolved.append(alert.pk)  # type: ignore[union-attr]
