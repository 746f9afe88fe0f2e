from __future__ import annotations

from django.db import models
from django.db.models import F, Q

from finops.accounts.models import currency_validator


class Provider(models.TextChoices):
    AWS = "aws", "AWS"
    AZURE = "azure", "Azure"
    GCP = "gcp", "Google Cloud"
    ON_PREM = "on-prem", "On-premises"
    OTHER = "other", "Other"


class PricingModel(models.TextChoices):
    ON_DEMAND = "on-demand", "On-demand"
    SPOT = "spot", "Spot"
    RESERVED = "reserved", "Reserved"
    ON_PREM = "on-prem", "On-premises"


class Interconnect(models.TextChoices):
    PCIE = "pcie", "PCIe"
    NVLINK = "nvlink", "NVLink"


class GpuModel(models.Model):
    """A GPU product with the figures that decide video-diffusion cost and fit."""

    name = models.CharField(max_length=64, unique=True, help_text="Canonical name, e.g. H100 SXM.")
    vendor = models.CharField(max_length=32, default="NVIDIA")
    architecture = models.CharField(max_length=32, blank=True)
    vram_bytes = models.BigIntegerField(help_text="Nominal memory (GiB x 2^30).")
    memory_type = models.CharField(max_length=16, blank=True)
    bf16_dense_tflops = models.FloatField(help_text="Dense BF16 tensor TFLOP/s (no sparsity).")
    mem_bandwidth_gb_per_s = models.FloatField()
    tdp_w = models.PositiveIntegerField()
    pcie_gen = models.PositiveSmallIntegerField()
    nvlink = models.BooleanField(help_text="GPU-to-GPU NVLink in its standard board form.")
    match_patterns = models.JSONField(
        default=list,
        blank=True,
        help_text="Regular expressions over the normalised name NVML or dcgm-exporter reports "
        "(lower case, 'nvidia'/'geforce' dropped, '-' and '_' as spaces).",
    )
    sources = models.JSONField(default=list, blank=True, help_text="Where each figure comes from.")
    notes = models.TextField(blank=True)
    default_price_per_gpu_hour = models.DecimalField(
        max_digits=12,
        decimal_places=6,
        null=True,
        blank=True,
        help_text="Last-resort price for GPUs of this model when no rate matches their node.",
    )
    default_price_currency = models.CharField(
        max_length=3, default="USD", validators=[currency_validator]
    )

    class Meta:
        ordering = ["name"]
        verbose_name = "GPU model"
        constraints = [
            models.CheckConstraint(condition=Q(vram_bytes__gt=0), name="gpumodel_vram_positive"),
            models.CheckConstraint(
                condition=Q(bf16_dense_tflops__gt=0) & Q(mem_bandwidth_gb_per_s__gt=0),
                name="gpumodel_figures_positive",
            ),
            models.CheckConstraint(
                condition=Q(default_price_per_gpu_hour__isnull=True)
                | Q(default_price_per_gpu_hour__gte=0),
                name="gpumodel_default_price_non_negative",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def vram_gib(self) -> int:
        return round(self.vram_bytes / 2**30)


class Site(models.Model):
    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200, blank=True)
    provider = models.CharField(max_length=16, choices=Provider.choices)
    region = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug


class Node(models.Model):
    site = models.ForeignKey(Site, on_delete=models.PROTECT, related_name="nodes")
    hostname = models.CharField(max_length=255, unique=True)
    instance_type = models.CharField(max_length=64, blank=True)
    pricing_model = models.CharField(
        max_length=16, choices=PricingModel.choices, default=PricingModel.ON_DEMAND
    )
    interconnect = models.CharField(
        max_length=8, choices=Interconnect.choices, default=Interconnect.PCIE
    )
    pcie_gen = models.PositiveSmallIntegerField(null=True, blank=True)
    price_override_per_gpu_hour = models.DecimalField(
        max_digits=12,
        decimal_places=6,
        null=True,
        blank=True,
        help_text="When set, wins over every price catalog entry.",
    )
    currency = models.CharField(max_length=3, default="USD", validators=[currency_validator])
    labels = models.JSONField(default=dict, blank=True)
    first_seen_at = models.DateTimeField(auto_now_add=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["hostname"]
        constraints = [
            models.CheckConstraint(
                condition=Q(price_override_per_gpu_hour__isnull=True)
                | Q(price_override_per_gpu_hour__gte=0),
                name="node_price_override_non_negative",
            ),
        ]

    def __str__(self) -> str:
        return self.hostname


class Gpu(models.Model):
    """A physical GPU, or a MIG instance of one (``mig_parent`` set)."""

    node = models.ForeignKey(Node, on_delete=models.CASCADE, related_name="gpus")
    uuid = models.CharField(
        max_length=96,
        unique=True,
        help_text="NVML UUID (GPU-…); MIG instances use MIG-… or parent UUID/GI id.",
    )
    index = models.PositiveSmallIntegerField()
    model = models.ForeignKey(
        GpuModel, on_delete=models.PROTECT, null=True, blank=True, related_name="gpus"
    )
    reported_name = models.CharField(max_length=128, blank=True)
    vram_bytes = models.BigIntegerField(null=True, blank=True)
    mig_parent = models.ForeignKey(
        "self", on_delete=models.CASCADE, null=True, blank=True, related_name="mig_instances"
    )
    mig_profile = models.CharField(max_length=32, blank=True, help_text="e.g. 1g.10gb")
    mig_instance_id = models.PositiveSmallIntegerField(null=True, blank=True)
    first_seen_at = models.DateTimeField(auto_now_add=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)
    retired_at = models.DateTimeField(
        null=True, blank=True, help_text="Set when its node re-registers without it."
    )

    class Meta:
        ordering = ["node", "index", "mig_instance_id"]
        verbose_name = "GPU"
        constraints = [
            models.UniqueConstraint(
                fields=["node", "index"],
                condition=Q(mig_parent__isnull=True, retired_at__isnull=True),
                name="gpu_node_index_unique",
            ),
            models.UniqueConstraint(
                fields=["mig_parent", "mig_instance_id"],
                condition=Q(mig_parent__isnull=False),
                name="gpu_mig_instance_unique",
            ),
            models.CheckConstraint(
                condition=Q(vram_bytes__isnull=True) | Q(vram_bytes__gt=0),
                name="gpu_vram_positive",
            ),
            models.CheckConstraint(condition=~Q(mig_parent=F("id")), name="gpu_not_own_parent"),
        ]

    def __str__(self) -> str:
        return f"{self.node.hostname}/{self.index}" + (
            f"/mig{self.mig_instance_id}" if self.mig_parent_id else ""
        )


class StorageKind(models.TextChoices):
    LOCAL_NVME = "local-nvme", "Local NVMe"
    LOCAL_SSD = "local-ssd", "Local SSD"
    HDD = "hdd", "HDD"
    NETWORK = "network", "Network"


class StorageDevice(models.Model):
    node = models.ForeignKey(Node, on_delete=models.CASCADE, related_name="storage_devices")
    name = models.CharField(max_length=128, help_text="Block device or mount, e.g. nvme0n1.")
    kind = models.CharField(max_length=16, choices=StorageKind.choices)
    filesystem = models.CharField(max_length=32, blank=True)
    mount_point = models.CharField(max_length=255, blank=True)
    volume_type = models.CharField(
        max_length=64,
        blank=True,
        help_text="Priced volume type (e.g. gp3, premium-ssd); matches a rate's sku.",
    )
    capacity_bytes = models.BigIntegerField(null=True, blank=True)
    first_seen_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["node", "name"]
        constraints = [
            models.UniqueConstraint(fields=["node", "name"], name="storage_node_name_unique"),
            models.CheckConstraint(
                condition=Q(capacity_bytes__isnull=True) | Q(capacity_bytes__gte=0),
                name="storage_capacity_non_negative",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.node.hostname}:{self.name}"
