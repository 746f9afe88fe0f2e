from __future__ import annotations

from django.contrib import admin

from finops.reports.models import ReportRun, ReportSubscription


class ReportRunInline(admin.TabularInline):
    model = ReportRun
    extra = 0
    can_delete = False
    fields = ["week_start", "status", "attempts", "due_at", "sent_at", "provisional", "error"]
    readonly_fields = fields
    ordering = ["-week_start"]
    show_change_link = True


@admin.register(ReportSubscription)
class ReportSubscriptionAdmin(admin.ModelAdmin):
    list_display = ["email", "team", "weekday", "hour", "timezone", "enabled", "created_at"]
    list_filter = ["enabled", "weekday", "timezone", "team"]
    list_editable = ["enabled"]
    search_fields = ["email", "user__username"]
    raw_id_fields = ["user"]
    inlines = [ReportRunInline]


@admin.register(ReportRun)
class ReportRunAdmin(admin.ModelAdmin):
    list_display = ["subscription", "week_start", "status", "attempts", "claimed_at", "sent_at"]
    list_filter = ["status", "week_start"]
    search_fields = ["subscription__email", "error"]
    list_select_related = ["subscription__team"]
    readonly_fields = ["claimed_at"]
