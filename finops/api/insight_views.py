"""Findings (``read``): list, detail, a person's judgement, and projected savings."""

from __future__ import annotations

from typing import Any

from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from finops.accounts.models import ApiKey, Scope
from finops.api.pagination import cursor_pagination, page_serializer
from finops.api.params import ParameterError, as_validation_error, query_choice
from finops.api.permissions import request_teams
from finops.costing.selectors import QueryError, parse_window
from finops.insights.models import (
    Finding,
    FindingResolution,
    FindingStatus,
    Pattern,
    ScopeKind,
)
from finops.insights.selectors import (
    finding_list_visible,
    finding_may_judge,
    savings_by_pattern_and_team,
    savings_statement,
    savings_statement_csv,
    savings_summary,
)
from finops.insights.services import finding_status_set

ANY_READ = (Scope.READ, Scope.BILLING_READ)


class ResolutionSerializer(serializers.ModelSerializer):
    class Meta:
        model = FindingResolution
        fields = [
            "resolved_at", "resolved_by", "resolved_by_user", "before_start", "before_end",
            "changed_at", "after_end", "state", "measure", "projected_monthly",
            "realized_monthly", "ratio", "currency", "before", "after", "reason",
            "measured_at", "reopened_at",
        ]  # fmt: skip


class FindingOutputSerializer(serializers.ModelSerializer):
    team = serializers.SlugRelatedField(slug_field="slug", read_only=True, allow_null=True)
    resolutions = ResolutionSerializer(many=True, read_only=True)

    class Meta:
        model = Finding
        fields = [
            "id", "pattern", "severity", "scope_kind", "scope_key", "team", "window_start",
            "window_end", "evidence", "waste", "est_monthly_waste", "currency",
            "recommendation", "action", "thresholds", "status", "first_seen_at", "last_seen_at",
            "resolutions",
        ]  # fmt: skip


FindingPageSerializer = page_serializer("FindingPage", FindingOutputSerializer)
FindingPagination = cursor_pagination(ordering="-last_seen_at", page_size=50, max_page_size=500)


FINDING_PARAMETERS = [
    OpenApiParameter("pattern", OpenApiTypes.STR, enum=Pattern.values),
    OpenApiParameter("status", OpenApiTypes.STR, enum=FindingStatus.values),
    OpenApiParameter("scope", OpenApiTypes.STR, enum=ScopeKind.values),
    OpenApiParameter("team", OpenApiTypes.STR, description="A team slug (404 if not visible)."),
    OpenApiParameter(
        "window",
        OpenApiTypes.STR,
        description="Findings last seen in this "
        "window: 7d, 24h, today, … or START,END (as for allocation).",
    ),
    OpenApiParameter("cursor", OpenApiTypes.STR),
    OpenApiParameter("page_size", OpenApiTypes.INT, description="1 to 500 (default 50)."),
]


def _visible(request: Request) -> Any:
    teams, all_teams = request_teams(request)
    findings = finding_list_visible(teams=teams, all_teams=all_teams)
    return findings.prefetch_related("resolutions"), teams


class FindingListApi(APIView):
    """``GET /api/v1/findings``: failure patterns found, newest first."""

    required_scopes = ANY_READ
    may_404 = True

    @extend_schema(operation_id="findings_list", parameters=FINDING_PARAMETERS,
                   responses=FindingPageSerializer)  # fmt: skip
    def get(self, request: Request) -> Response:
        findings, teams = _visible(request)
        params = request.query_params
        try:
            pattern = query_choice(params, "pattern", Pattern.values)
            status = query_choice(params, "status", FindingStatus.values)
            scope = query_choice(params, "scope", ScopeKind.values)
        except ParameterError as exc:
            raise as_validation_error(exc) from exc
        if "window" in params:
            try:
                start, end = parse_window(params["window"])
            except QueryError as exc:
                raise serializers.ValidationError({"window": [exc.message]}) from exc
            findings = findings.filter(last_seen_at__gte=start, last_seen_at__lt=end)
        if "team" in params:
            if not teams.filter(slug=params["team"]).exists():
                raise exceptions.NotFound(f"no team {params['team'][:64]!r} visible to this caller")
            findings = findings.filter(team__slug=params["team"])
        for name, value in (("pattern", pattern), ("status", status), ("scope_kind", scope)):
            if value is not None:
                findings = findings.filter(**{name: value})
        paginator = FindingPagination()
        page = paginator.paginate_queryset(findings, request, view=self)
        return paginator.get_paginated_response(FindingOutputSerializer(page, many=True).data)


class FindingDetailApi(APIView):
    """``GET /api/v1/findings/{id}``; ``PATCH`` its status (the team's managers, admins)."""

    class StatusSerializer(serializers.Serializer):
        status = serializers.ChoiceField(choices=FindingStatus.choices)

    def get_permissions(self):  # type: ignore[no-untyped-def]
        self.required_scopes = ANY_READ
        return super().get_permissions()

    def _finding(self, request: Request, pk: int) -> Finding:
        return get_object_or_404(_visible(request)[0], pk=pk)

    @extend_schema(responses=FindingOutputSerializer)
    def get(self, request: Request, pk: int) -> Response:
        return Response(FindingOutputSerializer(self._finding(request, pk)).data)

    @extend_schema(request=StatusSerializer, responses=FindingOutputSerializer)
    def patch(self, request: Request, pk: int) -> Response:
        finding = self._finding(request, pk)
        if isinstance(request.auth, ApiKey) or not finding_may_judge(
            user=request.user, finding=finding
        ):
            raise exceptions.PermissionDenied(
                "Only the team's managers and admins (signed in) may acknowledge or resolve "
                "its findings."
            )
        body = self.StatusSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        finding = finding_status_set(
            finding=finding, status=body.validated_data["status"], user=request.user.get_username()
        )
        return Response(FindingOutputSerializer(finding).data)


class SavingRowSerializer(serializers.Serializer):
    pattern = serializers.CharField()
    team = serializers.CharField(allow_null=True)
    currency = serializers.CharField()
    projected_monthly_savings = serializers.DecimalField(max_digits=16, decimal_places=2)
    findings = serializers.IntegerField()


class SavingTotalsSerializer(serializers.Serializer):
    open_monthly = serializers.DecimalField(max_digits=16, decimal_places=2)
    projected_monthly = serializers.DecimalField(max_digits=16, decimal_places=2)
    realized_monthly = serializers.DecimalField(max_digits=16, decimal_places=2)


class SavingStateRowSerializer(SavingTotalsSerializer):
    pattern = serializers.CharField()
    team = serializers.CharField(allow_null=True)
    open = serializers.IntegerField()
    measured = serializers.IntegerField()
    too_early = serializers.IntegerField()
    not_measurable = serializers.IntegerField()


class SavingsSerializer(serializers.Serializer):
    results = SavingRowSerializer(many=True)
    totals = SavingTotalsSerializer()
    by_pattern_and_team = SavingStateRowSerializer(many=True)


class SavingsApi(APIView):
    """``GET /api/v1/savings``: open savings (projected monthly, findings not resolved) by
    pattern and team in ``results``; with ``totals`` and ``by_pattern_and_team``: what the
    resolved findings' fixes projected and what they realized (measured resolutions), and
    how many resolutions are measured, too early or not measurable."""

    required_scopes = ANY_READ

    @extend_schema(responses=SavingsSerializer)
    def get(self, request: Request) -> Response:
        findings, _ = _visible(request)
        summary = savings_summary(findings)
        return Response(SavingsSerializer({
            "results": savings_by_pattern_and_team(findings), "totals": summary["totals"],
            "by_pattern_and_team": summary["rows"],
        }).data)  # fmt: skip


class StatementFindingSerializer(serializers.Serializer):
    finding = serializers.IntegerField()
    scope = serializers.CharField()
    kind = serializers.ChoiceField(choices=["resolved", "open"])
    state = serializers.CharField()
    changed_at = serializers.DateTimeField(allow_null=True)
    projected_monthly = serializers.DecimalField(max_digits=16, decimal_places=2)
    realized_monthly = serializers.DecimalField(max_digits=16, decimal_places=2, allow_null=True)
    open_monthly = serializers.DecimalField(max_digits=16, decimal_places=2)
    reason = serializers.CharField(allow_blank=True)


class StatementRowSerializer(serializers.Serializer):
    team = serializers.CharField(allow_null=True)
    pattern = serializers.CharField()
    projected_monthly = serializers.DecimalField(max_digits=16, decimal_places=2)
    realized_monthly = serializers.DecimalField(max_digits=16, decimal_places=2)
    open_monthly = serializers.DecimalField(max_digits=16, decimal_places=2)
    findings = StatementFindingSerializer(many=True)


class StatementSerializer(serializers.Serializer):
    period = serializers.CharField()
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    currency = serializers.CharField()
    totals = SavingTotalsSerializer()
    rows = StatementRowSerializer(many=True)


def statement_csv(statement: dict[str, Any]) -> HttpResponse:
    response = HttpResponse(
        savings_statement_csv(statement), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = (
        f'attachment; filename="frameops-savings-{statement["period"]}.csv"'
    )
    return response


class SavingsStatementApi(APIView):
    """``GET /api/v1/savings/statement?period=YYYY-MM``: per team and pattern, the month's
    projected, realized and open savings with the findings behind each row (what a manager
    hands to finance); ``format=csv`` for a spreadsheet."""

    required_scopes = ANY_READ

    @extend_schema(
        parameters=[
            OpenApiParameter("period", OpenApiTypes.STR, required=True,
                             description="The month, YYYY-MM."),
            OpenApiParameter("format", OpenApiTypes.STR, enum=["json", "csv"]),
        ],
        responses=StatementSerializer,
    )  # fmt: skip
    def get(self, request: Request) -> Any:
        period = request.query_params.get("period")
        if not period:
            raise serializers.ValidationError({"period": ["required: the month as YYYY-MM"]})
        findings, _ = _visible(request)
        try:
            statement = savings_statement(findings, period=period)
        except ValueError as exc:
            raise serializers.ValidationError({"period": [str(exc)]}) from exc
        if request.query_params.get("format") == "csv":
            return statement_csv(statement)
        return Response(StatementSerializer(statement).data)
