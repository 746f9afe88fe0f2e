"""API v1 endpoints of the foundation: who am I, teams, the GPU model catalog."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from finops.accounts.models import ApiKey, Scope, Team
from finops.api.params import ZonedDateTimeField
from finops.api.permissions import request_scopes, request_teams
from finops.fleet.models import GpuModel, Node
from finops.pricing.selectors import price_resolve

ANY_READ = (Scope.READ, Scope.BILLING_READ)


class WhoAmIApi(APIView):
    """What the caller is, its scopes and team restriction: for checking a key."""

    required_scopes = tuple(Scope.values)

    class OutputSerializer(serializers.Serializer):
        kind = serializers.CharField()
        name = serializers.CharField()
        scopes = serializers.ListField(child=serializers.CharField())
        team = serializers.CharField(allow_null=True)

    @extend_schema(responses=OutputSerializer)
    def get(self, request: Request) -> Response:
        if isinstance(request.auth, ApiKey):
            key = request.auth
            data = {
                "kind": "api_key",
                "name": f"{key.name} ({key.prefix}…)",
                "scopes": sorted(key.scopes),
                "team": key.team.slug if key.team_id else None,
            }
        else:
            data = {
                "kind": "user",
                "name": request.user.get_username(),
                "scopes": sorted(request_scopes(request)),
                "team": None,
            }
        return Response(self.OutputSerializer(data).data)


class TeamOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = Team
        fields = ["slug", "name", "currency", "monthly_budget", "created_at"]


class TeamPageSerializer(serializers.Serializer):
    results = TeamOutputSerializer(many=True)


class TeamListApi(APIView):
    required_scopes = ANY_READ

    @extend_schema(operation_id="teams_list", responses=TeamPageSerializer)
    def get(self, request: Request) -> Response:
        teams = request_teams(request)[0].order_by("slug")
        return Response({"results": TeamOutputSerializer(teams, many=True).data})


class TeamDetailApi(APIView):
    required_scopes = ANY_READ

    @extend_schema(responses=TeamOutputSerializer)
    def get(self, request: Request, slug: str) -> Response:
        # A team the caller may not see is indistinguishable from one that does not exist.
        team = get_object_or_404(request_teams(request)[0], slug=slug)
        return Response(TeamOutputSerializer(team).data)


class GpuModelListApi(APIView):
    required_scopes = ANY_READ

    class OutputSerializer(serializers.ModelSerializer):
        class Meta:
            model = GpuModel
            fields = [
                "name",
                "vendor",
                "architecture",
                "vram_bytes",
                "memory_type",
                "bf16_dense_tflops",
                "mem_bandwidth_gb_per_s",
                "tdp_w",
                "pcie_gen",
                "nvlink",
                "sources",
                "notes",
            ]

    class PageSerializer(serializers.Serializer):
        results = serializers.ListField(child=serializers.DictField())

    @extend_schema(responses=PageSerializer)
    def get(self, request: Request) -> Response:
        models = GpuModel.objects.order_by("name")
        return Response({"results": self.OutputSerializer(models, many=True).data})


class PriceResolveApi(APIView):
    """``GET /api/v1/pricing/resolve?node=HOSTNAME&at=RFC3339``: the price per GPU-hour that
    applies to a node at a time, and why."""

    required_scopes = ANY_READ
    may_404 = True  # an unknown node

    class InputSerializer(serializers.Serializer):
        node = serializers.CharField(max_length=255)
        at = ZonedDateTimeField(required=False, max_future=None)

    @extend_schema(parameters=[InputSerializer], responses=OpenApiTypes.OBJECT)
    def get(self, request: Request) -> Response:
        params = self.InputSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        node = get_object_or_404(
            Node.objects.select_related("site"), hostname=params.validated_data["node"]
        )
        at = params.validated_data.get("at") or timezone.now()
        resolved = price_resolve(node=node, at=at)
        return Response({"node": node.hostname, "at": at.isoformat(), **resolved.as_json()})
