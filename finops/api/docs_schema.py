"""Serializers that describe request and response bodies in the OpenAPI schema (the views
build these bodies themselves; these say their shape, with types, bounds and nullability)."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter
from rest_framework import serializers

from collectors.records import GPU_MEASUREMENTS
from finops.costing.models import Basis
from finops.costing.selectors import AGGREGATES, IDLE_POLICIES, STEPS
from finops.jobs.models import JobStatus

TIME_BOUNDS = "RFC 3339 with a zone (Z or an offset), from 2000-01-01 to 2100-01-01."


class IngestErrorSerializer(serializers.Serializer):
    line = serializers.IntegerField(help_text="Line (NDJSON) or position (array), from 1.")
    field = serializers.CharField()
    message = serializers.CharField()


class IngestResultSerializer(serializers.Serializer):
    accepted = serializers.IntegerField(min_value=0)
    duplicate = serializers.IntegerField(min_value=0, help_text="Already stored: not again.")
    rejected = serializers.IntegerField(min_value=0)
    errors = IngestErrorSerializer(many=True, help_text="The first 100 rejected lines.")
    errors_truncated = serializers.IntegerField(required=False, min_value=1)


def _measurements(spec: dict[str, tuple[bool, float, float]]) -> dict[str, serializers.Field]:
    """Schema fields for the measurements the ingest path validates, with its bounds."""
    return {
        name: (serializers.IntegerField if integer else serializers.FloatField)(
            required=False, allow_null=True, min_value=low, max_value=high
        )
        for name, (integer, low, high) in spec.items()
    }


# One GPU sample (the public contract), its bounds those of ``collectors.records``.
GpuSampleInSerializer = type(
    "GpuSampleInSerializer",
    (serializers.Serializer,),
    {
        "__doc__": "One GPU sample (the public contract); docs/telemetry.md lists every bound.",
        "__module__": __name__,
        "gpu_uuid": serializers.CharField(max_length=96),
        "ts": serializers.DateTimeField(help_text="RFC 3339 with a zone; not 5 min in the future."),
        **_measurements(GPU_MEASUREMENTS),
    },
)


class NodeGpuOutSerializer(serializers.Serializer):
    uuid = serializers.CharField()
    index = serializers.IntegerField()
    model = serializers.CharField(allow_null=True, help_text="Catalog name; null: unknown.")
    reported_name = serializers.CharField()


class NodeStorageOutSerializer(serializers.Serializer):
    name = serializers.CharField()
    kind = serializers.CharField()
    volume_type = serializers.CharField()


class NodeOutputSerializer(serializers.Serializer):
    hostname = serializers.CharField()
    created = serializers.BooleanField()
    instance_type = serializers.CharField()
    pricing_model = serializers.CharField()
    interconnect = serializers.CharField()
    storage = NodeStorageOutSerializer(many=True)
    gpus = NodeGpuOutSerializer(many=True)
    warnings = serializers.ListField(child=serializers.CharField(), required=False)


class AllocationRowSerializer(serializers.Serializer):
    name = serializers.CharField(help_text="The aggregate's values, comma-joined; `__idle__`, "
                                 "`__unallocated__`, `__none__`.")  # fmt: skip
    gpu_hours = serializers.DecimalField(max_digits=20, decimal_places=4)
    unpriced_gpu_hours = serializers.DecimalField(max_digits=20, decimal_places=4)
    usage_assumed_gpu_hours = serializers.DecimalField(max_digits=20, decimal_places=4)
    gpu_cost = serializers.DecimalField(max_digits=20, decimal_places=2)
    idle_cost = serializers.DecimalField(max_digits=20, decimal_places=2)
    storage_cost = serializers.DecimalField(max_digits=20, decimal_places=2)
    energy_cost = serializers.DecimalField(max_digits=20, decimal_places=2)
    waste_cost = serializers.DecimalField(max_digits=20, decimal_places=2)
    regeneration_cost = serializers.DecimalField(max_digits=20, decimal_places=2)
    total_cost = serializers.DecimalField(max_digits=20, decimal_places=2)
    generated_seconds = serializers.FloatField(allow_null=True)
    usable_seconds = serializers.FloatField(allow_null=True)
    cost_per_usable_second = serializers.DecimalField(
        max_digits=20, decimal_places=2, allow_null=True
    )


class AllocationStepSerializer(serializers.Serializer):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    rows = AllocationRowSerializer(many=True)


class WindowSerializer(serializers.Serializer):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()


class AllocationReportSerializer(serializers.Serializer):
    currency = serializers.CharField()
    warnings = serializers.ListField(child=serializers.CharField())
    window = WindowSerializer()
    aggregate = serializers.ListField(child=serializers.CharField())
    step = serializers.CharField()
    idle = serializers.CharField()
    basis = serializers.CharField()
    steps = AllocationStepSerializer(many=True)


class InvoiceLineSerializer(serializers.Serializer):
    model = serializers.CharField()
    project = serializers.CharField()
    gpu_model = serializers.CharField()
    component = serializers.CharField()
    quantity = serializers.DecimalField(max_digits=20, decimal_places=4)
    unit = serializers.CharField()
    unit_price = serializers.DecimalField(max_digits=20, decimal_places=4, allow_null=True)
    total = serializers.DecimalField(max_digits=20, decimal_places=2)
    unpriced = serializers.BooleanField()


class InvoiceSerializer(serializers.Serializer):
    team = serializers.CharField()
    period = serializers.CharField()
    period_start = serializers.DateTimeField()
    period_end = serializers.DateTimeField()
    currency = serializers.CharField()
    lines = InvoiceLineSerializer(many=True)
    total = serializers.DecimalField(max_digits=20, decimal_places=2)
    unpriced_gpu_hours = serializers.DecimalField(max_digits=20, decimal_places=4)
    warnings = serializers.ListField(child=serializers.CharField())


def _enum(
    name: str, values: list[str] | tuple[str, ...], default: str | None, text: str
) -> OpenApiParameter:
    extra = {"default": default} if default is not None else {}
    return OpenApiParameter(name, OpenApiTypes.STR, enum=list(values), description=text, **extra)


ALLOCATION_PARAMETERS = [
    OpenApiParameter(
        "window",
        OpenApiTypes.STR,
        default="7d",
        description="`7d` / `24h` (trailing, at most 366 days), `today`, `yesterday`, "
        f"`lastweek`, `thismonth`, `monthtodate`, `lastmonth`, or `START,END`: {TIME_BOUNDS}",
    ),
    OpenApiParameter(
        "aggregate",
        OpenApiTypes.STR,
        default="team",
        description=f"One or more of {', '.join(AGGREGATES)}, comma-combined.",
    ),
    _enum("step", list(STEPS), "window", "`1h` steps for windows of at most 31 days."),
    _enum("idle", IDLE_POLICIES, "separate", "Idle as its own row, shared by cost, or hidden."),
    _enum("basis", Basis.values, "allocation", "Charge held time, or used time plus waste."),
    _enum("share_idle_by", ("fleet", "node"), "fleet", "With idle=share: the scope."),
    OpenApiParameter(
        "team",
        OpenApiTypes.STR,
        description="Team slugs, comma-separated; a team the caller may not see is a 404.",
    ),
]
FOCUS_PARAMETERS = [
    OpenApiParameter("start", OpenApiTypes.DATETIME, required=True, description=TIME_BOUNDS),
    OpenApiParameter(
        "end",
        OpenApiTypes.DATETIME,
        required=True,
        description="After start, at most 366 days later.",
    ),
    _enum(
        "format",
        ("csv", "json", "parquet"),
        "csv",
        "FOCUS rows as CSV, a JSON array, or one typed Parquet file (at most 31 days).",
    ),
    OpenApiParameter(
        "If-None-Match",
        OpenApiTypes.STR,
        OpenApiParameter.HEADER,
        description="The ETag of an earlier export: 304 when nothing changed.",
    ),
]
INVOICE_PARAMETERS = [
    OpenApiParameter(
        "period",
        OpenApiTypes.STR,
        required=True,
        pattern=r"^\d{4}-\d{2}$",
        description="The month, YYYY-MM, from 2000-01 to 2099-11.",
    ),
    _enum("format", ("json", "csv"), "json", "The invoice as JSON or a CSV attachment."),
]
JOB_LIST_PARAMETERS = [
    OpenApiParameter("team", OpenApiTypes.STR, description="A team slug (404 if not visible)."),
    _enum("status", JobStatus.values, None, "Only jobs in this status."),
    OpenApiParameter(
        "since", OpenApiTypes.DATETIME, description=f"Started at or after. {TIME_BOUNDS}"
    ),
    OpenApiParameter("until", OpenApiTypes.DATETIME, description=f"Started before. {TIME_BOUNDS}"),
    _enum("usable", ("true", "false"), None, "Only jobs judged usable (or not)."),
    OpenApiParameter("cursor", OpenApiTypes.STR, description="From a page's `next`/`previous`."),
    OpenApiParameter("page_size", OpenApiTypes.INT, description="1 to 1000 (default 100)."),
]
