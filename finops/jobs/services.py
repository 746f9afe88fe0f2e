"""Job events from render farms and the runner: idempotent by (source, external_id)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
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


def _job_apply(
    job: RenderJob, *, created: bool, team: Team, status: str, fields: dict[str, Any]
) -> None:
    """The event's status and fields on ``job``, or ValidationError naming the field (the
    job is then left as it was). Status moves forward only (queued → running →
    succeeded/failed/oom/cancelled); a job belongs to the team that first reported it."""
    if not created and job.team_id != team.pk:
        raise ValidationError(
            {
                "external_id": f"job {job.source}:{job.external_id} is already reported for "
                "another team; use an external_id of your own"
            }
        )
    if not created and RANK[status] < RANK[job.status]:
        raise ValidationError({"status": f"cannot go from {job.status} back to {status}"})
    if not created and RANK[status] == RANK[job.status] == 2 and status != job.status:
        raise ValidationError({"status": f"the job already ended as {job.status}"})
    changed = {name: fields[name] for name in JOB_FIELDS if fields.get(name) is not None}
    if "usable" in fields:
        changed["usable"] = fields["usable"]
    started = changed.get("started_at", job.started_at)
    finished = changed.get("finished_at", job.finished_at)
    queued = changed.get("queued_at", job.queued_at)
    if started and finished and finished < started:
        raise ValidationError({"finished_at": "is before started_at"})
    if queued and started and started < queued:
        raise ValidationError({"started_at": "is before queued_at"})
    job.status = status
    for name, value in changed.items():
        setattr(job, name, value)


def _allocations_check(allocations: list[AllocationIn], gpus: dict[str, int]) -> None:
    """ValidationError naming the entry: an unknown GPU, an end before its start, or two
    entries overlapping on the same GPU."""
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


def _clip_defaults(job: RenderJob, target_seconds: float | None) -> dict[str, Any]:
    return {
        "project": job.project,
        "model_name": job.model_name,
        "model_version": job.model_version,
        "target_seconds": target_seconds,
        "fps": job.fps,
        "width": job.width,
        "height": job.height,
    }


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
    old_spans = [] if created else _touched_windows(job, list(job.allocations.all()))
    _job_apply(job, created=created, team=team, status=status, fields=fields)
    if clip_id:
        job.clip, _ = Clip.objects.get_or_create(
            team=team, external_id=clip_id, defaults=_clip_defaults(job, target_seconds)
        )
    job.save()
    new_allocations = list(job.allocations.all())
    if allocations is not None:
        gpus = dict(
            Gpu.objects.filter(uuid__in=[a.uuid for a in allocations]).values_list("uuid", "id")
        )
        _allocations_check(allocations, gpus)
        job.allocations.all().delete()
        new_allocations = GpuAllocation.objects.bulk_create(
            GpuAllocation(
                job=job, gpu_id=gpus[a.uuid], start=a.start, end=a.end, vram_bytes=a.vram_bytes
            )
            for a in allocations
        )
    cost_windows_mark_dirty(spans=old_spans + _touched_windows(job, new_allocations))
    return job, created


@dataclass
class BulkJobResult:
    """What a batch of job events did: jobs created and updated, and each refused line."""

    created: int = 0
    updated: int = 0
    accepted: int = 0  # events applied (a job's second event in a batch counts again)
    errors: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"accepted": self.accepted, "created": self.created, "updated": self.updated,
                "rejected": self.rejected, "errors": self.errors}  # fmt: skip

    def reject(self, line: int, error: ValidationError) -> None:
        detail = error.message_dict if hasattr(error, "error_dict") else {"(event)": error.messages}
        for name, messages in detail.items():
            self.errors.append({"line": line, "field": name, "message": "; ".join(messages)})

    @property
    def rejected(self) -> int:
        return len({e["line"] for e in self.errors})


@dataclass
class JobEvent:
    """One validated event of a batch: its line, team and ``job_record``'s arguments."""

    line: int
    team: Team
    source: str
    external_id: str
    status: str
    clip_id: str | None = None
    target_seconds: float | None = None
    allocations: list[AllocationIn] | None = None
    fields: dict[str, Any] = field(default_factory=dict)


@transaction.atomic
def jobs_record_bulk(events: list[JobEvent]) -> BulkJobResult:
    """Many job events at once, in order, with the rules of ``job_record`` line by line (a
    refused line changes nothing and is reported with its number), written set-wise: the
    jobs, clips and GPUs read in a few queries, the jobs and allocations written in bulk,
    and the touched hours marked dirty once."""
    result = BulkJobResult()
    keys = {(e.source, e.external_id) for e in events}
    jobs: dict[tuple[str, str], RenderJob] = {
        (j.source, j.external_id): j
        for j in RenderJob.objects.select_for_update().filter(external_id__in={k[1] for k in keys})
        if (j.source, j.external_id) in keys
    }
    existing = set(jobs)
    old_allocations: dict[int, list[GpuAllocation]] = defaultdict(list)
    for allocation in GpuAllocation.objects.filter(job__in=[jobs[k] for k in existing]):
        old_allocations[allocation.job_id].append(allocation)
    spans = [s for k in existing for s in _touched_windows(jobs[k], old_allocations[jobs[k].pk])]
    wanted = {a.uuid for e in events for a in e.allocations or ()}
    gpus = dict(Gpu.objects.filter(uuid__in=wanted).values_list("uuid", "id"))
    allocations: dict[tuple[str, str], list[AllocationIn]] = {}
    clips: dict[tuple[str, str], tuple[int, str, float | None]] = {}
    accepted: set[tuple[str, str]] = set()
    for event in events:
        key = (event.source, event.external_id)
        job = jobs.get(key)
        created = job is None
        before = None if job is None else dict(job.__dict__)
        if job is None:
            job = RenderJob(source=event.source, external_id=event.external_id, team=event.team)
        try:
            _job_apply(job, created=created, team=event.team, status=event.status,
                       fields=event.fields)  # fmt: skip
            if event.allocations is not None:
                _allocations_check(event.allocations, gpus)
        except ValidationError as exc:
            if before is not None:
                job.__dict__.update(before)
            result.reject(event.line, exc)
            continue
        jobs[key] = job
        accepted.add(key)
        result.accepted += 1
        if event.allocations is not None:
            allocations[key] = event.allocations
        if event.clip_id:
            clips[key] = (event.team.pk, event.clip_id, event.target_seconds)
    _clips_attach({k: jobs[k] for k in clips}, clips)
    new = [jobs[k] for k in accepted - existing]
    RenderJob.objects.bulk_create(new)
    changed = [jobs[k] for k in accepted & existing]
    RenderJob.objects.bulk_update(changed, ["status", "clip", *JOB_FIELDS])
    result.created, result.updated = len(new), len(changed)
    replaced = [jobs[k] for k in allocations]
    GpuAllocation.objects.filter(job__in=[j for j in replaced if j.pk in old_allocations]).delete()
    made = GpuAllocation.objects.bulk_create(
        GpuAllocation(job=jobs[k], gpu_id=gpus[a.uuid], start=a.start, end=a.end,
                      vram_bytes=a.vram_bytes)
        for k, listed in allocations.items() for a in listed
    )  # fmt: skip
    current: dict[int, list[GpuAllocation]] = defaultdict(list)
    for allocation in made:
        current[allocation.job_id].append(allocation)
    for key in accepted:
        job = jobs[key]
        kept = current[job.pk] if key in allocations else old_allocations.get(job.pk, [])
        spans += _touched_windows(job, kept)
    cost_windows_mark_dirty(spans=spans)
    return result


def _clips_attach(
    jobs: dict[tuple[str, str], RenderJob],
    wanted: dict[tuple[str, str], tuple[int, str, float | None]],
) -> None:
    """Each job's clip by (team, clip id), created from the first job that names it."""
    if not wanted:
        return
    pairs = {(team_id, clip_id) for team_id, clip_id, _ in wanted.values()}
    found = {
        (c.team_id, c.external_id): c
        for c in Clip.objects.filter(
            team_id__in={p[0] for p in pairs}, external_id__in={p[1] for p in pairs}
        )
    }
    missing: dict[tuple[int, str], Clip] = {}
    for key, (team_id, clip_id, target) in wanted.items():
        pair = (team_id, clip_id)
        if pair not in found and pair not in missing:
            missing[pair] = Clip(team_id=team_id, external_id=clip_id,
                                 **_clip_defaults(jobs[key], target))  # fmt: skip
    Clip.objects.bulk_create(missing.values(), ignore_conflicts=True)
    if missing:
        found |= {
            (c.team_id, c.external_id): c
            for c in Clip.objects.filter(
                team_id__in={p[0] for p in missing}, external_id__in={p[1] for p in missing}
            )
        }
    for key, (team_id, clip_id, _) in wanted.items():
        jobs[key].clip = found[(team_id, clip_id)]


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
        spans = [(job.started_at, job.finished_at or job.started_at)]
        if job.clip_id:  # which attempt is the clip's first usable one may change for later ones
            spans += [
                (started, finished or started)
                for started, finished in RenderJob.objects.filter(
                    clip_id=job.clip_id, started_at__gt=job.started_at
                ).values_list("started_at", "finished_at")
            ]
        cost_windows_mark_dirty(spans=spans)
    return job
