from __future__ import annotations

import hmac
import time

from django.conf import settings
from django.db import DatabaseError, connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from finops.accounts.selectors import user_sees_every_team
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


def _token_refused(request: HttpRequest, *, costs: bool) -> JsonResponse | None:
    """None when the caller may read the metrics, else the refusal.

    The cost gauges carry every team's costs, so they follow the role rule: the
    ``METRICS_TOKEN`` bearer (Prometheus), or a signed-in person who sees every team
    (finance, admins). Nobody else, whatever DEBUG says: a team's manager reads their
    team's costs through the API, not here. FrameOps' own counters (``costs=False``) hold
    no team data: without a token they are open, as in the demo."""
    token = settings.METRICS_TOKEN
    supplied = request.headers.get("Authorization", "")
    if not costs and not token:
        return None
    if token and (supplied or not costs):
        if hmac.compare_digest(supplied.removeprefix("Bearer ").strip().encode(), token.encode()):
            return None
        message = (
            "The metrics token is not valid."
            if supplied
            else "Send 'Authorization: Bearer <METRICS_TOKEN>'."
        )
        return JsonResponse({"message": message, "extra": {"header": "Authorization"}}, status=401)
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        if user_sees_every_team(user=user):
            return None
        return JsonResponse(
            {
                "message": "These metrics carry every team's costs: they are for finance, "
                "admins and Prometheus with METRICS_TOKEN. Read your teams' costs through "
                "GET /api/v1/allocation.",
                "extra": {},
            },
            status=403,
        )
    return JsonResponse(
        {
            "message": "Send 'Authorization: Bearer <METRICS_TOKEN>', or sign in as finance "
            "or an admin.",
            "extra": {"header": "Authorization"},
        },
        status=401,
    )


@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    refused = _token_refused(request, costs=False)
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

    refused = _token_refused(request, costs=True)
    if refused is not None:
        return refused
    return HttpResponse(cost_exposition(), content_type=CONTENT_TYPE_LATEST)
