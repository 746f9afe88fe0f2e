"""Reads of findings: what a caller may see, and projected savings."""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.db.models import Q, QuerySet, Sum

from finops.accounts.models import Membership, Role, Team
from finops.costing.exports import month_bounds
from finops.insights.models import Finding, FindingResolution, FindingStatus, RealizationState
from finops.validation import ParameterError, month_parse


def finding_list_visible(*, teams: QuerySet[Team], all_teams: bool) -> QuerySet[Finding]:
    """Findings of the caller's teams; fleet-wide ones (a node, a GPU, a GPU model) only
    for callers who see every team."""
    visible = Q(team__in=teams)
    if all_teams:
        visible |= Q(team__isnull=True)
    return Finding.objects.filter(visible).select_related("team")


def finding_may_judge(*, user: AbstractBaseUser, finding: Finding) -> bool:
    """Managers and admins of the finding's team; for fleet-wide findings, admins."""
    if getattr(user, "is_superuser", False):
        return True
    roles = Membership.objects.filter(user=user)
    if finding.team_id is None:
        return roles.filter(role=Role.ADMIN).exists()
    return roles.filter(
        Q(team_id=finding.team_id, role__in=[Role.MANAGER, Role.ADMIN]) | Q(role=Role.ADMIN)
    ).exists()


def finding_judges(*, user: AbstractBaseUser) -> tuple[bool, set[int]]:
    """(judges every finding, the teams whose findings the user judges): one query, for a
    page of findings."""
    if getattr(user, "is_superuser", False):
        return True, set()
    roles = list(Membership.objects.filter(user=user).values_list("team_id", "role"))
    if any(role == Role.ADMIN for _, role in roles):
        return True, set()
    return False, {team for team, role in roles if role == Role.MANAGER}


def savings_by_pattern_and_team(findings: QuerySet[Finding]) -> list[dict[str, Any]]:
    """Projected monthly savings of the findings still open or acknowledged, by pattern and
    team (``None``: fleet-wide), largest first."""
    rows = (
        findings.exclude(status=FindingStatus.RESOLVED)
        .values("pattern", "team__slug", "currency")
        .annotate(monthly=Sum("est_monthly_waste"), window_waste=Sum("waste"))
        .order_by("-monthly")
    )
    return [
        {
            "pattern": r["pattern"],
            "team": r["team__slug"],
            "currency": r["currency"],
            "projected_monthly_savings": str(r["monthly"] or Decimal(0)),
            "findings": findings.filter(pattern=r["pattern"], team__slug=r["team__slug"])
            .exclude(status=FindingStatus.RESOLVED)
            .count(),
        }
        for r in rows
    ]


def _resolutions(findings: QuerySet[Finding]) -> QuerySet[FindingResolution]:
    """The findings' resolutions, oldest change first (all of them: a re-opened finding keeps
    its history)."""
    return (
        FindingResolution.objects.filter(finding__in=findings)
        .select_related("finding", "finding__team")
        .order_by("changed_at", "pk")
    )


def savings_summary(findings: QuerySet[Finding]) -> dict[str, Any]:
    """Projected, realized and open monthly savings of the caller's findings: projected and
    realized over every measured resolution (what fixes promised and what came back), open
    over the findings not resolved; by pattern and team, with the counts by state. Also the
    resolutions by finding (newest first): two queries whatever the number of findings."""
    rows: dict[tuple[str, str | None], dict[str, Any]] = {}

    def row(pattern: str, team: str | None) -> dict[str, Any]:
        return rows.setdefault((pattern, team), {
            "pattern": pattern, "team": team, "open_monthly": Decimal(0),
            "projected_monthly": Decimal(0), "realized_monthly": Decimal(0),
            "open": 0, "measured": 0, "too_early": 0, "not_measurable": 0,
        })  # fmt: skip

    currency = None
    for f in findings.exclude(status=FindingStatus.RESOLVED).select_related("team"):
        r = row(f.pattern, f.team.slug if f.team else None)
        r["open_monthly"] += f.est_monthly_waste
        r["open"] += 1
        currency = currency or f.currency
    by_finding: dict[int, list[FindingResolution]] = {}
    for res in _resolutions(findings):
        f = res.finding
        by_finding.setdefault(f.pk, []).append(res)
        currency = currency or res.currency
        r = row(f.pattern, f.team.slug if f.team else None)
        r[res.state] += 1
        if res.state == RealizationState.MEASURED:
            r["projected_monthly"] += res.projected_monthly
            r["realized_monthly"] += res.realized_monthly or Decimal(0)
    ordered = sorted(rows.values(), key=lambda r: (-r["realized_monthly"], -r["open_monthly"],
                                                   r["pattern"], r["team"] or ""))  # fmt: skip
    totals = {
        name: sum((r[name] for r in ordered), Decimal(0))
        for name in ("open_monthly", "projected_monthly", "realized_monthly")
    }
    for listed in by_finding.values():
        listed.reverse()  # newest first, as a finding's page lists them
    return {"totals": totals, "rows": ordered, "currency": currency or "USD",
            "resolutions": by_finding}  # fmt: skip


def realized_between(findings: QuerySet[Finding], start: Any, end: Any) -> list[FindingResolution]:
    """Resolutions measured with their after-window ending in [start, end): what a weekly
    report calls "realized this week"."""
    return list(
        _resolutions(findings).filter(
            state=RealizationState.MEASURED, after_end__gte=start, after_end__lt=end
        )
    )


def savings_statement(findings: QuerySet[Finding], *, period: str) -> dict[str, Any]:
    """The month ``period`` (YYYY-MM) per team and pattern: projected and realized savings
    of the resolutions whose change fell in the month, and open savings of the findings seen
    in the month and not resolved, each row with the findings behind it. The totals are the
    rows' sums and the rows the findings' sums (money as strings, to the cent)."""
    try:
        start = month_parse(period, parameter="period")
    except ParameterError as exc:
        raise ValueError(f"period must be a month as YYYY-MM: {exc.message}") from None
    start, end = month_bounds(start)
    lines: dict[tuple[str | None, str], dict[str, Any]] = {}

    def line(team: str | None, pattern: str) -> dict[str, Any]:
        return lines.setdefault((team, pattern), {
            "team": team, "pattern": pattern, "projected_monthly": Decimal(0),
            "realized_monthly": Decimal(0), "open_monthly": Decimal(0), "findings": [],
        })  # fmt: skip

    currency = None
    for res in _resolutions(findings).filter(changed_at__gte=start, changed_at__lt=end):
        f = res.finding
        currency = currency or res.currency
        item = line(f.team.slug if f.team else None, f.pattern)
        realized = res.realized_monthly if res.state == RealizationState.MEASURED else None
        item["projected_monthly"] += res.projected_monthly
        item["realized_monthly"] += realized or Decimal(0)
        item["findings"].append({
            "finding": f.pk, "scope": f"{f.scope_kind} {f.scope_key}", "kind": "resolved",
            "state": res.state, "changed_at": res.changed_at.isoformat(),
            "projected_monthly": str(res.projected_monthly),
            "realized_monthly": str(realized) if realized is not None else None,
            "open_monthly": "0.00", "reason": res.reason,
        })  # fmt: skip
    open_findings = (
        findings.exclude(status=FindingStatus.RESOLVED)
        .filter(last_seen_at__gte=start, first_seen_at__lt=end)
        .select_related("team")
        .order_by("pk")
    )
    for f in open_findings:
        currency = currency or f.currency
        item = line(f.team.slug if f.team else None, f.pattern)
        item["open_monthly"] += f.est_monthly_waste
        item["findings"].append({
            "finding": f.pk, "scope": f"{f.scope_kind} {f.scope_key}", "kind": "open",
            "state": f.status, "changed_at": None, "projected_monthly": "0.00",
            "realized_monthly": None, "open_monthly": str(f.est_monthly_waste), "reason": "",
        })  # fmt: skip
    rows = sorted(lines.values(), key=lambda r: (r["team"] or "", r["pattern"]))
    names = ("projected_monthly", "realized_monthly", "open_monthly")
    totals = {n: str(sum((r[n] for r in rows), Decimal(0))) for n in names}
    for r in rows:
        for n in names:
            r[n] = str(r[n])
    return {"period": period, "start": start.isoformat(), "end": end.isoformat(),
            "currency": currency or "USD", "totals": totals, "rows": rows}  # fmt: skip


STATEMENT_COLUMNS = ["team", "pattern", "finding", "scope", "kind", "state", "changed_at",
                     "projected_monthly", "realized_monthly", "open_monthly", "reason"]  # fmt: skip


def savings_statement_csv(statement: dict[str, Any]) -> str:
    """The statement as CSV text: a header, one line per finding, a total line per row and
    one for the statement."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(STATEMENT_COLUMNS)
    writer.writerows(savings_statement_csv_rows(statement))
    return out.getvalue()


def savings_statement_csv_rows(statement: dict[str, Any]) -> list[list[Any]]:
    """One line per finding behind the statement, then a total line per row and overall."""
    out: list[list[Any]] = []
    for r in statement["rows"]:
        for f in r["findings"]:
            out.append([r["team"] or "(fleet)", r["pattern"], f["finding"], f["scope"], f["kind"],
                        f["state"], f["changed_at"] or "", f["projected_monthly"],
                        f["realized_monthly"] or "", f["open_monthly"], f["reason"]])  # fmt: skip
        out.append(
            [
                r["team"] or "(fleet)",
                r["pattern"],
                "",
                "",
                "row total",
                "",
                "",
                r["projected_monthly"],
                r["realized_monthly"],
                r["open_monthly"],
                "",
            ]
        )
    t = statement["totals"]
    out.append(["", "", "", "", "statement total", "", "", t["projected_monthly"],
                t["realized_monthly"], t["open_monthly"], ""])  # fmt: skip
    return out
