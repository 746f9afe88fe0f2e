from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from finops.accounts.models import Team


class ReportSubscription(models.Model):
    """A weekly cost report for one recipient, about one team or every team they can see."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="report_subscriptions",
    )
    email = models.EmailField()
    team = models.ForeignKey(
        Team, on_delete=models.CASCADE, null=True, blank=True, related_name="report_subscriptions"
    )
    weekday = models.PositiveSmallIntegerField(default=0, help_text="0 = Monday.")
    hour_utc = models.PositiveSmallIntegerField(default=7)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(weekday__lte=6), name="reportsub_weekday_range"),
            models.CheckConstraint(condition=Q(hour_utc__lte=23), name="reportsub_hour_range"),
            models.UniqueConstraint(fields=["email", "team"], name="reportsub_email_team_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.email} ({self.team.slug if self.team_id else 'all teams'})"


class ReportRunStatus(models.TextChoices):
    CLAIMED = "claimed", "Claimed"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"


class ReportRun(models.Model):
    """One week's report for one subscription; unique per (subscription, week) so a retried
    or duplicated task never sends twice."""

    subscription = models.ForeignKey(
        ReportSubscription, on_delete=models.CASCADE, related_name="runs"
    )
    week_start = models.DateField(help_text="Monday of the reported week (UTC).")
    status = models.CharField(
        max_length=8, choices=ReportRunStatus.choices, default=ReportRunStatus.CLAIMED
    )
    claimed_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-week_start"]
        constraints = [
            models.UniqueConstraint(
                fields=["subscription", "week_start"], name="reportrun_week_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.subscription} week of {self.week_start}"
