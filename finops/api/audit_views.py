"""``GET /api/v1/audit``: the audit trail (``finops.ops.audit``), for admins."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from auditlog.models import LogEntry
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from finops.accounts.models import ApiKey, Scope
from finops.accounts.selectors import user_is_admin
from finops.api.pagination import cursor_pagination, page_serializer
from finops.api.params import ParameterError, as_validation_error, query_choice, query_time
from finops.ops.audit import AUDITED

ACTIONS = {value: str(label) for value, label in LogEntry.Action.choices}
OBJECT_TYPES = sorted(label.lower() for label in AUDITED)


class AuditEntrySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    at = serializers.DateTimeField(source="timestamp")
    actor = serializers.CharField(
        allow_null=True, help_text="Username; null for a command or task."
    )
    remote_addr = serializers.CharField(allow_null=True)
    action = serializers.SerializerMethodField()
    object_type = serializers.SerializerMethodField()
    object_id = serializers.CharField(source="object_pk")
    object = serializers.CharField(source="object_repr")
    changes = serializers.JSONField(
        source="changes_dict", help_text="Field name: [before, after], as text."
    )

    def get_action(self, entry: LogEntry) -> str:
        return ACTIONS.get(entry.action, str(entry.action))

    def get_object_type(self, entry: LogEntry) -> str:
        return f"{entry.content_type.app_label}.{entry.content_type.model}"

    def to_representation(self, entry: LogEntry) -> dict[str, Any]:
        data = super().to_representation(entry)
        data["actor"] = entry.actor.get_username() if entry.actor else None
        return data


AuditPageSerializer = page_serializer("AuditPage", AuditEntrySerializer)
AuditPagination = cursor_pagination(ordering="-timestamp", page_size=200, max_page_size=5000)
CSV_COLUMNS = ["id", "at", "actor", "remote_addr", "action", "object_type", "object_id",
               "object", "changes"]  # fmt: skip


class AuditApi(APIView):
    """Who changed what and when: prices and overrides, alert rules, silences, channels,
    finding status, API keys, memberships, Kubernetes mappings and report subscriptions.
    Admins only (signed in); newest first, paged; ``format=csv`` exports every matching
    entry."""

    required_scopes = (Scope.READ,)

    @extend_schema(
        parameters=[
            OpenApiParameter("since", OpenApiTypes.DATETIME, description="From (RFC 3339)."),
            OpenApiParameter("until", OpenApiTypes.DATETIME, description="Before (RFC 3339)."),
            OpenApiParameter("object_type", str, enum=OBJECT_TYPES),
            OpenApiParameter("actor", str, description="Username."),
            OpenApiParameter("format", str, enum=["json", "csv"]),
        ],
        responses=AuditPageSerializer,
    )
    def get(self, request: Request) -> Response | HttpResponse:
        if isinstance(request.auth, ApiKey) or not user_is_admin(user=request.user):
            raise exceptions.PermissionDenied("The audit trail is for admins (signed in).")
        params = request.query_params
        try:
            since, until = query_time(params, "since"), query_time(params, "until")
            object_type = query_choice(params, "object_type", OBJECT_TYPES)
            output = query_choice(params, "format", ["json", "csv"]) or "json"
        except ParameterError as exc:
            raise as_validation_error(exc) from None
        entries = LogEntry.objects.select_related("actor", "content_type")
        if since is not None:
            entries = entries.filter(timestamp__gte=since)
        if until is not None:
            entries = entries.filter(timestamp__lt=until)
        if object_type is not None:
            app_label, model = object_type.split(".")
            entries = entries.filter(content_type__app_label=app_label, content_type__model=model)
        if "actor" in params:
            entries = entries.filter(actor__username=params["actor"])
        if output == "csv":
            return _audit_csv(entries.order_by("-timestamp", "-pk"))
        paginator = AuditPagination()
        page = paginator.paginate_queryset(entries, request, view=self)
        return paginator.get_paginated_response(AuditEntrySerializer(page, many=True).data)


def _audit_csv(entries: Any) -> HttpResponse:
    out = io.StringIO()
    writer = csv.DictWriter(out, CSV_COLUMNS)
    writer.writeheader()
    for entry in entries.iterator(chunk_size=2000):
        row = AuditEntrySerializer(entry).data
        row["changes"] = json.dumps(row["changes"], sort_keys=True)
        writer.writerow(row)
    response = HttpResponse(out.getvalue(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="frameops-audit.csv"'
    return response
