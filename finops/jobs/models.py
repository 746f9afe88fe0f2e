from __future__ import annotations

from django.db import models
from django.db.models import F, Q

from finops.accounts.models import Team
from finops.fleet.models import Gpu


class Clip(models.Model):
    """A deliverable a team asked for. Each RenderJob is one attempt at it; the attempts
    after the first are regenerations."""

    team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="clips")
    external_id = models.CharField(max_length=200, help_text="The clip id the farm reports.")
    project = models.CharField(max_length=200, blank=True)
    model_name = models.CharField(max_length=200, blank=True)
    model_version = models.CharField(max_length=64, blank=True)
    target_seconds = models.FloatField(null=True, blank=True)
    fps = models.FloatField(null=True, blank=True)
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["team", "external_id"], name="clip_team_external_unique"
            ),
            models.CheckConstraint(
                condition=Q(target_seconds__isnull=True) | Q(target_seconds__gt=0),
                name="clip_target_seconds_positive",
            ),
            models.CheckConstraint(
                condition=Q(fps__isnull=True) | Q(fps__gt=0), name="clip_fps_positive"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.team.slug}/{self.external_id}"


class JobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    OOM = "oom", "Out of memory"
    CANCELLED = "cancelled", "Cancelled"


class RenderJob(models.Model):
    """One generation attempt, identified by (source, external_id)."""

    source = models.CharField(max_length=100, help_text="The farm or runner that reports it.")
    external_id = models.CharField(max_length=200)
    team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="jobs")
    clip = models.ForeignKey(
        Clip, on_delete=models.SET_NULL, null=True, blank=True, related_name="jobs"
    )
    project = models.CharField(max_length=200, blank=True)
    model_name = models.CharField(max_length=200, blank=True)
    model_version = models.CharField(max_length=64, blank=True)
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.QUEUED)
    queued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    usable = models.BooleanField(null=True, blank=True, help_text="Empty: not yet judged.")
    quality_score = models.FloatField(null=True, blank=True)
    frames = models.PositiveIntegerField(null=True, blank=True)
    fps = models.FloatField(null=True, blank=True)
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    steps = models.PositiveIntegerField(null=True, blank=True)
    peak_vram_bytes = models.BigIntegerField(null=True, blank=True)
    step_time_s = models.FloatField(null=True, blank=True, help_text="Mean denoising step time.")
    cache_hit_rate = models.FloatField(null=True, blank=True)
    io_read_bytes = models.BigIntegerField(null=True, blank=True)
    io_write_bytes = models.BigIntegerField(null=True, blank=True)
    compute_device = models.CharField(
        max_length=200,
        blank=True,
        default="",
        db_default="",  # farms that load jobs in bulk (COPY) need not name it
        help_text="What ran the job: a GPU model name, or 'cpu'.",
    )
    compute_seconds = models.FloatField(
        null=True, blank=True, help_text="Seconds the job's compute took on that device."
    )
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["team", "started_at"], name="renderjob_team_started_idx"),
            models.Index(fields=["started_at"], name="renderjob_started_idx"),
            # Output seconds per day (the cost ledger's daily summary) select by finish time.
            models.Index(fields=["finished_at"], name="renderjob_finished_idx"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["source", "external_id"], name="renderjob_source_external_unique"
            ),
            models.CheckConstraint(
                condition=Q(started_at__isnull=True)
                | Q(finished_at__isnull=True)
                | Q(finished_at__gte=F("started_at")),
                name="renderjob_finished_after_started",
            ),
            models.CheckConstraint(
                condition=Q(compute_seconds__isnull=True) | Q(compute_seconds__gte=0),
                name="renderjob_compute_seconds_nonnegative",
            ),
            models.CheckConstraint(
                condition=Q(quality_score__isnull=True)
                | Q(quality_score__gte=0, quality_score__lte=1),
                name="renderjob_quality_range",
            ),
            models.CheckConstraint(
                condition=Q(cache_hit_rate__isnull=True)
                | Q(cache_hit_rate__gte=0, cache_hit_rate__lte=1),
                name="renderjob_cache_hit_rate_range",
            ),
            models.CheckConstraint(
                condition=Q(fps__isnull=True) | Q(fps__gt=0), name="renderjob_fps_positive"
            ),
            *[
                models.CheckConstraint(
                    condition=Q(**{f"{f}__isnull": True}) | Q(**{f"{f}__gte": 0}),
                    name=f"renderjob_{f}_non_negative",
                )
                for f in ("peak_vram_bytes", "step_time_s", "io_read_bytes", "io_write_bytes")
            ],
        ]

    def __str__(self) -> str:
        return f"{self.source}:{self.external_id}"

    @property
    def generated_seconds(self) -> float | None:
        if self.frames is None or not self.fps:
            return None
        return self.frames / self.fps


class GpuAllocation(models.Model):
    """The interval a job held one GPU. ``end`` empty while the job still holds it."""

    job = models.ForeignKey(RenderJob, on_delete=models.CASCADE, related_name="allocations")
    gpu = models.ForeignKey(Gpu, on_delete=models.PROTECT, related_name="allocations")
    start = models.DateTimeField()
    end = models.DateTimeField(null=True, blank=True)
    vram_bytes = models.BigIntegerField(
        null=True, blank=True, help_text="The job's VRAM on this GPU, when known."
    )

    class Meta:
        verbose_name = "GPU allocation"
        ordering = ["start"]
        indexes = [models.Index(fields=["gpu", "start"], name="gpualloc_gpu_start_idx")]
        constraints = [
            models.UniqueConstraint(
                fields=["job", "gpu", "start"], name="gpualloc_job_gpu_start_unique"
            ),
            models.CheckConstraint(
                condition=Q(end__isnull=True) | Q(end__gte=F("start")),
                name="gpualloc_end_after_start",
            ),
            models.CheckConstraint(
                condition=Q(vram_bytes__isnull=True) | Q(vram_bytes__gte=0),
                name="gpualloc_vram_non_negative",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.job} on {self.gpu_id} from {self.start:%Y-%m-%d %H:%M:%S}"


class KubernetesMapping(models.Model):
    """Which team (and project) a Kubernetes pod's GPU time belongs to: by namespace, or by
    a pod label read from kube-state-metrics' ``kube_pod_labels``. A label mapping that
    matches wins over the namespace's."""

    namespace = models.CharField(
        max_length=253, blank=True, help_text="Pods in this namespace; empty with a pod label."
    )
    pod_label = models.CharField(
        max_length=317, blank=True, help_text="A pod label name, e.g. app.kubernetes.io/part-of."
    )
    pod_label_value = models.CharField(max_length=63, blank=True)
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="kubernetes_mappings")
    project = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=(~Q(namespace="") & Q(pod_label=""))
                | (Q(namespace="") & ~Q(pod_label="")),
                name="k8smapping_namespace_or_label",
            ),
            models.UniqueConstraint(
                fields=["namespace", "pod_label", "pod_label_value"], name="k8smapping_unique"
            ),
        ]

    def __str__(self) -> str:
        what = (
            f"namespace {self.namespace}"
            if self.namespace
            else (f"label {self.pod_label}={self.pod_label_value}")
        )
        return f"{what} -> {self.team_id}"


class KubernetesUnmapped(models.Model):
    """A namespace whose pods held GPUs while no mapping named it: listed for an admin to
    map, never guessed."""

    namespace = models.CharField(max_length=253, unique=True)
    pods = models.JSONField(default=list, help_text="A few of the pods seen (at most 20).")
    gpu_seconds = models.FloatField(default=0, help_text="GPU time seen, not attributed.")
    first_seen_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()

    class Meta:
        verbose_name = "unmapped Kubernetes namespace"

    def __str__(self) -> str:
        return f"{self.namespace} ({self.gpu_seconds / 3600:.1f} GPU-h unmapped)"
