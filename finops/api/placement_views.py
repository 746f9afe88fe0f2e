"""Placement: where each team workload should run (``GET /api/v1/placement``), and the
mappings that say which video API offerings may replace an in-house model
(``/api/v1/placement/mappings``: everyone who reads sees them; admins, signed in, change
them)."""

from __future__ import annotations

from typing import Any

from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from finops.accounts.models import ApiKey, Scope, Team
from finops.accounts.selectors import user_is_admin
from finops.api.params import query_window
from finops.api.permissions import request_teams
from finops.placement.models import PlacementMapping
from finops.placement.selectors import placement
from finops.pricing.models import VideoApiOffering

READ = (Scope.READ, Scope.BILLING_READ)


class PlacementApi(APIView):
    """``GET /api/v1/placement?window=30d&team=slug``: each workload with today's measured
    cost per usable second and every GPU and video API option, cheapest first."""

    required_scopes = READ
    may_404 = True

    @extend_schema(
        parameters=[
            OpenApiParameter("window", str, description="e.g. 30d, or start,end (ISO 8601)"),
            OpenApiParameter("team", str, description="a team slug the caller may see"),
        ],
        responses={200: OpenApiTypes.OBJECT},
    )
    def get(self, request: Request) -> Response:
        start, end = query_window(request.query_params, "30d")
        teams, _ = request_teams(request)
        if "team" in request.query_params:
            slug = request.query_params["team"]
            teams = teams.filter(slug=slug)
            if not teams.exists():
                raise exceptions.NotFound(f"no team {slug} visible to this caller")
        workloads = placement(teams=teams, start=start, end=end)
        return Response({
            "window": {"start": start.isoformat(), "end": end.isoformat()},
            "currency": "USD",
            "workloads": [w.as_dict() for w in workloads],
        })  # fmt: skip


class PlacementMappingSerializer(serializers.ModelSerializer):
    offering = serializers.PrimaryKeyRelatedField(queryset=VideoApiOffering.objects.all())
    offering_name = serializers.CharField(source="offering.__str__", read_only=True)
    team = serializers.SlugRelatedField(slug_field="slug", queryset=Team.objects.all(),
                                        required=False, allow_null=True)  # fmt: skip
    resolution = serializers.RegexField(
        r"^(\d{2,5}x\d{2,5})?$", required=False, allow_blank=True,
        error_messages={"invalid": 'use "WxH", e.g. 1280x720, or leave it empty for every '
                        "resolution"},
    )  # fmt: skip

    class Meta:
        model = PlacementMapping
        fields = ["id", "model_name", "resolution", "offering", "offering_name", "team", "note",
                  "created_at"]  # fmt: skip
        read_only_fields = ["id", "created_at"]
        validators: list[Any] = []  # the duplicate is named on its field in validate()

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        same = PlacementMapping.objects.filter(
            model_name=attrs["model_name"], resolution=attrs.get("resolution", ""),
            offering=attrs["offering"], team=attrs.get("team"),
        )  # fmt: skip
        if same.exists():
            raise serializers.ValidationError({"offering": ["this mapping exists already"]})
        return attrs


def _may_write(request: Request) -> None:
    if isinstance(request.auth, ApiKey) or not user_is_admin(user=request.user):
        raise exceptions.PermissionDenied(
            "Admins, signed in, map offerings to models; everyone who reads sees the mappings."
        )


class MappingListApi(APIView):
    required_scopes = READ

    @extend_schema(responses=PlacementMappingSerializer(many=True))
    def get(self, request: Request) -> Response:
        rows = PlacementMapping.objects.select_related("offering")
        return Response(PlacementMappingSerializer(rows, many=True).data)

    @extend_schema(request=PlacementMappingSerializer, responses={201: PlacementMappingSerializer})
    def post(self, request: Request) -> Response:
        _may_write(request)
        serializer = PlacementMappingSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        mapping = serializer.save(created_by=request.user)
        return Response(PlacementMappingSerializer(mapping).data, status=status.HTTP_201_CREATED)


class MappingDetailApi(APIView):
    required_scopes = READ

    @extend_schema(responses={204: None})
    def delete(self, request: Request, pk: int) -> Response:
        _may_write(request)
        get_object_or_404(PlacementMapping, pk=pk).delete()
        return Response(status=status.HTTP_204_NO_CONTENT)
