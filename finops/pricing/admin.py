from __future__ import annotations

from django.contrib import admin

from finops.pricing.models import PriceRate


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
