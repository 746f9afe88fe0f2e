from __future__ import annotations

from typing import Any

from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from finops.accounts.models import ApiKey


class _CallerRateThrottle(SimpleRateThrottle):
    """Rates per API key, per signed-in user, or per address for anonymous callers."""

    def get_rate(self) -> str | None:
        # Read at request time (DRF's base class freezes the rates at import).
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        if isinstance(request.auth, ApiKey):
            ident = f"key-{request.auth.pk}"
        elif request.user is not None and request.user.is_authenticated:
            ident = f"user-{request.user.pk}"
        else:
            ident = f"ip-{self.get_ident(request)}"
        return self.cache_format % {"scope": self.scope, "ident": ident}


class BurstRateThrottle(_CallerRateThrottle):
    scope = "burst"


class SustainedRateThrottle(_CallerRateThrottle):
    scope = "sustained"
