"""Job events from render farms and the runner: idempotent by (source, external_id)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from finops.accounts.models import Team
from finops.costing.dirty import cost_windows_mark_dirty
from finops.fleet.models import Gpu
from finops.jobs.models import Clip, GpuAllocation, JobStatus, RenderJob

RANK = {
    JobStatus.QUEUED: 0,
    JobStatus.RUNNING: 1,
    JobStatus.SUCCEEDED: 2,
    JobStatus.FAILED: 2,
    JobStatus.OOM: 2,
    JobStatus.CANCELLED: 2,
}
JOB_FIELDS = (
    "project", "model_name", "model_version", "queued_at", "started_at", "finished_at", "usable",
    "quality_score", "frames", "fps", "width", "height", "steps", "peak_vram_bytes", "step_time_s",
    "cache_hit_rate", "io_read_bytes", "io_write_bytes", "compute_device", "compute_seconds",
    "error",
)  # fmt: skip


@dataclass(frozen=True)
class AllocationIn:
    uuid: str
    start: datetime
    end: datetime | None = None
    vram_bytes: int | None = None


def _touched_windows(
    job: RenderJob, allocations: list[GpuAllocation]
) -> list[tuple[datetime, datetime]]:
    spans = [(a.start, a.end or a.start + timedelta(hours=1)) for a in allocations]
    if job.started_at:
        spans.append((job.started_at, job.finished_at or job.started_at))
    return spans


@transaction.atomic
def job_record(
    *,
    source: str,
    external_id: str,
    team: Team,
    status: str,
    clip_id: str | None = None,
    target_seconds: float | None = None,
    allocations: list[AllocationIn] | None = None,
    **fields: Any,
) -> tuple[RenderJob, bool]:
    """Create or update a job from an event. Status moves forward only (queued → running →
    succeeded/failed/oom/cancelled); a contradiction raises ValidationError naming the field."""
    job = (
        RenderJob.objects.select_for_update().filter(source=source, external_id=external_id).first()
    )
    created = job is None
    if job is None:
        job = RenderJob(source=source, external_id=external_id, team=team)
    elif job.team_id != team.pk:
        raise ValidationError(
            {
                "external_id": f"job {source}:{external_id} is already reported for another "
                "team; use an external_id of your own"
            }
        )
    if not created and RANK[status] < RANK[job.status]:
        raise ValidationError({"status": f"cannot go from {job.status} back to {status}"})
    if not created and RANK[status] == RANK[job.status] == 2 and status != job.status:
        raise ValidationError({"status": f"the job already ended as {job.status}"})
    job.status = status
    for name in JOB_FIELDS:
        if name in fields and fields[name] is not None:
            setattr(job, name, fields[name])
    if "usable" in fields:
        job.usable = fields["usable"]
    if job.started_at and job.finished_at and job.finished_at < job.started_at:
        raise ValidationError({"finished_at": "is before started_at"})
    if job.queued_at and job.started_at and job.started_at < job.queued_at:
        raise ValidationError({"started_at": "is before queued_at"})
    if clip_id:
        clip, _ = Clip.objects.get_or_create(
            team=team,
            external_id=clip_id,
            defaults={
                "project": job.project,
                "model_name": job.model_name,
                "model_version": job.model_version,
                "target_seconds": target_seconds,
                "fps": job.fps,
                "width": job.width,
                "height": job.height,
            },
        )
        job.clip = clip
    job.save()
    old_allocations = list(job.allocations.all())
    new_allocations = old_allocations
    if allocations is not None:
        gpus = dict(
            Gpu.objects.filter(uuid__in=[a.uuid for a in allocations]).values_list("uuid", "id")
        )
        for position, a in enumerate(allocations):
            if a.uuid not in gpus:
                message = f"gpus[{position}].uuid: unknown GPU {a.uuid!r}; register its node first"
                raise ValidationError({"gpus": message})
            if a.end is not None and a.end < a.start:
                raise ValidationError({"gpus": f"gpus[{position}].end: is before its start"})
            for other in range(position):
                b = allocations[other]
                overlap = (
                    b.uuid == a.uuid
                    and (b.end is None or b.end > a.start)
                    and (a.end is None or a.end > b.start)
                )
                if overlap:
                    message = f"gpus[{position}]: overlaps gpus[{other}] on the same GPU"
                    raise ValidationError({"gpus": message})
        job.allocations.all().delete()
        new_allocations = GpuAllocation.objects.bulk_create(
            GpuAllocation(
                job=job, gpu_id=gpus[a.uuid], start=a.start, end=a.end, vram_bytes=a.vram_bytes
            )
            for a in allocations
        )
    cost_windows_mark_dirty(
        spans=_touched_windows(job, old_allocations) + _touched_windows(job, new_allocations)
    )
    return job, created


@transaction.atomic
def job_judge(
    *, job: RenderJob, usable: bool | None, quality_score: float | None = None
) -> RenderJob:
    """A person accepts or rejects a clip attempt after the fact."""
    job.usable = usable
    if quality_score is not None:
        job.quality_score = quality_score
    job.save(update_fields=["usable", "quality_score", "updated_at"])
    if job.started_at:
        cost_windows_mark_dirty(spans=[(job.started_at, job.finished_at or job.started_at)])
    return job
