from __future__ import annotations

from django.db import models
from django.db.models import F, Q

from finops.accounts.models import Team, currency_validator


class Pattern(models.TextChoices):
    MEMORY_UNDERINVESTMENT = "memory_underinvestment", "Memory underinvestment"
    PREMATURE_SCALING = "premature_horizontal_scaling", "Premature horizontal scaling"
    THERMAL_THROTTLING = "thermal_throttling", "Thermal throttling"
    POWER_CAPPING = "power_capping", "Power capping"
    IO_STARVATION = "io_starvation", "I/O starvation"
    REGENERATION_WASTE = "regeneration_waste", "Regeneration waste"
    IDLE_CAPACITY = "idle_capacity", "Idle capacity"
    MODEL_COST_REGRESSION = "model_cost_regression", "Model cost regression"
    PLACEMENT = "placement", "Cheaper placement"
    IDLE_HELD = "idle_held", "Idle-held GPU"


class Severity(models.TextChoices):
    INFO = "info", "Info"
    WARNING = "warning", "Warning"
    CRITICAL = "critical", "Critical"


class ScopeKind(models.TextChoices):
    TEAM = "team", "Team"
    NODE = "node", "Node"
    GPU = "gpu", "GPU"
    GPU_MODEL = "gpu_model", "GPU model"
    MODEL = "model", "Model"
    JOB = "job", "Job"
    WORKLOAD = "workload", "Workload"


class FindingStatus(models.TextChoices):
    OPEN = "open", "Open"
    ACKNOWLEDGED = "acknowledged", "Acknowledged"
    RESOLVED = "resolved", "Resolved"


class Finding(models.Model):
    """A failure pattern seen in a window, with its evidence and a priced fix. One finding
    per ``dedup_key``: seeing it again moves ``last_seen_at`` rather than adding a row."""

    pattern = models.CharField(max_length=32, choices=Pattern.choices)
    severity = models.CharField(max_length=8, choices=Severity.choices, default=Severity.WARNING)
    scope_kind = models.CharField(max_length=16, choices=ScopeKind.choices)
    scope_key = models.CharField(
        max_length=200, help_text="Slug, hostname, GPU UUID, model name or job id."
    )
    team = models.ForeignKey(
        Team,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="findings",
        help_text="The team that sees it; empty for fleet-wide findings.",
    )
    window_start = models.DateTimeField()
    window_end = models.DateTimeField()
    evidence = models.JSONField(default=dict, help_text="The numbers behind the finding.")
    est_monthly_waste = models.DecimalField(max_digits=14, decimal_places=2, default=0)
    waste = models.DecimalField(
        max_digits=14,
        decimal_places=2,
        default=0,
        help_text="Waste in the window, from the ledger (never more than the scope's cost).",
    )
    thresholds = models.JSONField(default=dict, blank=True, help_text="The thresholds used.")
    window_s = models.PositiveIntegerField(
        default=86400, help_text="Length of the refresh window that found it (24 h, 7 d…)."
    )
    missed_runs = models.PositiveSmallIntegerField(
        default=0, help_text="Refreshes of its window length in a row that did not see it."
    )
    currency = models.CharField(max_length=3, default="USD", validators=[currency_validator])
    recommendation = models.TextField(blank=True)
    action = models.JSONField(
        default=dict, blank=True, help_text="Structured fix with projected cost per usable second."
    )
    status = models.CharField(
        max_length=16, choices=FindingStatus.choices, default=FindingStatus.OPEN
    )
    dedup_key = models.CharField(max_length=255, unique=True)
    first_seen_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()

    class Meta:
        ordering = ["-last_seen_at"]
        indexes = [models.Index(fields=["status", "pattern"], name="finding_status_pattern_idx")]
        constraints = [
            models.CheckConstraint(
                condition=Q(est_monthly_waste__gte=0), name="finding_waste_non_negative"
            ),
            models.CheckConstraint(
                condition=Q(waste__gte=0), name="finding_window_waste_non_negative"
            ),
            models.CheckConstraint(
                condition=Q(window_end__gt=F("window_start")), name="finding_window_positive"
            ),
            models.CheckConstraint(
                condition=Q(last_seen_at__gte=F("first_seen_at")), name="finding_seen_order"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_pattern_display()} on {self.scope_kind} {self.scope_key}"


class ResolvedBy(models.TextChoices):
    PERSON = "person", "A person"
    DETECTOR = "detector", "The detector (condition gone)"


class RealizationState(models.TextChoices):
    TOO_EARLY = "too_early", "Too early"
    MEASURED = "measured", "Measured"
    NOT_MEASURABLE = "not_measurable", "Not measurable"


class FindingResolution(models.Model):
    """One resolution of a finding and what it saved: the scope's measure over the window
    that raised it against the same length after the change (``finops.insights.savings``).
    A finding that re-opens keeps its resolutions; each is measured once its after-window
    is complete."""

    finding = models.ForeignKey(Finding, on_delete=models.CASCADE, related_name="resolutions")
    resolved_at = models.DateTimeField()
    resolved_by = models.CharField(max_length=16, choices=ResolvedBy.choices)
    resolved_by_user = models.CharField(max_length=150, blank=True)
    before_start = models.DateTimeField()
    before_end = models.DateTimeField(help_text="End of the window that raised it.")
    changed_at = models.DateTimeField(help_text="The change: the after-window starts here.")
    after_end = models.DateTimeField()
    projected_monthly = models.DecimalField(
        max_digits=14, decimal_places=2, help_text="The finding's projection when resolved."
    )
    currency = models.CharField(max_length=3, default="USD", validators=[currency_validator])
    state = models.CharField(
        max_length=16, choices=RealizationState.choices, default=RealizationState.TOO_EARLY
    )
    measure = models.CharField(max_length=200, blank=True, help_text="What was compared.")
    before = models.JSONField(default=dict, blank=True)
    after = models.JSONField(default=dict, blank=True)
    realized_monthly = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    ratio = models.FloatField(null=True, blank=True, help_text="Realized over projected.")
    reason = models.TextField(blank=True, help_text="Why it is not measurable, or a caveat.")
    measured_at = models.DateTimeField(null=True, blank=True)
    reopened_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-resolved_at", "-pk"]
        indexes = [models.Index(fields=["state", "after_end"], name="resolution_state_idx")]
        constraints = [
            models.CheckConstraint(
                condition=Q(before_end__gt=F("before_start"))
                & Q(changed_at__gte=F("before_end"))
                & Q(after_end__gt=F("changed_at")),
                name="resolution_windows_ordered",
            ),
            models.CheckConstraint(
                condition=Q(projected_monthly__gte=0), name="resolution_projected_non_negative"
            ),
            models.CheckConstraint(
                condition=~Q(state="measured") | Q(realized_monthly__isnull=False),
                name="resolution_measured_has_amount",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.finding} resolved {self.resolved_at:%Y-%m-%d %H:%M} ({self.state})"
