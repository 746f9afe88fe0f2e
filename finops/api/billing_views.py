"""Billing reads: the allocation report (``billing:read`` or ``read``)."""

from __future__ import annotations

from rest_framework import exceptions, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from finops.accounts.models import ApiKey, Scope
from finops.accounts.selectors import team_list_visible
from finops.costing.selectors import AllocationQuery, QueryError, allocation_report


class AllocationApi(APIView):
    """``GET /api/v1/allocation?window=7d&aggregate=team&step=1d&idle=separate&basis=allocation``"""

    required_scopes = (Scope.BILLING_READ, Scope.READ)

    def get(self, request: Request) -> Response:
        try:
            query = AllocationQuery.from_params(request.query_params)
        except QueryError as exc:
            raise serializers.ValidationError({exc.parameter: [exc.message]}) from exc
        if isinstance(request.auth, ApiKey):
            teams = team_list_visible(api_key=request.auth)
            all_teams = request.auth.team_id is None
        else:
            teams = team_list_visible(user=request.user)
            all_teams = teams.count() == teams.model.objects.count()
        if "team" in request.query_params:
            wanted = set(request.query_params["team"].split(","))
            teams = teams.filter(slug__in=wanted)
            if set(teams.values_list("slug", flat=True)) != wanted:
                # A team the caller may not see is indistinguishable from one that does not exist.
                raise exceptions.NotFound(
                    f"no team {', '.join(sorted(wanted))} visible to this caller"
                )
            all_teams = False
        return Response(allocation_report(query=query, teams=teams, all_teams=all_teams))
