"""Ingest endpoints: node registration and telemetry batches (scope ``ingest:write``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from finops.accounts.models import Scope
from finops.api.docs_schema import (
    GpuSampleInSerializer,
    IngestResultSerializer,
    NodeOutputSerializer,
)
from finops.api.errors import error_body
from finops.fleet.models import Interconnect, PricingModel, Provider, StorageKind
from finops.fleet.services import GpuRegistration, StorageRegistration, node_register
from finops.telemetry.ingest import (
    BatchError,
    IngestResult,
    gpu_minutes_ingest,
    gpu_samples_ingest,
    storage_samples_ingest,
)

T = TypeVar("T")


def _each_item(
    items: list[dict[str, Any]], serializer: type[Any], make: Callable[..., T]
) -> list[T]:
    """Each item of a nested list validated by ``serializer`` (unknown fields refused), as
    ``make(**fields)``; every item's errors by position in one 400."""
    errors: dict[str, Any] = {}
    made = []
    for position, item in enumerate(items):
        checked = serializer(data=item)
        if not checked.is_valid():
            errors[str(position)] = checked.errors
            continue
        unknown = sorted(set(item) - set(checked.fields))
        if unknown:
            errors[str(position)] = {unknown[0]: ["Unknown field."]}
            continue
        made.append(make(**checked.validated_data))
    if errors:
        raise serializers.ValidationError(errors)
    return made


class NodeRegisterApi(APIView):
    required_scopes = (Scope.INGEST_WRITE,)

    class GpuSerializer(serializers.Serializer):
        uuid = serializers.CharField(max_length=96)
        index = serializers.IntegerField(min_value=0, max_value=255)
        model = serializers.CharField(max_length=128, required=False, allow_blank=True, default="")
        mem_total_bytes = serializers.IntegerField(min_value=1, required=False, allow_null=True)
        mig_parent_uuid = serializers.CharField(max_length=96, required=False, allow_null=True)
        mig_profile = serializers.CharField(
            max_length=32, required=False, allow_blank=True, default=""
        )
        mig_instance_id = serializers.IntegerField(min_value=0, required=False, allow_null=True)

    class StorageSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=128)
        kind = serializers.ChoiceField(choices=StorageKind.choices, required=False)
        volume_type = serializers.CharField(max_length=64, required=False, allow_blank=True)
        capacity_bytes = serializers.IntegerField(
            min_value=0, max_value=2**63 - 1, required=False, allow_null=True
        )
        filesystem = serializers.CharField(max_length=32, required=False, allow_blank=True)
        mount_point = serializers.CharField(max_length=255, required=False, allow_blank=True)

    class NodeInputSerializer(serializers.Serializer):
        hostname = serializers.CharField(max_length=255)
        site = serializers.SlugField(max_length=64)
        provider = serializers.ChoiceField(choices=Provider.choices)
        region = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
        # Omitted, these keep the node's value (a new node: on-demand, pcie, none).
        instance_type = serializers.CharField(max_length=64, required=False, allow_blank=True)
        pricing_model = serializers.ChoiceField(choices=PricingModel.choices, required=False)
        interconnect = serializers.ChoiceField(choices=Interconnect.choices, required=False)
        pcie_gen = serializers.IntegerField(
            min_value=1, max_value=7, required=False, allow_null=True
        )
        gpus = serializers.ListField(child=serializers.DictField(), max_length=1024)
        storage = serializers.ListField(
            child=serializers.DictField(),
            max_length=256,
            required=False,
        )

        def validate_storage(self, value: list[dict[str, Any]]) -> list[StorageRegistration]:
            devices = _each_item(value, NodeRegisterApi.StorageSerializer, StorageRegistration)
            names = [d.name for d in devices]
            if len(set(names)) != len(names):
                raise serializers.ValidationError("Each storage device name may appear once.")
            return devices

        def validate_gpus(self, value: list[dict[str, Any]]) -> list[GpuRegistration]:
            regs = _each_item(value, NodeRegisterApi.GpuSerializer, GpuRegistration)
            uuids = [r.uuid for r in regs]
            if len(set(uuids)) != len(uuids):
                raise serializers.ValidationError("Each GPU uuid may appear once.")
            whole = [r.index for r in regs if r.mig_parent_uuid is None]
            if len(set(whole)) != len(whole):
                raise serializers.ValidationError("Each GPU index may appear once.")
            parents = set(uuids)
            for r in regs:
                if r.mig_parent_uuid is not None and r.mig_parent_uuid not in parents:
                    raise serializers.ValidationError(
                        f"MIG parent {r.mig_parent_uuid!r} of {r.uuid!r} is not listed."
                    )
            return regs

    @extend_schema(
        request=NodeInputSerializer,
        responses={200: NodeOutputSerializer, 201: NodeOutputSerializer},
        description="Register a node and its GPUs and storage devices, idempotent by hostname: "
        "201 when it creates the node. Omitted node fields keep their values.",
    )
    def post(self, request: Request) -> Response:
        serializer = self.NodeInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        node, created = node_register(**serializer.validated_data)
        gpus = (
            node.gpus.filter(retired_at__isnull=True)
            .select_related("model")
            .order_by("index", "mig_instance_id")
        )
        body = {
            "hostname": node.hostname,
            "created": created,
            "instance_type": node.instance_type,
            "pricing_model": node.pricing_model,
            "interconnect": node.interconnect,
            "storage": [
                {"name": d.name, "kind": d.kind, "volume_type": d.volume_type}
                for d in node.storage_devices.order_by("name")
            ],
            "gpus": [
                {
                    "uuid": g.uuid,
                    "index": g.index,
                    "model": g.model.name if g.model else None,
                    "reported_name": g.reported_name,
                }
                for g in gpus
            ],
        }
        unmatched = [
            g["reported_name"] for g in body["gpus"] if g["model"] is None and g["reported_name"]
        ]
        if unmatched:
            body["warnings"] = [
                f"GPU model {name!r} is not in the catalog; add a pattern in the admin."
                for name in sorted(set(unmatched))
            ]
        return Response(body, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


def _batch_response(result: IngestResult) -> Response:
    body = result.as_json()
    if result.rejected and not (result.accepted or result.duplicate):
        return Response(error_body("No line of the batch was accepted.", **body), status=400)
    return Response(body, status=200)


class _BatchIngestApi(APIView):
    required_scopes = (Scope.INGEST_WRITE,)
    # The body is read raw: JSON array or NDJSON, optionally gzip-compressed.
    parser_classes: list[Any] = []
    service: Callable[..., IngestResult]

    @extend_schema(
        request={
            "application/x-ndjson": OpenApiTypes.STR,
            "application/json": GpuSampleInSerializer(many=True),
        },
        responses=IngestResultSerializer,
        description="A batch: a JSON array or NDJSON (one record a line), optionally gzip "
        "(Content-Encoding). Each bad line is rejected on its own (listed in `errors`); "
        "a body that cannot be read at all, or with no line accepted, is a 400.",
    )
    def post(self, request: Request) -> Response:
        try:
            result = type(self).service(
                body=request.body, content_encoding=request.headers.get("Content-Encoding", "")
            )
        except BatchError as exc:
            return Response(error_body(str(exc)), status=exc.status)
        return _batch_response(result)


class GpuSampleIngestApi(_BatchIngestApi):
    service = gpu_samples_ingest


class GpuMinuteIngestApi(_BatchIngestApi):
    """Minute rollups an agent computed itself (``--minutes``): one row per GPU-minute,
    written as an upsert by (GPU, minute); a minute sent again replaces the first."""

    service = gpu_minutes_ingest

    @extend_schema(
        request={"application/x-ndjson": OpenApiTypes.STR, "application/json": OpenApiTypes.OBJECT},
        responses=IngestResultSerializer,
        description="Minute rows, one per GPU and minute (docs/telemetry.md 'Minutes rolled up "
        "on the host'): gpu_uuid, ts at :00 seconds, covered_s and the rollup columns. NDJSON "
        "or a JSON array, optionally gzip. Each bad line is rejected on its own; a minute "
        "sent again replaces the first.",
    )
    def post(self, request: Request) -> Response:
        return super().post(request)


class StorageSampleIngestApi(_BatchIngestApi):
    service = storage_samples_ingest
