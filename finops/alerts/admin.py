from __future__ import annotations

from django.contrib import admin

from finops.alerts.models import Alert, AlertRule, Channel, Notification, Silence


@admin.register(Channel)
class ChannelAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "target", "team", "enabled"]
    list_filter = ["kind", "enabled", "team"]
    search_fields = ["name", "target"]


@admin.register(AlertRule)
class AlertRuleAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "kind",
        "threshold",
        "resolve_threshold",
        "for_s",
        "severity",
        "team",
        "enabled",
    ]
    list_filter = ["kind", "severity", "enabled", "team"]
    search_fields = ["name"]
    filter_horizontal = ["channels"]


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    list_display = [
        "rule",
        "dedup_key",
        "state",
        "value",
        "pending_since",
        "fired_at",
        "resolved_at",
    ]
    list_filter = ["state", "rule"]
    search_fields = ["dedup_key", "rule__name"]
    list_select_related = ["rule"]


@admin.register(Silence)
class SilenceAdmin(admin.ModelAdmin):
    list_display = ["rule", "starts_at", "ends_at", "comment", "created_by"]
    list_filter = ["rule"]
    search_fields = ["comment"]


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = ["alert", "channel", "kind", "status", "attempts", "created_at", "sent_at"]
    list_filter = ["status", "kind", "channel"]
    search_fields = ["alert__dedup_key", "last_error"]
    raw_id_fields = ["alert"]
    list_select_related = ["alert__rule", "channel"]
