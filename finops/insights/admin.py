from __future__ import annotations

from django.contrib import admin

from finops.insights.models import Finding, FindingResolution


@admin.register(Finding)
class FindingAdmin(admin.ModelAdmin):
    list_display = [
        "pattern",
        "severity",
        "scope_kind",
        "scope_key",
        "team",
        "est_monthly_waste",
        "status",
        "last_seen_at",
    ]
    list_filter = ["status", "pattern", "severity", "scope_kind", "team"]
    search_fields = ["scope_key", "dedup_key", "recommendation"]
    readonly_fields = ["dedup_key", "first_seen_at", "last_seen_at"]
    list_select_related = ["team"]


@admin.register(FindingResolution)
class FindingResolutionAdmin(admin.ModelAdmin):
    list_display = ["finding", "resolved_at", "resolved_by", "state", "projected_monthly",
                    "realized_monthly", "ratio"]  # fmt: skip
    list_filter = ["state", "resolved_by"]
    readonly_fields = ["measured_at"]
    list_select_related = ["finding"]
