from __future__ import annotations

from django.contrib import admin

from finops.pricing.models import PriceRate, VideoApiOffering, VideoApiPrice


@admin.register(PriceRate)
class PriceRateAdmin(admin.ModelAdmin):
    list_display = [
        "provider",
        "sku",
        "region",
        "pricing_model",
        "gpu_model",
        "gpus_per_unit",
        "price_per_gpu_hour",
        "currency",
        "valid_from",
        "valid_to",
        "source",
    ]
    list_filter = ["provider", "pricing_model", "source", "gpu_model", "currency"]
    search_fields = ["sku", "region"]
    date_hierarchy = "valid_from"
    list_select_related = ["gpu_model"]


@admin.register(VideoApiPrice)
class VideoApiPriceAdmin(admin.ModelAdmin):
    list_display = ["offering", "resolution_tier", "audio_included", "price_per_second",
                    "currency", "valid_from", "valid_to"]  # fmt: skip
    list_filter = ["offering__provider", "resolution_tier"]
    readonly_fields = ["loaded_at"]


@admin.register(VideoApiOffering)
class VideoApiOfferingAdmin(admin.ModelAdmin):
    list_display = ["provider", "offering", "model_family"]
