from __future__ import annotations

from django.contrib import admin

from finops.jobs.models import Clip, GpuAllocation, RenderJob


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
