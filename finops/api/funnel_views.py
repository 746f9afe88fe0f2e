"""``GET /api/v1/funnel``: the fleet funnel in money (``finops.costing.funnel``)."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from finops.accounts.models import Scope
from finops.api.params import query_window
from finops.api.permissions import request_teams
from finops.costing.funnel import funnel


class FunnelApi(APIView):
    """``GET /api/v1/funnel?window=7d&by=fleet|team|gpu_model&step=window|1d``: GPU-hours
    and cost paid, held by jobs, SM-active, used (the usage basis) and on usable output
    (``days`` too with ``step=1d``), with the yield
    (usable ÷ paid). Idle and unallocated time are the fleet's: only callers who see every
    team get them; a team's rows start at the time its jobs held."""

    required_scopes = (Scope.READ, Scope.BILLING_READ)

    @extend_schema(
        parameters=[
            OpenApiParameter("window", str, description="e.g. 7d, or start,end (ISO 8601)"),
            OpenApiParameter("by", str, enum=["fleet", "team", "gpu_model"]),
            OpenApiParameter("step", str, enum=["window", "1d"], description="1d: by day too"),
        ],
        responses={200: OpenApiTypes.OBJECT},
    )
    def get(self, request: Request) -> Response:
        start, end = query_window(request.query_params, "7d")
        teams, all_teams = request_teams(request)
        try:
            body = funnel(teams=teams, all_teams=all_teams, start=start, end=end,
                          by=request.query_params.get("by", "fleet"),
                          step=request.query_params.get("step", "window"))  # fmt: skip
        except ValueError as exc:
            field = str(exc).split(":")[0]
            raise serializers.ValidationError({field: [str(exc)]}) from exc
        return Response(body)
