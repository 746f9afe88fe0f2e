"""Reads for teams and what a user or key may see."""

from __future__ import annotations

from django.contrib.auth.base_user import AbstractBaseUser
from django.db.models import QuerySet

from finops.accounts.models import ApiKey, Membership, Role, Scope, Team

ROLE_SCOPES: dict[str, frozenset[str]] = {
    Role.VIEWER: frozenset({Scope.READ}),
    Role.MANAGER: frozenset({Scope.READ}),
    Role.FINANCE: frozenset({Scope.READ, Scope.BILLING_READ}),
    Role.ADMIN: frozenset(Scope.values),
}


def user_scopes(*, user: AbstractBaseUser) -> frozenset[str]:
    """Scopes a signed-in person has through the browser: the union over their roles."""
    if getattr(user, "is_superuser", False):
        return frozenset(Scope.values)
    roles = Membership.objects.filter(user=user).values_list("role", flat=True).distinct()
    scopes: set[str] = set()
    for role in roles:
        scopes |= ROLE_SCOPES[role]
    return frozenset(scopes)


def team_list_visible(
    *, user: AbstractBaseUser | None = None, api_key: ApiKey | None = None
) -> QuerySet[Team]:
    """Teams the caller may see: a team-restricted key sees its team; an unrestricted key and
    superusers or admins see all; everyone else sees the teams they belong to."""
    teams = Team.objects.all()
    if api_key is not None:
        return teams.filter(pk=api_key.team_id) if api_key.team_id else teams
    if user is None:
        return teams.none()
    if getattr(user, "is_superuser", False):
        return teams
    if Membership.objects.filter(user=user, role=Role.ADMIN).exists():
        return teams
    return teams.filter(memberships__user=user).distinct()
