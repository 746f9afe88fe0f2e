from __future__ import annotations

from django.contrib import admin

from finops.reports.models import ReportRun, ReportSubscription


@admin.register(ReportSubscription)
class ReportSubscriptionAdmin(admin.ModelAdmin):
    list_display = ["email", "team", "weekday", "hour_utc", "enabled", "created_at"]
    list_filter = ["enabled", "weekday", "team"]
    search_fields = ["email", "user__username"]
    raw_id_fields = ["user"]


@admin.register(ReportRun)
class ReportRunAdmin(admin.ModelAdmin):
    list_display = ["subscription", "week_start", "status", "claimed_at", "sent_at"]
    list_filter = ["status", "week_start"]
    search_fields = ["subscription__email", "error"]
    list_select_related = ["subscription__team"]
