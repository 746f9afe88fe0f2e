"""What the navigation offers: only the pages the signed-in person may open."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from finops.accounts.selectors import user_sees_every_team


def navigation(request: HttpRequest) -> dict[str, Any]:
    """Template context: ``nav`` names each link the person may follow. Fleet and node pages
    are for those who see every team (admins, finance); the admin site for staff."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"nav": {}}
    return {
        "nav": {
            "fleet": user_sees_every_team(user=user),
            "admin": bool(user.is_staff),
        }
    }
