"""Job events as render farms, the runner and the simulated studio send them: validated
the same way whether they come one a request (``POST /api/v1/jobs``), in bulk
(``POST /api/v1/jobs/bulk``), from a file (``manage.py import_jobs``) or from the simulated
studio, and recorded by ``finops.jobs.services``."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from finops.accounts.models import Team
from finops.jobs.models import JobStatus
from finops.jobs.services import AllocationIn, BulkJobResult, JobEvent, jobs_record_bulk
from finops.validation import FiniteFloatField, ZonedDateTimeField

INT4_MAX = 2**31 - 1  # PositiveIntegerField
INT8_MAX = 2**63 - 1  # BigIntegerField


class GpuIn(serializers.Serializer):
    uuid = serializers.CharField(max_length=96)
    start = ZonedDateTimeField()
    end = ZonedDateTimeField(required=False, allow_null=True)
    vram_bytes = serializers.IntegerField(
        min_value=0, max_value=INT8_MAX, required=False, allow_null=True
    )


class JobEventSerializer(serializers.Serializer):
    source = serializers.CharField(max_length=100)
    external_id = serializers.CharField(max_length=200)
    team = serializers.SlugField(max_length=64)
    status = serializers.ChoiceField(choices=JobStatus.choices)
    project = serializers.CharField(max_length=200, required=False, allow_blank=True)
    clip_id = serializers.CharField(max_length=200, required=False, allow_null=True)
    model = serializers.CharField(max_length=200, required=False, allow_blank=True)
    model_version = serializers.CharField(max_length=64, required=False, allow_blank=True)
    queued_at = ZonedDateTimeField(required=False, allow_null=True)
    started_at = ZonedDateTimeField(required=False, allow_null=True)
    finished_at = ZonedDateTimeField(required=False, allow_null=True)
    frames = serializers.IntegerField(
        min_value=0, max_value=INT4_MAX, required=False, allow_null=True
    )
    fps = FiniteFloatField(min_value=0.001, max_value=10_000, required=False, allow_null=True)
    width = serializers.IntegerField(
        min_value=1, max_value=INT4_MAX, required=False, allow_null=True
    )
    height = serializers.IntegerField(
        min_value=1, max_value=INT4_MAX, required=False, allow_null=True
    )
    steps = serializers.IntegerField(
        min_value=0, max_value=INT4_MAX, required=False, allow_null=True
    )
    usable = serializers.BooleanField(required=False, allow_null=True)
    quality_score = FiniteFloatField(min_value=0, max_value=1, required=False, allow_null=True)
    target_seconds = FiniteFloatField(
        min_value=0.001, max_value=1e7, required=False, allow_null=True
    )
    peak_vram_bytes = serializers.IntegerField(
        min_value=0, max_value=INT8_MAX, required=False, allow_null=True
    )
    step_time_s = FiniteFloatField(min_value=0, max_value=1e7, required=False, allow_null=True)
    cache_hit_rate = FiniteFloatField(min_value=0, max_value=1, required=False, allow_null=True)
    io_read_bytes = serializers.IntegerField(
        min_value=0, max_value=INT8_MAX, required=False, allow_null=True
    )
    io_write_bytes = serializers.IntegerField(
        min_value=0, max_value=INT8_MAX, required=False, allow_null=True
    )
    compute_device = serializers.CharField(max_length=200, required=False, allow_blank=True)
    compute_seconds = FiniteFloatField(min_value=0, max_value=1e9, required=False, allow_null=True)
    error = serializers.CharField(
        max_length=10_000, required=False, allow_null=True, allow_blank=True
    )
    gpus = serializers.ListField(child=serializers.DictField(), required=False, max_length=256)

    def validate_gpus(self, value: list[dict[str, Any]]) -> list[AllocationIn]:
        out, errors = [], {}
        gpu = GpuIn()  # one instance validates every entry (cheaper than many)
        for position, item in enumerate(value):
            try:
                out.append(AllocationIn(**gpu.run_validation(item)))
            except serializers.ValidationError as exc:
                errors[str(position)] = exc.detail
        if errors:
            raise serializers.ValidationError(errors)
        return out


def job_event(*, line: int, team: Team, data: dict[str, Any]) -> JobEvent:
    """A validated event body (``team`` already resolved) as ``job_record``'s arguments."""
    data = dict(data)
    data.pop("team", None)
    if "model" in data:
        data["model_name"] = data.pop("model")
    if data.get("error") is None:
        data.pop("error", None)
    return JobEvent(
        line=line, team=team, source=data.pop("source"), external_id=data.pop("external_id"),
        status=data.pop("status"), clip_id=data.pop("clip_id", None),
        target_seconds=data.pop("target_seconds", None), allocations=data.pop("gpus", None),
        fields=data,
    )  # fmt: skip


def _flat_errors(detail: Any, prefix: str = "") -> list[tuple[str, str]]:
    """DRF's nested error detail as (field, message) pairs: ``gpus[0].uuid``."""
    if isinstance(detail, dict):
        out = []
        for key, value in detail.items():
            name = (
                f"{prefix}[{key}]"
                if prefix and str(key).isdigit()
                else (f"{prefix}.{key}" if prefix else str(key))
            )
            out += _flat_errors(value, name)
        return out
    if isinstance(detail, list) and detail and not isinstance(detail[0], dict | list):
        return [(prefix or "(event)", "; ".join(str(m) for m in detail))]
    if isinstance(detail, list):
        return [pair for position, value in enumerate(detail)
                for pair in _flat_errors(value, f"{prefix}[{position}]")]  # fmt: skip
    return [(prefix or "(event)", str(detail))]


def job_events_validate(
    items: list[tuple[int, Any]], *, key_team_id: int | None = None
) -> tuple[list[JobEvent], BulkJobResult]:
    """Each line of a batch validated as ``POST /api/v1/jobs`` validates one event: the
    valid ones as events, the others reported by line and field."""
    from collectors.records import RecordError

    result = BulkJobResult()
    checker = JobEventSerializer()  # one instance validates every line
    valid: list[tuple[int, dict[str, Any]]] = []
    for line, item in items:
        if isinstance(item, RecordError):
            result.errors.append({"line": line, "field": item.field, "message": item.message})
            continue
        if not isinstance(item, dict):
            kind = type(item).__name__
            result.errors.append(
                {"line": line, "field": "(line)", "message": f"expected a JSON object, got {kind}"}
            )
            continue
        try:
            valid.append((line, checker.run_validation(item)))
        except serializers.ValidationError as exc:
            result.errors += [{"line": line, "field": f, "message": m}
                              for f, m in _flat_errors(exc.detail)]  # fmt: skip
    teams = {t.slug: t for t in Team.objects.filter(slug__in={d["team"] for _, d in valid})}
    events = []
    for line, data in valid:
        team = teams.get(data["team"])
        if team is None:
            result.errors.append({"line": line, "field": "team", "message": "no such team"})
        elif key_team_id not in (None, team.pk):
            message = "this key may only report jobs of its own team"
            result.errors.append({"line": line, "field": "team", "message": message})
        else:
            events.append(job_event(line=line, team=team, data=data))
    return events, result


def jobs_import_batch(
    items: list[tuple[int, Any]], *, key_team_id: int | None = None
) -> BulkJobResult:
    """Validate and record one batch; the validation's refusals and the recording's are
    reported together, by line."""
    events, refused = job_events_validate(items, key_team_id=key_team_id)
    result = jobs_record_bulk(events) if events else BulkJobResult()
    result.errors = sorted(refused.errors + result.errors, key=lambda e: e["line"])
    return result
