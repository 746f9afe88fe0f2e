"""Billing reads: the allocation report (``billing:read`` or ``read``)."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

from django.http import HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from finops.accounts.models import Scope
from finops.api.docs_schema import (
    ALLOCATION_PARAMETERS,
    FOCUS_PARAMETERS,
    INVOICE_PARAMETERS,
    AllocationReportSerializer,
    InvoiceSerializer,
)
from finops.api.params import (
    ParameterError,
    as_validation_error,
    month_parse,
    query_choice,
    time_parse,
)
from finops.api.permissions import request_teams
from finops.costing.exports import (
    focus_csv,
    focus_entries,
    focus_etag,
    focus_json,
    focus_parquet,
    invoice,
)
from finops.costing.selectors import MAX_WINDOW, AllocationQuery, QueryError, allocation_report


class AllocationApi(APIView):
    """``GET /api/v1/allocation?window=7d&aggregate=team&step=1d&idle=separate&basis=allocation``"""

    required_scopes = (Scope.BILLING_READ, Scope.READ)
    may_404 = True  # ?team= of a team the caller may not see

    @extend_schema(parameters=ALLOCATION_PARAMETERS, responses=AllocationReportSerializer)
    def get(self, request: Request) -> Response:
        try:
            query = AllocationQuery.from_params(request.query_params)
        except QueryError as exc:
            raise serializers.ValidationError({exc.parameter: [exc.message]}) from exc
        teams, all_teams = request_teams(request)
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


MAX_PARQUET_WINDOW = timedelta(days=31)


class FocusExportApi(APIView):
    """``GET /api/v1/export/focus?start=&end=&format=csv|json|parquet``: FOCUS 1.2 rows,
    streamed (Parquet as one typed file)."""

    required_scopes = (Scope.BILLING_READ,)

    @extend_schema(
        parameters=FOCUS_PARAMETERS,
        responses={
            (200, "text/csv"): OpenApiTypes.STR,
            (200, "application/json"): {"type": "array", "items": {"type": "object"}},
            304: OpenApiResponse(description="Not modified since the ETag in If-None-Match."),
        },
    )
    def get(self, request: Request) -> HttpResponseBase:
        params = request.query_params
        missing = [name for name in ("start", "end") if not params.get(name)]
        if missing:
            errors = {name: ["is required (RFC 3339)"] for name in missing}
            raise serializers.ValidationError(errors)
        try:
            start = time_parse(params["start"], parameter="start")
            end = time_parse(params["end"], parameter="end")
            fmt = query_choice(params, "format", ("csv", "json", "parquet")) or "csv"
        except ParameterError as exc:
            raise as_validation_error(exc) from exc
        if end <= start:
            raise serializers.ValidationError({"end": ["must be after start"]})
        if end - start > MAX_WINDOW:
            raise serializers.ValidationError(
                {"end": [f"at most {MAX_WINDOW.days} days after start"]}
            )
        if fmt == "parquet" and end - start > MAX_PARQUET_WINDOW:
            raise serializers.ValidationError({"end": [
                f"at most {MAX_PARQUET_WINDOW.days} days after start for format=parquet (one "
                "file, built whole; the daily FOCUS exports cover longer ranges)"
            ]})  # fmt: skip
        teams, all_teams = request_teams(request)
        entries = focus_entries(start=start, end=end, teams=teams, all_teams=all_teams)
        etag = f'"{focus_etag(entries)}"'
        if request.headers.get("If-None-Match") == etag:
            return HttpResponse(status=304, headers={"ETag": etag})
        if fmt == "csv":
            response = StreamingHttpResponse(
                focus_csv(entries), content_type="text/csv; charset=utf-8"
            )
            response["Content-Disposition"] = (
                f'attachment; filename="focus-{start:%Y%m%d}-{end:%Y%m%d}.csv"'
            )
        elif fmt == "parquet":
            response = HttpResponse(
                focus_parquet(entries), content_type="application/vnd.apache.parquet"
            )
            response["Content-Disposition"] = (
                f'attachment; filename="focus-{start:%Y%m%d}-{end:%Y%m%d}.parquet"'
            )
        else:
            response = StreamingHttpResponse(focus_json(entries), content_type="application/json")
        response["ETag"] = etag
        return response


class InvoiceApi(APIView):
    """``GET /api/v1/teams/{slug}/invoice?period=YYYY-MM[&format=csv]``"""

    required_scopes = (Scope.BILLING_READ,)

    @extend_schema(
        parameters=INVOICE_PARAMETERS,
        responses={
            (200, "application/json"): InvoiceSerializer,
            (200, "text/csv"): OpenApiTypes.STR,
        },
    )
    def get(self, request: Request, slug: str) -> HttpResponseBase:
        teams, _ = request_teams(request)
        team = get_object_or_404(teams, slug=slug)
        period = request.query_params.get("period", "")
        try:
            period_start = month_parse(period, parameter="period")
            query_choice(request.query_params, "format", ("csv", "json"))
        except ParameterError as exc:
            raise as_validation_error(exc) from exc
        body = invoice(team=team, period_start=period_start)
        if request.query_params.get("format") == "csv":
            out = io.StringIO()
            writer = csv.writer(out)
            columns = [
                "model",
                "project",
                "gpu_model",
                "component",
                "quantity",
                "unit",
                "unit_price",
                "total",
            ]
            writer.writerow(columns)
            for line in body["lines"]:
                writer.writerow([line[c] for c in columns])
            writer.writerow(["total", "", "", "", "", "", "", body["total"]])
            response = HttpResponse(out.getvalue(), content_type="text/csv; charset=utf-8")
            response["Content-Disposition"] = f'attachment; filename="invoice-{slug}-{period}.csv"'
            return response
        return Response(body)
