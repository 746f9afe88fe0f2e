from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q

from finops.accounts.models import Team
from finops.insights.models import Severity


class ChannelKind(models.TextChoices):
    EMAIL = "email", "E-mail"
    WEBHOOK = "webhook", "JSON webhook"
    SLACK = "slack", "Slack-compatible webhook"


class Channel(models.Model):
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=8, choices=ChannelKind.choices)
    target = models.CharField(
        max_length=1000, help_text="Comma-separated addresses, or the webhook URL."
    )
    team = models.ForeignKey(
        Team, on_delete=models.CASCADE, null=True, blank=True, related_name="channels"
    )
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"


class RuleKind(models.TextChoices):
    THERMAL_THROTTLING = "thermal_throttling", "Thermal throttling (reasons 0x8/0x20/0x40)"
    POWER_CAPPING = "power_capping", "Power capping (reasons 0x4/0x80)"
    MEMORY_PRESSURE = "memory_pressure", "Memory pressure"
    GPU_IDLE = "gpu_idle", "Paid GPU idle"
    IDLE_HELD = "idle_held", "Idle-held GPU (memory in use, no SM activity)"
    TELEMETRY_STALE = "telemetry_stale", "Telemetry stopped arriving"
    BUDGET = "budget", "Team budget burn"


# Rule parameters and their bounds (docs/alerts.md "Rule parameters"), in seconds:
# (smallest, largest, step). ``window_s`` is read from minute rollups, so whole minutes.
RULE_PARAM_BOUNDS: dict[str, tuple[int, int, int]] = {
    "window_s": (60, 86_400, 60),
    "group_wait_s": (0, 3_600, 1),
    "group_interval_s": (60, 86_400, 1),
}
RULE_FIELD_BOUNDS: dict[str, tuple[int, int]] = {
    "for_s": (0, 86_400),
    "repeat_interval_s": (60, 30 * 86_400),
}
BUDGET_MEASURES = ("forecast", "actual")


def rule_params_errors(kind: str, params: object) -> list[str]:
    """What is wrong with a rule's ``params``, one message per problem, naming the key."""
    if not isinstance(params, dict):
        return ["params must be a JSON object"]
    errors = []
    for key, (low, high, step) in RULE_PARAM_BOUNDS.items():
        if key not in params:
            continue
        value = params[key]
        if isinstance(value, bool) or not isinstance(value, int):
            errors.append(f"params.{key} must be a whole number of seconds")
        elif not low <= value <= high or value % step:
            unit = " in whole minutes" if step == 60 else ""
            errors.append(f"params.{key} must be from {low} to {high} seconds{unit}")
    if kind == "idle_held" and "mem_frac" in params:
        value = params["mem_frac"]
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
            errors.append("params.mem_frac must be a share of VRAM above 0 and at most 1")
    if kind == "budget" and params.get("measure", "forecast") not in BUDGET_MEASURES:
        errors.append(f"params.measure must be one of {', '.join(BUDGET_MEASURES)}")
    return errors


class AlertRule(models.Model):
    name = models.CharField(max_length=200, unique=True)
    kind = models.CharField(max_length=32, choices=RuleKind.choices)
    params = models.JSONField(default=dict, blank=True, help_text="Kind-specific parameters.")
    threshold = models.FloatField(help_text="Fires when the measured value is at or above this.")
    resolve_threshold = models.FloatField(
        null=True,
        blank=True,
        help_text="Hysteresis: resolves only below this (default: threshold).",
    )
    for_s = models.PositiveIntegerField(default=300, help_text="Condition must hold this long.")
    repeat_interval_s = models.PositiveIntegerField(default=4 * 3600)
    severity = models.CharField(max_length=8, choices=Severity.choices, default=Severity.WARNING)
    team = models.ForeignKey(
        Team, on_delete=models.CASCADE, null=True, blank=True, related_name="alert_rules"
    )
    channels = models.ManyToManyField(Channel, blank=True, related_name="rules")
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(repeat_interval_s__gte=60), name="alertrule_repeat_at_least_minute"
            ),
            models.CheckConstraint(
                condition=Q(resolve_threshold__isnull=True)
                | Q(resolve_threshold__lte=F("threshold")),
                name="alertrule_hysteresis_order",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        errors: dict[str, list[str]] = {}
        if problems := rule_params_errors(self.kind, self.params):
            errors["params"] = problems
        for name, (low, high) in RULE_FIELD_BOUNDS.items():
            value = getattr(self, name)
            if value is not None and not low <= value <= high:
                errors[name] = [f"must be from {low} to {high} seconds"]
        if errors:
            raise ValidationError(errors)


class AlertState(models.TextChoices):
    PENDING = "pending", "Pending"
    FIRING = "firing", "Firing"
    RESOLVED = "resolved", "Resolved"


class Alert(models.Model):
    """One occurrence of a rule's condition for one subject (e.g. one GPU)."""

    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="alerts")
    dedup_key = models.CharField(max_length=255, help_text="Rule + subject, e.g. thermal:GPU-5fd4…")
    labels = models.JSONField(default=dict, blank=True)
    state = models.CharField(max_length=8, choices=AlertState.choices, default=AlertState.PENDING)
    value = models.FloatField(null=True, blank=True)
    pending_since = models.DateTimeField()
    fired_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    last_evaluated_at = models.DateTimeField()
    last_notified_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-pending_since"]
        constraints = [
            # At most one open (pending or firing) alert per rule and subject.
            models.UniqueConstraint(
                fields=["rule", "dedup_key"],
                condition=~Q(state="resolved"),
                name="alert_one_open_per_key",
            ),
            models.CheckConstraint(
                condition=Q(fired_at__isnull=True) | Q(fired_at__gte=F("pending_since")),
                name="alert_fired_after_pending",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.rule.name} [{self.dedup_key}] {self.state}"


class Silence(models.Model):
    """Mutes notifications for matching alerts between ``starts_at`` and ``ends_at``."""

    rule = models.ForeignKey(
        AlertRule, on_delete=models.CASCADE, null=True, blank=True, related_name="silences"
    )
    matchers = models.JSONField(default=dict, blank=True, help_text="Labels that must all match.")
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    comment = models.CharField(max_length=500, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True
    )

    class Meta:
        ordering = ["-starts_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(ends_at__gt=F("starts_at")), name="silence_range_positive"
            ),
        ]

    def __str__(self) -> str:
        return f"Silence {self.starts_at:%Y-%m-%d %H:%M} to {self.ends_at:%Y-%m-%d %H:%M}"


class NotificationKind(models.TextChoices):
    FIRING = "firing", "Firing"
    REPEAT = "repeat", "Still firing"
    RESOLVED = "resolved", "Resolved"


class NotificationStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"


class Notification(models.Model):
    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="notifications")
    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="notifications")
    kind = models.CharField(max_length=8, choices=NotificationKind.choices)
    status = models.CharField(
        max_length=8, choices=NotificationStatus.choices, default=NotificationStatus.PENDING
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True)
    group_key = models.CharField(
        max_length=300, blank=True, help_text="Rule and group labels (the node) it is sent with."
    )
    recorded_at = models.DateTimeField(null=True, blank=True, help_text="The tick that made it.")
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "created_at"], name="notification_status_idx")]
        constraints = [
            # Recorded before sending: a firing or resolved notice exists once per channel.
            models.UniqueConstraint(
                fields=["alert", "channel", "kind"],
                condition=Q(kind__in=["firing", "resolved"]),
                name="notification_once_per_alert_kind_channel",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.alert} -> {self.channel} ({self.status})"
