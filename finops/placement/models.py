"""Which hosted video offerings may replace an in-house model: a person's call, recorded."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from finops.accounts.models import Team
from finops.pricing.models import VideoApiOffering


class PlacementMapping(models.Model):
    """An in-house model (optionally at one resolution, "WxH", and for one team) whose output
    an offering may replace. Only mapped offerings are ever recommended; others of the same
    tier are shown for reference. Whether an output is good enough is a team's call, so a
    mapping may hold for one team only."""

    model_name = models.CharField(max_length=200, help_text="As jobs report it.")
    resolution = models.CharField(
        max_length=32, blank=True, help_text='"WxH", e.g. 1280x720; empty: every resolution.'
    )
    offering = models.ForeignKey(
        VideoApiOffering, on_delete=models.CASCADE, related_name="mappings"
    )
    team = models.ForeignKey(
        Team,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="placement_mappings",
        help_text="Empty: every team; else only this team accepts the offering's output.",
    )
    note = models.TextField(blank=True, help_text="Why its output is good enough.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["model_name", "resolution", "offering"]
        constraints = [
            models.UniqueConstraint(
                fields=["model_name", "resolution", "offering", "team"],
                name="placement_mapping_unique",
                nulls_distinct=False,
            )
        ]

    def __str__(self) -> str:
        who = self.team.slug if self.team_id else "every team"
        return f"{self.model_name} {self.resolution or '(any)'} -> {self.offering} ({who})"
