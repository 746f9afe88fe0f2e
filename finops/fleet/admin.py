from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.utils import timezone

from finops.fleet.models import Gpu, GpuModel, Node, Site, StorageDevice
from finops.pricing.selectors import price_resolve, unpriced_node_ids


@admin.register(GpuModel)
class GpuModelAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "architecture",
        "vram_gib",
        "bf16_dense_tflops",
        "mem_bandwidth_gb_per_s",
        "tdp_w",
        "pcie_gen",
        "nvlink",
        "default_price_per_gpu_hour",
    ]
    list_filter = ["architecture", "nvlink", "pcie_gen", "vendor"]
    search_fields = ["name", "architecture"]


@admin.register(Site)
class SiteAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "provider", "region"]
    list_filter = ["provider", "region"]
    search_fields = ["slug", "name", "region"]


class GpuInline(admin.TabularInline):
    model = Gpu
    fk_name = "node"
    extra = 0
    fields = ["index", "uuid", "model", "reported_name", "vram_bytes", "mig_parent", "last_seen_at"]
    readonly_fields = ["last_seen_at"]
    raw_id_fields = ["mig_parent"]


class PricedNowFilter(admin.SimpleListFilter):
    """Nodes without a price now: their GPU time is booked as unpriced until one is set."""

    title = "price now"
    parameter_name = "priced"

    def lookups(self, request: Any, model_admin: Any) -> list[tuple[str, str]]:
        return [("no", "No price (booked as unpriced)"), ("yes", "Priced")]

    def queryset(self, request: Any, queryset: QuerySet[Node]) -> QuerySet[Node]:
        if self.value() not in ("yes", "no"):
            return queryset
        unpriced = unpriced_node_ids(at=timezone.now())
        if self.value() == "no":
            return queryset.filter(pk__in=unpriced)
        return queryset.exclude(pk__in=unpriced)


@admin.register(Node)
class NodeAdmin(admin.ModelAdmin):
    list_display = [
        "hostname",
        "site",
        "instance_type",
        "pricing_model",
        "interconnect",
        "price_override_per_gpu_hour",
        "last_seen_at",
    ]
    list_filter = [
        "site__provider",
        "site",
        "pricing_model",
        "interconnect",
        PricedNowFilter,
    ]
    search_fields = ["hostname", "instance_type", "site__slug"]
    list_select_related = ["site"]
    inlines = [GpuInline]
    readonly_fields = ["price_now"]

    @admin.display(description="Price per GPU-hour now")
    def price_now(self, obj: Node) -> str:
        if obj.pk is None:
            return "-"
        resolved = price_resolve(node=obj, at=timezone.now())
        if resolved.price is None:
            return resolved.reason
        return f"{resolved.price} {resolved.currency} ({resolved.reason})"


@admin.register(Gpu)
class GpuAdmin(admin.ModelAdmin):
    list_display = [
        "uuid",
        "node",
        "index",
        "model",
        "reported_name",
        "mig_profile",
        "last_seen_at",
    ]
    list_filter = ["model", "node__site"]
    search_fields = ["uuid", "node__hostname", "reported_name"]
    list_select_related = ["node", "model"]
    raw_id_fields = ["node", "mig_parent"]


@admin.register(StorageDevice)
class StorageDeviceAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "node",
        "kind",
        "volume_type",
        "filesystem",
        "mount_point",
        "capacity_bytes",
    ]
    list_filter = ["kind", "filesystem"]
    search_fields = ["name", "node__hostname", "mount_point"]
    list_select_related = ["node"]
    raw_id_fields = ["node"]
