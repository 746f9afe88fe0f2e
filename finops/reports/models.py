from __future__ import annotations

import zoneinfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from finops.accounts.models import Team


def timezone_validator(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(f"{value!r} is not an IANA time zone (for example Europe/Paris).")


class ReportSubscription(models.Model):
    """A weekly cost report for one recipient, about one team or every team they can see,
    sent for the last full week (Monday to Sunday in ``timezone``) at ``weekday`` and
    ``hour`` in that zone."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="report_subscriptions",
        help_text="Whose view the report shows; empty: an address an admin subscribed.",
    )
    email = models.EmailField()
    team = models.ForeignKey(
        Team,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="report_subscriptions",
        help_text="Empty: every team the recipient may see.",
    )
    weekday = models.PositiveSmallIntegerField(default=0, help_text="0 = Monday.")
    hour = models.PositiveSmallIntegerField(default=7, help_text="Hour of the day in timezone.")
    timezone = models.CharField(
        max_length=64,
        default="UTC",
        validators=[timezone_validator],
        help_text="IANA name, e.g. Asia/Tokyo: the week and the hour are the recipient's.",
    )
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(weekday__lte=6), name="reportsub_weekday_range"),
            models.CheckConstraint(condition=Q(hour__lte=23), name="reportsub_hour_range"),
            models.UniqueConstraint(fields=["email", "team"], name="reportsub_email_team_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.email} ({self.team.slug if self.team_id else 'all teams'})"


class ReportRunStatus(models.TextChoices):
    CLAIMED = "claimed", "Claimed"
    WAITING = "waiting", "Waiting for complete data"
    RETRYING = "retrying", "Retrying after a delivery failure"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"


PENDING = (ReportRunStatus.CLAIMED, ReportRunStatus.WAITING, ReportRunStatus.RETRYING)


class ReportRun(models.Model):
    """One week's report for one subscription; unique per (subscription, week) so a retried
    or duplicated task, or two beat schedulers, never send twice."""

    subscription = models.ForeignKey(
        ReportSubscription, on_delete=models.CASCADE, related_name="runs"
    )
    week_start = models.DateField(help_text="Monday of the reported week, in the recipient's zone.")
    status = models.CharField(
        max_length=8, choices=ReportRunStatus.choices, default=ReportRunStatus.CLAIMED
    )
    claimed_at = models.DateTimeField(auto_now_add=True)
    due_at = models.DateTimeField(null=True, blank=True, help_text="When it was due to be sent.")
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    provisional = models.JSONField(
        default=list, blank=True, help_text="The figures it called provisional, and why."
    )
    sent_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-week_start"]
        constraints = [
            models.UniqueConstraint(
                fields=["subscription", "week_start"], name="reportrun_week_unique"
            ),
        ]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="reportrun_pending_idx")]

    def __str__(self) -> str:
        return f"{self.subscription} week of {self.week_start}"
