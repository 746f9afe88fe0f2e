from __future__ import annotations

import hmac
import time

from django.conf import settings
from django.db import DatabaseError, connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from finops.ops.metrics import metrics_exposition


@never_cache
@require_GET
def health(request: HttpRequest) -> JsonResponse:
    """200 when the database answers a query, 503 otherwise; JSON either way."""
    started = time.perf_counter()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError as exc:
        return JsonResponse(
            {"status": "unavailable", "database": {"ok": False, "error": str(exc).strip()}},
            status=503,
        )
    latency_ms = round((time.perf_counter() - started) * 1000, 2)
    return JsonResponse(
        {
            "status": "ok",
            "database": {"ok": True, "vendor": connection.vendor, "latency_ms": latency_ms},
        }
    )


def _token_refused(request: HttpRequest) -> JsonResponse | None:
    """A 401 unless the request carries ``METRICS_TOKEN`` (when one is set)."""
    token = settings.METRICS_TOKEN
    if token:
        supplied = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(supplied.encode(), token.encode()):
            return JsonResponse(
                {"message": "A valid metrics token is required.", "extra": {}}, status=401
            )
    return None


@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    refused = _token_refused(request)
    if refused is not None:
        return refused
    body, content_type = metrics_exposition()
    return HttpResponse(body, content_type=content_type)


@never_cache
@require_GET
def cost_metrics(request: HttpRequest) -> HttpResponse:
    """Cost gauges (``finops.costing.metrics``), behind the same token as /metrics."""
    from prometheus_client import CONTENT_TYPE_LATEST

    from finops.costing.metrics import cost_exposition

    refused = _token_refused(request)
    if refused is not None:
        return refused
    return HttpResponse(cost_exposition(), content_type=CONTENT_TYPE_LATEST)
