from __future__ import annotations

from django.contrib import admin

from finops.telemetry.models import (
    GpuHour,
    GpuMinute,
    GpuSample,
    PodPresence,
    PullWatermark,
    RollupBacklog,
    StorageSample,
)

# Sample tables hold millions of rows: no full counts, no date drill-down, raw id widgets.


@admin.register(GpuSample)
class GpuSampleAdmin(admin.ModelAdmin):
    list_display = [
        "ts",
        "gpu",
        "sm_util_pct",
        "mem_used_bytes",
        "power_w",
        "temp_c",
        "sm_clock_mhz",
        "clocks_event_reasons",
        "source",
    ]
    list_filter = ["source"]
    search_fields = ["gpu__uuid"]
    raw_id_fields = ["gpu"]
    list_select_related = ["gpu__node"]
    show_full_result_count = False
    ordering = ["-ts"]


class RollupAdmin(admin.ModelAdmin):
    list_display = [
        "ts",
        "gpu",
        "samples",
        "busy_s",
        "util_mean_pct",
        "mem_frac_max",
        "mem_pressure_s",
        "throttle_sw_thermal_s",
        "throttle_power_cap_s",
        "energy_j",
    ]
    search_fields = ["gpu__uuid", "gpu__node__hostname"]
    raw_id_fields = ["gpu"]
    list_select_related = ["gpu__node"]
    show_full_result_count = False
    ordering = ["-ts"]


admin.site.register(GpuMinute, RollupAdmin)
admin.site.register(GpuHour, RollupAdmin)


@admin.register(StorageSample)
class StorageSampleAdmin(admin.ModelAdmin):
    list_display = [
        "ts",
        "device",
        "read_bytes_per_s",
        "write_bytes_per_s",
        "read_iops",
        "write_iops",
        "await_ms",
        "util_pct",
    ]
    search_fields = ["device__name", "device__node__hostname"]
    raw_id_fields = ["device"]
    list_select_related = ["device__node"]
    show_full_result_count = False
    ordering = ["-ts"]


@admin.register(RollupBacklog)
class RollupBacklogAdmin(admin.ModelAdmin):
    list_display = ["start", "end", "created_at"]


@admin.register(PodPresence)
class PodPresenceAdmin(admin.ModelAdmin):
    """Pods the DCGM pull saw on GPUs, waiting for the Kubernetes attribution step."""

    list_display = ["namespace", "pod", "device_key", "start", "end", "until"]
    search_fields = ["namespace", "pod", "device_key"]


@admin.register(PullWatermark)
class PullWatermarkAdmin(admin.ModelAdmin):
    list_display = ["source", "until", "updated_at"]
    search_fields = ["source"]
