from __future__ import annotations

from django.contrib import admin

from finops.insights.models import Finding


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
