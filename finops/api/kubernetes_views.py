"""Kubernetes attribution's configuration: which namespace or pod label belongs to which
team and project (admins write, callers who see every team read), and the namespaces
whose GPU time no mapping names yet."""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from finops.accounts.models import ApiKey, Scope, Team
from finops.accounts.selectors import user_is_admin
from finops.api.permissions import request_teams
from finops.jobs.models import KubernetesMapping, KubernetesUnmapped


class MappingSerializer(serializers.ModelSerializer):
    team = serializers.SlugRelatedField(slug_field="slug", queryset=Team.objects.all())

    class Meta:
        model = KubernetesMapping
        fields = ["id", "namespace", "pod_label", "pod_label_value", "team", "project"]

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        namespace, label = data.get("namespace", ""), data.get("pod_label", "")
        if bool(namespace) == bool(label):
            raise serializers.ValidationError(
                {"namespace": "give a namespace, or a pod_label (with pod_label_value), not both"}
            )
        if label and not data.get("pod_label_value"):
            raise serializers.ValidationError({"pod_label_value": "is required with pod_label"})
        return data


class UnmappedSerializer(serializers.ModelSerializer):
    gpu_hours = serializers.SerializerMethodField()

    class Meta:
        model = KubernetesUnmapped
        fields = ["namespace", "pods", "gpu_hours", "first_seen_at", "last_seen_at"]

    def get_gpu_hours(self, obj: KubernetesUnmapped) -> float:
        return round(obj.gpu_seconds / 3600, 3)


class MappingsResultSerializer(serializers.Serializer):
    results = MappingSerializer(many=True)


class UnmappedResultSerializer(serializers.Serializer):
    results = UnmappedSerializer(many=True)


def _fleet_reader(request: Request) -> None:
    if not request_teams(request)[1]:
        raise exceptions.PermissionDenied("Kubernetes mappings are fleet-wide: for admins.")


class KubernetesMappingListApi(APIView):
    """``GET`` the mappings; ``POST {"namespace": "render", "team": "studio-a",
    "project": "trailer"}`` or ``{"pod_label": "team", "pod_label_value": "vfx", "team":
    ...}`` (admins, signed in)."""

    required_scopes = (Scope.READ, Scope.BILLING_READ)

    @extend_schema(operation_id="kubernetes_mappings_list", responses=MappingsResultSerializer)
    def get(self, request: Request) -> Response:
        _fleet_reader(request)
        rows = KubernetesMapping.objects.select_related("team").order_by("namespace", "pod_label")
        return Response({"results": MappingSerializer(rows, many=True).data})

    @extend_schema(
        operation_id="kubernetes_mappings_create",
        request=MappingSerializer,
        responses=MappingSerializer,
    )
    def post(self, request: Request) -> Response:
        if isinstance(request.auth, ApiKey) or not user_is_admin(user=request.user):
            raise exceptions.PermissionDenied("Admins (signed in) map namespaces to teams.")
        serializer = MappingSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            mapping = serializer.save()
        except IntegrityError:
            raise serializers.ValidationError(
                {"namespace": "that namespace or pod label is mapped already"}
            ) from None
        return Response(MappingSerializer(mapping).data, status=status.HTTP_201_CREATED)


class KubernetesUnmappedApi(APIView):
    """``GET``: namespaces whose pods held GPUs with no mapping, most GPU time first."""

    required_scopes = (Scope.READ, Scope.BILLING_READ)

    @extend_schema(operation_id="kubernetes_unmapped_list", responses=UnmappedResultSerializer)
    def get(self, request: Request) -> Response:
        _fleet_reader(request)
        rows = KubernetesUnmapped.objects.order_by("-gpu_seconds")[:500]
        return Response({"results": UnmappedSerializer(rows, many=True).data})
