"""Job events (``ingest:write``) and job listing (``read``)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import exceptions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from finops.accounts.models import ApiKey, Scope, Team
from finops.api.docs_schema import JOB_LIST_PARAMETERS
from finops.api.errors import error_body
from finops.api.pagination import cursor_pagination, page_serializer
from finops.api.params import (
    FiniteFloatField,
    ParameterError,
    as_validation_error,
    query_bool,
    query_choice,
    query_time,
)
from finops.api.permissions import request_teams
from finops.jobs.events import (
    GpuIn,
    JobEventSerializer,
    job_event,
    jobs_import_batch,
)
from finops.jobs.models import JobStatus, RenderJob
from finops.jobs.services import job_judge, job_record
from finops.telemetry.ingest import BatchError, decode_body, iter_batch


class JobGpuOutSerializer(serializers.Serializer):
    uuid = serializers.CharField()
    start = serializers.DateTimeField()
    end = serializers.DateTimeField(allow_null=True)
    vram_bytes = serializers.IntegerField(allow_null=True)


class JobOutputSerializer(serializers.ModelSerializer):
    team = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    clip_id = serializers.CharField(source="clip.external_id", default=None, allow_null=True)
    model = serializers.CharField(source="model_name")
    gpus = serializers.SerializerMethodField()

    class Meta:
        model = RenderJob
        fields = [
            "source", "external_id", "team", "project", "clip_id", "model", "model_version",
            "status", "queued_at", "started_at", "finished_at", "frames", "fps", "width", "height",
            "steps", "usable", "quality_score", "peak_vram_bytes", "step_time_s", "cache_hit_rate",
            "compute_device", "compute_seconds", "error", "gpus",
        ]  # fmt: skip

    @extend_schema_field(JobGpuOutSerializer(many=True))
    def get_gpus(self, job: RenderJob) -> list[dict[str, Any]]:
        return [
            {"uuid": a.gpu.uuid, "start": a.start, "end": a.end, "vram_bytes": a.vram_bytes}
            for a in job.allocations.all()
        ]


JobPageSerializer = page_serializer("JobPage", JobOutputSerializer)


class JobBulkErrorSerializer(serializers.Serializer):
    line = serializers.IntegerField(help_text="Line (NDJSON) or position (array), from 1.")
    field = serializers.CharField()
    message = serializers.CharField()


class JobBulkResultSerializer(serializers.Serializer):
    accepted = serializers.IntegerField(min_value=0, help_text="Events applied.")
    created = serializers.IntegerField(min_value=0, help_text="Jobs new to FrameOps.")
    updated = serializers.IntegerField(min_value=0, help_text="Jobs that existed before.")
    rejected = serializers.IntegerField(min_value=0, help_text="Lines refused.")
    errors = JobBulkErrorSerializer(many=True)


JobPagination = cursor_pagination(ordering="-created_at", page_size=100, max_page_size=1000)


class JobApi(APIView):
    """``POST /api/v1/jobs``: one job event. ``GET /api/v1/jobs``: jobs, newest first."""

    may_404 = True  # ?team= of a team the caller may not see

    GpuIn = GpuIn
    JobEventSerializer = JobEventSerializer

    def get_permissions(self):  # type: ignore[no-untyped-def]
        self.required_scopes = (
            (Scope.INGEST_WRITE,) if self.request.method == "POST" else (Scope.READ,)
        )
        return super().get_permissions()

    @extend_schema(
        request=JobEventSerializer,
        responses={200: JobOutputSerializer, 201: JobOutputSerializer},
        description="One job event, idempotent by source + external_id: 201 when it creates "
        "the job, 200 when it updates it. Times need a zone; docs/costing.md lists the bounds.",
    )
    def post(self, request: Request) -> Response:
        serializer = self.JobEventSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        team = Team.objects.filter(slug=data.pop("team")).first()
        if team is None:
            raise serializers.ValidationError({"team": "no such team"})
        if isinstance(request.auth, ApiKey) and request.auth.team_id not in (None, team.pk):
            raise exceptions.PermissionDenied(
                f"this key may only report jobs of team {request.auth.team.slug}"
            )
        event = job_event(line=0, team=team, data=data)
        job, created = job_record(
            source=event.source, external_id=event.external_id, team=team, status=event.status,
            clip_id=event.clip_id, target_seconds=event.target_seconds,
            allocations=event.allocations, **event.fields,
        )  # fmt: skip
        body = JobOutputSerializer(job).data
        return Response(body, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)

    @extend_schema(
        operation_id="jobs_list", parameters=JOB_LIST_PARAMETERS, responses=JobPageSerializer
    )
    def get(self, request: Request) -> Response:
        jobs = RenderJob.objects.filter(team__in=request_teams(request)[0]).select_related(
            "team", "clip"
        )
        jobs = jobs.prefetch_related("allocations__gpu")
        params = request.query_params
        if "team" in params:
            if not request_teams(request)[0].filter(slug=params["team"]).exists():
                # Another team's slug is answered like one that does not exist.
                raise exceptions.NotFound(f"no team {params['team'][:64]!r} visible to this caller")
            jobs = jobs.filter(team__slug=params["team"])
        try:
            wanted_status = query_choice(params, "status", JobStatus.values)
            since, until = query_time(params, "since"), query_time(params, "until")
            usable = query_bool(params, "usable")
        except ParameterError as exc:
            raise as_validation_error(exc) from exc
        if wanted_status is not None:
            jobs = jobs.filter(status=wanted_status)
        if since is not None:
            jobs = jobs.filter(started_at__gte=since)
        if until is not None:
            jobs = jobs.filter(started_at__lt=until)
        if usable is not None:
            jobs = jobs.filter(usable=usable)
        paginator = JobPagination()
        page = paginator.paginate_queryset(jobs, request, view=self)
        return paginator.get_paginated_response(JobOutputSerializer(page, many=True).data)


class JobDetailApi(APIView):
    """``GET`` or ``PATCH /api/v1/jobs/{source}/{external_id}``: read a job, or record a
    person's verdict (``usable``, ``quality_score``)."""

    class JudgeSerializer(serializers.Serializer):
        usable = serializers.BooleanField(allow_null=True)
        quality_score = FiniteFloatField(min_value=0, max_value=1, required=False, allow_null=True)

    def get_permissions(self):  # type: ignore[no-untyped-def]
        self.required_scopes = (
            (Scope.INGEST_WRITE,) if self.request.method == "PATCH" else (Scope.READ,)
        )
        return super().get_permissions()

    def _job(self, request: Request, source: str, external_id: str) -> RenderJob:
        return get_object_or_404(
            RenderJob.objects.filter(team__in=request_teams(request)[0]).select_related(
                "team", "clip"
            ),
            source=source,
            external_id=external_id,
        )

    @extend_schema(responses=JobOutputSerializer)
    def get(self, request: Request, source: str, external_id: str) -> Response:
        return Response(JobOutputSerializer(self._job(request, source, external_id)).data)

    @extend_schema(request=JudgeSerializer, responses=JobOutputSerializer)
    def patch(self, request: Request, source: str, external_id: str) -> Response:
        job = self._job(request, source, external_id)
        serializer = self.JudgeSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        job = job_judge(job=job, **serializer.validated_data)
        return Response(JobOutputSerializer(job).data)


class JobBulkApi(APIView):
    """``POST /api/v1/jobs/bulk``: many job events at once (render farms backfilling
    history), NDJSON or a JSON array, optionally gzip, in order. The same validation,
    idempotency and rules as ``POST /api/v1/jobs``, line by line; a refused line changes
    nothing and is listed with its number; the others are stored."""

    required_scopes = (Scope.INGEST_WRITE,)
    parser_classes: list[Any] = []

    @extend_schema(
        request={"application/x-ndjson": OpenApiTypes.STR, "application/json": OpenApiTypes.OBJECT},
        responses=JobBulkResultSerializer,
        description="Job events as POST /api/v1/jobs takes them, one a line (NDJSON) or in a "
        "JSON array, optionally gzip, at most JOBS_BULK_MAX_LINES a request. Applied in "
        "order; each bad line is refused on its own (`errors`: line, field, message); a body "
        "that cannot be read, or with no line accepted, is a 400.",
    )
    def post(self, request: Request) -> Response:
        try:
            body = decode_body(
                request.body, content_encoding=request.headers.get("Content-Encoding", "")
            )
            items = list(iter_batch(body))
        except BatchError as exc:
            return Response(error_body(str(exc)), status=exc.status)
        limit = settings.JOBS_BULK_MAX_LINES
        if len(items) > limit:
            return Response(
                error_body(f"The batch has {len(items)} events; send at most {limit} a request "
                           "(JOBS_BULK_MAX_LINES)."),
                status=413,
            )  # fmt: skip
        key_team = request.auth.team_id if isinstance(request.auth, ApiKey) else None
        result = jobs_import_batch(items, key_team_id=key_team)
        body_out = result.as_json()
        if result.rejected and not (result.created or result.updated):
            return Response(
                error_body("No event of the batch was accepted.", **body_out), status=400
            )
        return Response(body_out, status=200)
