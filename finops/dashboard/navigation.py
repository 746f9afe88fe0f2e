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
    # An API key's principal on a page DRF renders (the browsable API) has no staff flag
    # and sees no fleet: user_sees_every_team says False for it.
    return {
        "nav": {
            "fleet": user_sees_every_team(user=user),
            "admin": bool(getattr(user, "is_staff", False)),
        }
    }
