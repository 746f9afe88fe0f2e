from __future__ import annotations

from typing import Any

from rest_framework import exceptions, permissions
from rest_framework.request import Request

from finops.accounts.models import ApiKey
from finops.accounts.selectors import user_scopes


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
