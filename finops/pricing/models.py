from __future__ import annotations

from django.db import models
from django.db.models import F, Q

from finops.accounts.models import currency_validator
from finops.fleet.models import GpuModel, PricingModel, Provider


class PriceSource(models.TextChoices):
    AWS = "aws", "AWS Price List"
    AZURE = "azure", "Azure Retail Prices"
    GCP = "gcp", "GCP Cloud Billing Catalog"
    CSV = "csv", "Rate card CSV"
    ON_PREM = "onprem", "On-prem amortisation"
    MANUAL = "manual", "Entered by hand"


class PriceRate(models.Model):
    """A price per GPU-hour for one SKU in one region under one pricing model, valid over
    [valid_from, valid_to). A changed price closes the old rate and opens a new one."""

    provider = models.CharField(max_length=16, choices=Provider.choices)
    sku = models.CharField(max_length=128, help_text="Instance type or GPU model.")
    region = models.CharField(max_length=64, blank=True)
    pricing_model = models.CharField(max_length=16, choices=PricingModel.choices)
    gpu_model = models.ForeignKey(
        GpuModel, on_delete=models.PROTECT, null=True, blank=True, related_name="price_rates"
    )
    gpus_per_unit = models.PositiveSmallIntegerField(default=1)
    price_per_unit_hour = models.DecimalField(
        max_digits=14, decimal_places=6, help_text="The catalog price for the whole instance."
    )
    price_per_gpu_hour = models.DecimalField(max_digits=14, decimal_places=6)
    storage_per_gb_month = models.DecimalField(
        max_digits=12, decimal_places=6, null=True, blank=True
    )
    energy_per_kwh = models.DecimalField(
        max_digits=10, decimal_places=6, null=True, blank=True, help_text="On-prem only."
    )
    pue = models.DecimalField(max_digits=4, decimal_places=2, null=True, blank=True)
    currency = models.CharField(max_length=3, default="USD", validators=[currency_validator])
    valid_from = models.DateTimeField()
    valid_to = models.DateTimeField(null=True, blank=True, help_text="Empty: still valid.")
    source = models.CharField(max_length=8, choices=PriceSource.choices)
    raw_reference = models.JSONField(
        default=dict, blank=True, help_text="The catalog record this rate came from."
    )
    loaded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["provider", "sku", "region", "pricing_model", "-valid_from"]
        indexes = [
            models.Index(
                fields=["provider", "sku", "region", "pricing_model", "valid_from"],
                name="pricerate_lookup_idx",
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(price_per_unit_hour__gte=0), name="pricerate_unit_price_non_negative"
            ),
            models.CheckConstraint(
                condition=Q(price_per_gpu_hour__gte=0), name="pricerate_gpu_price_non_negative"
            ),
            models.CheckConstraint(
                condition=Q(gpus_per_unit__gte=1), name="pricerate_gpus_per_unit_positive"
            ),
            models.CheckConstraint(
                condition=Q(storage_per_gb_month__isnull=True) | Q(storage_per_gb_month__gte=0),
                name="pricerate_storage_non_negative",
            ),
            models.CheckConstraint(
                condition=Q(energy_per_kwh__isnull=True) | Q(energy_per_kwh__gte=0),
                name="pricerate_energy_non_negative",
            ),
            models.CheckConstraint(
                condition=Q(pue__isnull=True) | Q(pue__gte=1), name="pricerate_pue_at_least_one"
            ),
            models.CheckConstraint(
                condition=Q(valid_to__isnull=True) | Q(valid_to__gt=F("valid_from")),
                name="pricerate_valid_range",
            ),
            models.UniqueConstraint(
                fields=["provider", "sku", "region", "pricing_model", "valid_from"],
                name="pricerate_effective_unique",
            ),
        ]

    def __str__(self) -> str:
        where = f"{self.provider} {self.sku} {self.region or '-'} {self.pricing_model}"
        return f"{where}: {self.price_per_gpu_hour} {self.currency}/GPU-h"


class VideoApiOffering(models.Model):
    """A hosted video model sold per generated second (``load_prices video-api``)."""

    provider = models.CharField(max_length=64)
    offering = models.CharField(max_length=200, help_text="The product as its provider names it.")
    model_family = models.CharField(max_length=200)

    class Meta:
        ordering = ["provider", "offering"]
        constraints = [
            models.UniqueConstraint(
                fields=["provider", "offering"], name="videoapi_offering_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.provider} {self.offering}"


class VideoApiPrice(models.Model):
    """One list price of an offering at a resolution tier, with or without audio, valid
    over [valid_from, valid_to); history is kept, overlapping spans are refused."""

    offering = models.ForeignKey(VideoApiOffering, on_delete=models.CASCADE, related_name="prices")
    resolution_tier = models.CharField(max_length=8)
    audio_included = models.BooleanField(default=False)
    price_per_second = models.DecimalField(max_digits=12, decimal_places=6)
    currency = models.CharField(max_length=3, default="USD", validators=[currency_validator])
    valid_from = models.DateTimeField()
    valid_to = models.DateTimeField(null=True, blank=True, help_text="Empty: still valid.")
    source = models.TextField(help_text="Where the price was read, and when.")
    raw_reference = models.JSONField(default=dict, blank=True)
    loaded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["offering", "resolution_tier", "audio_included", "-valid_from"]
        constraints = [
            models.UniqueConstraint(
                fields=["offering", "resolution_tier", "audio_included", "valid_from"],
                name="videoapi_price_unique",
            ),
            models.CheckConstraint(
                condition=Q(price_per_second__gte=0), name="videoapi_price_non_negative"
            ),
            models.CheckConstraint(
                condition=Q(valid_to__isnull=True) | Q(valid_to__gt=F("valid_from")),
                name="videoapi_price_valid_span",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.offering} {self.resolution_tier}: {self.price_per_second}/s"
