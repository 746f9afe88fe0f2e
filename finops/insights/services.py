"""Findings: refreshed per window from the detectors, kept by dedup key, judged by people.

A refresh runs every detector over [start, end), caps each finding's waste at its scope's
ledger cost in the window, and upserts by dedup key (pattern + scope): first seen stays,
last seen moves, evidence and prices are replaced. A finding that refreshes of its window
length no longer see ``INSIGHTS_RESOLVE_AFTER_RUNS`` times in a row resolves itself; one
that comes back reopens. An acknowledged finding stays acknowledged while it persists.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_DOWN, Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from finops.insights.context import Context
from finops.insights.detectors import CENT, Draft, all_detectors, money
from finops.insights.models import Finding, FindingResolution, FindingStatus, ResolvedBy
from finops.insights.savings import resolution_record, resolutions_measure_due


@dataclass
class RefreshReport:
    found: int = 0
    created: int = 0
    reopened: int = 0
    resolved: int = 0
    measured: int = 0
    by_pattern: dict[str, int] = field(default_factory=dict)


def drafts_detect(
    *, start: datetime, end: datetime, patterns: list[str] | None = None,
    progress: Callable[[str, int], None] | None = None,
) -> tuple[Context, list[Draft]]:  # fmt: skip
    ctx = Context.load(start=start, end=end)
    drafts: list[Draft] = []
    for name, detect in all_detectors().items():
        if patterns and name not in patterns:
            continue
        found = detect(ctx)
        drafts += found
        if progress:
            progress(name, len(found))
    return ctx, drafts


def findings_refresh(
    *, start: datetime, end: datetime, now: datetime | None = None,
    patterns: list[str] | None = None, progress: Callable[[str, int], None] | None = None,
) -> RefreshReport:  # fmt: skip
    now = now or timezone.now()
    ctx, drafts = drafts_detect(start=start, end=end, patterns=patterns, progress=progress)
    window_s = int((end - start).total_seconds())
    report = RefreshReport(found=len(drafts))
    with transaction.atomic():
        keys = [d.dedup_key for d in drafts]
        rows = Finding.objects.select_for_update().filter(dedup_key__in=keys)
        existing = {f.dedup_key: f for f in rows}
        for draft in drafts:
            report.by_pattern[draft.pattern] = report.by_pattern.get(draft.pattern, 0) + 1
            cap = max(draft.scope_cost, Decimal(0))
            waste = money(min(max(draft.waste, Decimal(0)), cap))
            if waste > cap:  # rounding up must not pass the scope's cost
                waste = cap.quantize(CENT, rounding=ROUND_DOWN)
            values = {
                "pattern": draft.pattern, "severity": draft.severity,
                "scope_kind": draft.scope_kind, "scope_key": draft.scope_key[:200],
                "team_id": draft.team_id, "window_start": start, "window_end": end,
                "evidence": {**draft.evidence, "scope_cost": str(money(draft.scope_cost))},
                "waste": waste, "est_monthly_waste": money(waste * ctx.month_factor),
                "currency": ctx.currency, "recommendation": draft.recommendation,
                "action": draft.action, "thresholds": draft.thresholds, "window_s": window_s,
                "missed_runs": 0, "last_seen_at": now,
            }  # fmt: skip
            finding = existing.get(draft.dedup_key)
            if finding is None:
                Finding.objects.create(dedup_key=draft.dedup_key, first_seen_at=now, **values)
                report.created += 1
                continue
            for name, value in values.items():
                setattr(finding, name, value)
            if finding.status == FindingStatus.RESOLVED:
                finding.status = FindingStatus.OPEN
                report.reopened += 1
                _reopened(finding, now)
            finding.save()
        absent = (
            Finding.objects.select_for_update()
            .filter(window_s=window_s)
            .exclude(status=FindingStatus.RESOLVED)
            .exclude(dedup_key__in=keys)
        )
        if patterns:
            absent = absent.filter(pattern__in=patterns)
        for finding in absent:
            finding.missed_runs += 1
            if finding.missed_runs >= settings.INSIGHTS_RESOLVE_AFTER_RUNS:
                finding.status = FindingStatus.RESOLVED
                report.resolved += 1
                resolution_record(finding=finding, by=ResolvedBy.DETECTOR, now=now)
            finding.save(update_fields=["missed_runs", "status"])
    report.measured = resolutions_measure_due(now=now)
    return report


def _reopened(finding: Finding, now: datetime) -> None:
    """The finding is back: its last resolution says so (and keeps its measure)."""
    FindingResolution.objects.filter(finding=finding, reopened_at__isnull=True).update(
        reopened_at=now
    )


def finding_status_set(
    *, finding: Finding, status: str, user: str = "", now: datetime | None = None
) -> Finding:
    """A person's judgement: acknowledge (it stays acknowledged while it persists), resolve
    (its realized savings are measured over the same length after the change), or open
    again (its resolutions are kept, marked re-opened)."""
    if status not in FindingStatus.values:
        raise ValidationError({"status": f"use one of {', '.join(FindingStatus.values)}"})
    now = now or timezone.now()
    with transaction.atomic():
        was = finding.status
        finding.status = status
        if status == FindingStatus.RESOLVED:
            finding.missed_runs = 0
        finding.save(update_fields=["status", "missed_runs"])
        if status == FindingStatus.RESOLVED and was != FindingStatus.RESOLVED:
            resolution_record(finding=finding, by=ResolvedBy.PERSON, now=now, user=user)
        elif was == FindingStatus.RESOLVED and status != FindingStatus.RESOLVED:
            _reopened(finding, now)
    return finding
