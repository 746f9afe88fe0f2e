"""Reads of findings: what a caller may see, and projected savings."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.db.models import Q, QuerySet, Sum

from finops.accounts.models import Membership, Role, Team
from finops.insights.models import Finding, FindingStatus


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
