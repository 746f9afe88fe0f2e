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


# The one role rule (DESIGN "Roles"): these roles see every team's costs. Finance reads
# them (no writes: its scopes are read and billing:read); admins also write. The API, the
# pages and their CSVs, the weekly e-mail and the cost gauges all ask user_sees_every_team.
ROLES_SEEING_EVERY_TEAM = (Role.ADMIN, Role.FINANCE)


def _is_person(user: object) -> bool:
    """A signed-in account (not anonymous, not an API key's principal)."""
    return isinstance(user, AbstractBaseUser) and bool(user.is_authenticated)


def user_sees_every_team(*, user: AbstractBaseUser | None) -> bool:
    if not _is_person(user):
        return False
    if getattr(user, "is_superuser", False):
        return True
    return Membership.objects.filter(user=user, role__in=ROLES_SEEING_EVERY_TEAM).exists()


def user_is_admin(*, user: AbstractBaseUser | None) -> bool:
    """Superusers and team admins: the people who change fleet-wide settings."""
    if not _is_person(user):
        return False
    if getattr(user, "is_superuser", False):
        return True
    return Membership.objects.filter(user=user, role=Role.ADMIN).exists()


def team_list_visible(
    *, user: AbstractBaseUser | None = None, api_key: ApiKey | None = None
) -> QuerySet[Team]:
    """Teams the caller may see: a team-restricted key sees its team; an unrestricted key,
    superusers, admins and finance see all; everyone else sees the teams they belong to."""
    teams = Team.objects.all()
    if api_key is not None:
        return teams.filter(pk=api_key.team_id) if api_key.team_id else teams
    if user is None:
        return teams.none()
    if user_sees_every_team(user=user):
        return teams
    return teams.filter(memberships__user=user).distinct()
