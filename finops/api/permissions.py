from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from rest_framework import exceptions, permissions
from rest_framework.request import Request

from finops.accounts.models import ApiKey, Team
from finops.accounts.selectors import team_list_visible, user_scopes


def request_scopes(request: Request) -> frozenset[str]:
    if isinstance(request.auth, ApiKey):
        return frozenset(request.auth.scopes)
    user = request.user
    if user is None or not user.is_authenticated:
        return frozenset()
    cached = getattr(request, "_frameops_scopes", None)
    if cached is None:
        cached = user_scopes(user=user)
        request._frameops_scopes = cached
    return cached


def request_teams(request: Request) -> tuple[QuerySet[Team], bool]:
    """The teams the caller may see, and whether that is every team (fleet-wide rows such
    as idle are shown only then)."""
    if isinstance(request.auth, ApiKey):
        return team_list_visible(api_key=request.auth), request.auth.team_id is None
    teams = team_list_visible(user=request.user)
    return teams, teams.count() == Team.objects.count()


class HasScope(permissions.BasePermission):
    """The view's ``required_scopes`` (any one suffices); a view that names none is closed.

    Keys carry scopes; people get them through their team roles (see ROLE_SCOPES)."""

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        if user is None or not user.is_authenticated:
            raise exceptions.NotAuthenticated(
                "Authentication required: send 'Authorization: Bearer <api key>' or sign in."
            )
        required = getattr(view, "required_scopes", None)
        if not required:
            return False
        if request_scopes(request) & set(required):
            return True
        raise exceptions.PermissionDenied(
            f"This needs the scope {' or '.join(sorted(required))}; "
            f"the caller has {', '.join(sorted(request_scopes(request))) or 'none'}."
        )
