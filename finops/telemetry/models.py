from __future__ import annotations

from django.db import models
from django.db.models import Q

from finops.fleet.models import Gpu, StorageDevice


def _non_negative(*fields: str, prefix: str) -> list[models.CheckConstraint]:
    return [
        models.CheckConstraint(
            condition=Q(**{f"{f}__isnull": True}) | Q(**{f"{f}__gte": 0}),
            name=f"{prefix}_{f}_non_negative",
        )
        for f in fields
    ]


def _between(field: str, low: float, high: float, *, prefix: str) -> models.CheckConstraint:
    return models.CheckConstraint(
        condition=Q(**{f"{field}__isnull": True})
        | Q(**{f"{field}__gte": low, f"{field}__lte": high}),
        name=f"{prefix}_{field}_range",
    )


class SampleSource(models.TextChoices):
    NVML = "nvml", "NVML (agent)"
    DCGM = "dcgm", "dcgm-exporter"
    RUNNER = "runner", "Inference runner"
    OTHER = "other", "Other"


class GpuSample(models.Model):
    """One reading of one GPU. Only ``gpu``, ``ts`` and one measurement are required."""

    id = models.BigAutoField(primary_key=True)
    # No database foreign key: at telemetry volume the per-row referential check doubled
    # the write cost (bench/ingest.py). Ingest resolves every GPU UUID to an existing GPU
    # before writing, and deleting a GPU cascades through the ORM.
    # No separate index either: the (gpu, ts) unique index serves lookups by GPU.
    gpu = models.ForeignKey(
        Gpu, on_delete=models.CASCADE, related_name="samples", db_constraint=False, db_index=False
    )
    ts = models.DateTimeField()
    sm_util_pct = models.FloatField(null=True, blank=True)
    mem_used_bytes = models.BigIntegerField(null=True, blank=True)
    mem_total_bytes = models.BigIntegerField(null=True, blank=True)
    power_w = models.FloatField(null=True, blank=True)
    power_limit_w = models.FloatField(null=True, blank=True)
    temp_c = models.FloatField(null=True, blank=True)
    sm_clock_mhz = models.IntegerField(null=True, blank=True)
    sm_clock_max_mhz = models.IntegerField(null=True, blank=True)
    clocks_event_reasons = models.BigIntegerField(
        null=True, blank=True, help_text="NVML clocks-event reasons bitmask."
    )
    pcie_tx_bytes_per_s = models.FloatField(null=True, blank=True)
    pcie_rx_bytes_per_s = models.FloatField(null=True, blank=True)
    energy_mj = models.BigIntegerField(
        null=True, blank=True, help_text="Total energy counter since driver load, millijoules."
    )
    source = models.CharField(max_length=8, choices=SampleSource.choices, default=SampleSource.NVML)

    class Meta:
        verbose_name = "GPU sample"
        constraints = [
            models.UniqueConstraint(fields=["gpu", "ts"], name="gpusample_gpu_ts_unique"),
            _between("sm_util_pct", 0, 100, prefix="gpusample"),
            _between("temp_c", -40, 150, prefix="gpusample"),
            *_non_negative(
                "mem_used_bytes",
                "mem_total_bytes",
                "power_w",
                "power_limit_w",
                "sm_clock_mhz",
                "sm_clock_max_mhz",
                "clocks_event_reasons",
                "pcie_tx_bytes_per_s",
                "pcie_rx_bytes_per_s",
                "energy_mj",
                prefix="gpusample",
            ),
            models.CheckConstraint(
                condition=Q(mem_used_bytes__isnull=True)
                | Q(mem_total_bytes__isnull=True)
                | Q(mem_used_bytes__lte=models.F("mem_total_bytes")),
                name="gpusample_mem_used_within_total",
            ),
        ]
        # The (gpu, ts) unique index serves per-GPU ranges; a BRIN index on ts (PostgreSQL,
        # in migration 0002) serves fleet-wide ranges and retention at a fraction of the size.

    def __str__(self) -> str:
        return f"{self.gpu_id}@{self.ts:%Y-%m-%dT%H:%M:%SZ}"


class RollupFields(models.Model):
    """What one GPU did in one period (a minute or an hour), computed from raw samples."""

    gpu = models.ForeignKey(Gpu, on_delete=models.CASCADE)
    ts = models.DateTimeField(help_text="Start of the period (UTC).")
    samples = models.PositiveIntegerField(default=0)
    covered_s = models.FloatField(default=0, help_text="Seconds of the period with telemetry.")
    busy_s = models.FloatField(default=0, help_text="Seconds with SM utilisation above zero.")
    util_mean_pct = models.FloatField(null=True, blank=True)
    util_max_pct = models.FloatField(null=True, blank=True)
    mem_frac_mean = models.FloatField(null=True, blank=True)
    mem_frac_max = models.FloatField(null=True, blank=True)
    mem_pressure_s = models.FloatField(
        default=0, help_text="Busy seconds with memory at or above the pressure threshold."
    )
    throttle_power_cap_s = models.FloatField(default=0, help_text="Reason 0x4.")
    throttle_hw_slowdown_s = models.FloatField(default=0, help_text="Reason 0x8.")
    throttle_sw_thermal_s = models.FloatField(default=0, help_text="Reason 0x20.")
    throttle_hw_thermal_s = models.FloatField(default=0, help_text="Reason 0x40.")
    throttle_power_brake_s = models.FloatField(default=0, help_text="Reason 0x80.")
    clock_ratio_mean = models.FloatField(null=True, blank=True)
    power_mean_w = models.FloatField(null=True, blank=True)
    temp_max_c = models.FloatField(null=True, blank=True)
    energy_j = models.FloatField(null=True, blank=True)
    pcie_tx_bytes = models.FloatField(null=True, blank=True)
    pcie_rx_bytes = models.FloatField(null=True, blank=True)
    # Seconds of the period that had each measurement: the denominators of its mean (a
    # sample without a memory reading counts toward no memory share).
    util_s = models.FloatField(default=0, help_text="Seconds with an SM utilisation reading.")
    mem_s = models.FloatField(default=0, help_text="Seconds with a memory reading.")
    clock_s = models.FloatField(default=0, help_text="Seconds with an SM clock reading.")
    power_s = models.FloatField(default=0, help_text="Seconds with a power reading.")

    SECONDS_FIELDS = (
        "covered_s",
        "busy_s",
        "mem_pressure_s",
        "throttle_power_cap_s",
        "throttle_hw_slowdown_s",
        "throttle_sw_thermal_s",
        "throttle_hw_thermal_s",
        "throttle_power_brake_s",
        "util_s",
        "mem_s",
        "clock_s",
        "power_s",
    )

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return f"{self.gpu_id}@{self.ts:%Y-%m-%dT%H:%MZ}"

    @classmethod
    def constraints_for(cls, prefix: str, period_s: int) -> list[models.BaseConstraint]:
        return [
            models.UniqueConstraint(fields=["gpu", "ts"], name=f"{prefix}_gpu_ts_unique"),
            *[
                models.CheckConstraint(
                    condition=Q(**{f"{f}__gte": 0, f"{f}__lte": period_s}),
                    name=f"{prefix}_{f}_within_period",
                )
                for f in cls.SECONDS_FIELDS
            ],
            _between("util_mean_pct", 0, 100, prefix=prefix),
            _between("util_max_pct", 0, 100, prefix=prefix),
            _between("mem_frac_mean", 0, 1, prefix=prefix),
            _between("mem_frac_max", 0, 1, prefix=prefix),
            *_non_negative(
                "clock_ratio_mean",
                "power_mean_w",
                "energy_j",
                "pcie_tx_bytes",
                "pcie_rx_bytes",
                prefix=prefix,
            ),
        ]


class GpuMinute(RollupFields):
    PERIOD_S = 60

    # Rolled up by the GPU's host agent (POST /api/v1/ingest/gpu-minutes) rather than from
    # raw samples here: the server's rollup of raw samples never replaces or deletes it.
    from_edge = models.BooleanField(default=False, db_default=False)

    class Meta:
        verbose_name = "GPU minute"
        constraints = RollupFields.constraints_for("gpuminute", 60)
        indexes = [models.Index(fields=["ts"], name="gpuminute_ts_idx")]


class GpuHour(RollupFields):
    PERIOD_S = 3600

    class Meta:
        verbose_name = "GPU hour"
        constraints = RollupFields.constraints_for("gpuhour", 3600)
        indexes = [models.Index(fields=["ts"], name="gpuhour_ts_idx")]


class StorageSample(models.Model):
    id = models.BigAutoField(primary_key=True)
    # No database foreign key, for the same reason as GpuSample.gpu.
    device = models.ForeignKey(
        StorageDevice,
        on_delete=models.CASCADE,
        related_name="samples",
        db_constraint=False,
        db_index=False,
    )
    ts = models.DateTimeField()
    read_bytes_per_s = models.FloatField(null=True, blank=True)
    write_bytes_per_s = models.FloatField(null=True, blank=True)
    read_iops = models.FloatField(null=True, blank=True)
    write_iops = models.FloatField(null=True, blank=True)
    await_ms = models.FloatField(null=True, blank=True)
    util_pct = models.FloatField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["device", "ts"], name="storagesample_device_ts_unique"),
            _between("util_pct", 0, 100, prefix="storagesample"),
            *_non_negative(
                "read_bytes_per_s",
                "write_bytes_per_s",
                "read_iops",
                "write_iops",
                "await_ms",
                prefix="storagesample",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.device_id}@{self.ts:%Y-%m-%dT%H:%M:%SZ}"


class RollupBacklog(models.Model):
    """A time range whose rollups must be recomputed because samples arrived for it after
    the regular rollup had passed it (a replayed agent spool, a late DCGM pull)."""

    start = models.DateTimeField()
    end = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(end__gt=models.F("start")), name="rollupbacklog_range"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.start:%Y-%m-%d %H:%M} to {self.end:%Y-%m-%d %H:%M}"


class PodPresence(models.Model):
    """A run of pull steps in which dcgm-exporter showed a Kubernetes pod on a device,
    recorded by the DCGM pull in the transaction of the samples it read. The Kubernetes
    attribution (``finops.jobs.kubernetes``) turns these into ``k8s`` jobs as a step of
    its own after the pull, and deletes them."""

    source = models.CharField(max_length=300, help_text="The Prometheus URL (for pod labels).")
    device_key = models.CharField(max_length=128, help_text="GPU UUID, or UUID/instance (MIG).")
    namespace = models.CharField(max_length=253)
    pod = models.CharField(max_length=253)
    container = models.CharField(max_length=253, blank=True)
    start = models.DateTimeField()
    end = models.DateTimeField()
    step_s = models.FloatField()
    until = models.DateTimeField(help_text="End of the pulled range the run was seen in.")

    class Meta:
        indexes = [models.Index(fields=["until", "id"], name="podpresence_until_idx")]

    def __str__(self) -> str:
        return f"{self.namespace}/{self.pod} on {self.device_key} from {self.start:%H:%M:%S}"


class PullWatermark(models.Model):
    """How far a pull source (e.g. the DCGM Prometheus pull) has read, so a restart
    neither skips nor reads an interval twice."""

    source = models.CharField(max_length=64, unique=True)
    until = models.DateTimeField()
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.source} until {self.until:%Y-%m-%d %H:%M:%S}"
