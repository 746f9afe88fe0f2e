from __future__ import annotations

from django.contrib import admin

from finops.costing.models import (
    ClipDay,
    DirtyWindow,
    FocusExport,
    FunnelHour,
    LedgerDay,
    LedgerDimensionDay,
    LedgerEntry,
    LedgerPrice,
    LedgerTeamDay,
    OutputDay,
    RecomputeRun,
    RecomputeRunDay,
)


@admin.register(LedgerEntry)
class LedgerEntryAdmin(admin.ModelAdmin):
    list_display = [
        "window_start",
        "bucket",
        "team",
        "component",
        "quantity",
        "unit",
        "amount",
        "currency",
        "activity",
        "job",
    ]
    list_filter = ["bucket", "component", "team", "currency"]
    search_fields = ["team__slug", "job__external_id", "node__hostname", "gpu__uuid"]
    raw_id_fields = ["job", "node", "gpu"]
    list_select_related = ["team", "job"]
    date_hierarchy = "window_start"
    show_full_result_count = False


@admin.register(LedgerPrice)
class LedgerPriceAdmin(admin.ModelAdmin):
    list_display = ["window_start", "node", "unit_price", "currency", "reason"]
    raw_id_fields = ["node"]
    date_hierarchy = "window_start"
    show_full_result_count = False


@admin.register(DirtyWindow)
class DirtyWindowAdmin(admin.ModelAdmin):
    list_display = ["window_start", "marked_at"]


@admin.register(LedgerDay)
class LedgerDayAdmin(admin.ModelAdmin):
    list_display = ["day", "basis", "bucket", "team", "node", "component", "regeneration", "amount"]
    list_filter = ["basis", "bucket", "component", "regeneration", "team"]
    search_fields = ["team__slug", "node__hostname"]
    list_select_related = ["team", "node"]
    date_hierarchy = "day"
    show_full_result_count = False


@admin.register(LedgerTeamDay)
class LedgerTeamDayAdmin(admin.ModelAdmin):
    list_display = ["day", "basis", "bucket", "team", "component", "regeneration", "amount"]
    list_filter = ["basis", "bucket", "component", "regeneration", "team"]
    list_select_related = ["team"]
    date_hierarchy = "day"
    show_full_result_count = False


@admin.register(LedgerDimensionDay)
class LedgerDimensionDayAdmin(admin.ModelAdmin):
    list_display = ["day", "basis", "bucket", "team", "project", "model_name", "model_version",
                    "resolution", "component", "regeneration", "amount"]  # fmt: skip
    list_filter = ["basis", "bucket", "component", "regeneration", "team"]
    search_fields = ["team__slug", "project", "model_name"]
    list_select_related = ["team"]
    date_hierarchy = "day"
    show_full_result_count = False


@admin.register(OutputDay)
class OutputDayAdmin(admin.ModelAdmin):
    list_display = ["day", "team", "project", "model_name", "model_version", "resolution",
                    "attempts", "generated_seconds", "usable_seconds"]  # fmt: skip
    list_filter = ["team"]
    date_hierarchy = "day"
    show_full_result_count = False


@admin.register(ClipDay)
class ClipDayAdmin(admin.ModelAdmin):
    list_display = ["day", "clip", "team", "cost", "attempts", "usable_attempts"]
    list_filter = ["team"]
    raw_id_fields = ["clip"]
    list_select_related = ["clip", "team"]
    date_hierarchy = "day"
    show_full_result_count = False


class RecomputeRunDayInline(admin.TabularInline):
    model = RecomputeRunDay
    fields = ["start", "end", "done_at", "entries"]
    readonly_fields = fields
    extra = 0
    can_delete = False


@admin.register(RecomputeRun)
class RecomputeRunAdmin(admin.ModelAdmin):
    """Ledger recomputes sent to the costing workers a day at a time, and their progress."""

    list_display = ["created_at", "start", "end", "reason", "progress"]
    list_filter = ["reason"]
    readonly_fields = ["created_at", "start", "end", "reason"]
    inlines = [RecomputeRunDayInline]

    @admin.display(description="days done")
    def progress(self, run: RecomputeRun) -> str:
        days = list(run.days.values_list("done_at", flat=True))
        return f"{sum(d is not None for d in days)}/{len(days)}"


@admin.register(RecomputeRunDay)
class RecomputeRunDayAdmin(admin.ModelAdmin):
    list_display = ["run", "start", "end", "done_at", "entries"]
    list_filter = ["run"]
    readonly_fields = ["run", "start", "end", "done_at", "entries"]


@admin.register(FunnelHour)
class FunnelHourAdmin(admin.ModelAdmin):
    list_display = ["hour", "team", "gpu_model", "paid_amount", "held_amount", "active_amount",
                    "used_amount", "usable_amount"]  # fmt: skip
    list_filter = ["team", "gpu_model"]
    date_hierarchy = "hour"
    show_full_result_count = False


@admin.register(FocusExport)
class FocusExportAdmin(admin.ModelAdmin):
    list_display = ["day", "version", "rows", "billed_cost", "currency", "written_at",
                    "superseded_by"]  # fmt: skip
    list_filter = ["day"]
    readonly_fields = ["day", "version", "ledger_stamp", "rows", "billed_cost", "currency",
                       "files", "written_at", "superseded_by"]  # fmt: skip
