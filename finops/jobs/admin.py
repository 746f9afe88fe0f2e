from __future__ import annotations

from django.contrib import admin

from finops.jobs.models import (
    Clip,
    GpuAllocation,
    KubernetesMapping,
    KubernetesUnmapped,
    RenderJob,
)


class GpuAllocationInline(admin.TabularInline):
    model = GpuAllocation
    extra = 0
    raw_id_fields = ["gpu"]


@admin.register(Clip)
class ClipAdmin(admin.ModelAdmin):
    list_display = [
        "external_id",
        "team",
        "project",
        "model_name",
        "model_version",
        "target_seconds",
        "created_at",
    ]
    list_filter = ["team", "model_name"]
    search_fields = ["external_id", "project", "model_name"]
    list_select_related = ["team"]


@admin.register(RenderJob)
class RenderJobAdmin(admin.ModelAdmin):
    list_display = [
        "external_id",
        "source",
        "team",
        "model_name",
        "status",
        "usable",
        "quality_score",
        "frames",
        "started_at",
        "finished_at",
    ]
    list_filter = ["status", "usable", "team", "source", "model_name"]
    search_fields = ["external_id", "project", "model_name", "clip__external_id"]
    raw_id_fields = ["clip"]
    list_select_related = ["team"]
    date_hierarchy = "started_at"
    inlines = [GpuAllocationInline]


@admin.register(GpuAllocation)
class GpuAllocationAdmin(admin.ModelAdmin):
    list_display = ["job", "gpu", "start", "end", "vram_bytes"]
    search_fields = ["job__external_id", "gpu__uuid"]
    raw_id_fields = ["job", "gpu"]
    list_select_related = ["job", "gpu__node"]


@admin.register(KubernetesMapping)
class KubernetesMappingAdmin(admin.ModelAdmin):
    list_display = ["namespace", "pod_label", "pod_label_value", "team", "project", "created_at"]
    list_filter = ["team"]
    search_fields = ["namespace", "pod_label", "pod_label_value", "project"]


@admin.register(KubernetesUnmapped)
class KubernetesUnmappedAdmin(admin.ModelAdmin):
    """Namespaces whose pods held GPUs with no mapping: map them (Kubernetes mappings) and
    their later GPU time is charged to the team."""

    list_display = ["namespace", "gpu_hours", "first_seen_at", "last_seen_at"]
    readonly_fields = ["namespace", "pods", "gpu_seconds", "first_seen_at", "last_seen_at"]
    ordering = ["-gpu_seconds"]

    @admin.display(description="GPU-hours unmapped", ordering="gpu_seconds")
    def gpu_hours(self, obj: KubernetesUnmapped) -> str:
        return f"{obj.gpu_seconds / 3600:.1f}"
