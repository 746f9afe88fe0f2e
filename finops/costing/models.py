from __future__ import annotations

from django.db import models
from django.db.models import F, Q

from finops.accounts.models import Team, currency_validator
from finops.fleet.models import Gpu, Node
from finops.jobs.models import RenderJob


class Bucket(models.TextChoices):
    TEAM = "team", "Team"
    IDLE = "__idle__", "Idle"
    UNALLOCATED = "__unallocated__", "Unallocated"


class Component(models.TextChoices):
    GPU = "gpu", "GPU time"
    IDLE = "idle", "Idle GPU time"
    WASTE = "waste", "Reserved but unused (usage basis)"
    STORAGE = "storage", "Storage"
    ENERGY = "energy", "Energy"


class Basis(models.TextChoices):
    ALLOCATION = "allocation", "Allocation"
    USAGE = "usage", "Usage"


class LedgerEntry(models.Model):
    """One attributed cost in one hour window. A window is recomputed by replacing all its
    entries for a basis in one transaction."""

    window_start = models.DateTimeField()
    window_end = models.DateTimeField()
    bucket = models.CharField(max_length=16, choices=Bucket.choices, default=Bucket.TEAM)
    # No database constraints on these keys: a month's ledger is millions of rows written in
    # one transaction, and PostgreSQL checks deferred foreign keys row by row at commit (a
    # quarter of a recompute). The lines are derived from the rows they name, in the same
    # transaction; PROTECT and SET_NULL still hold for deletes through Django.
    team = models.ForeignKey(
        Team,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="ledger_entries",
        db_constraint=False,
    )
    job = models.ForeignKey(
        RenderJob,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="ledger_entries",
        db_constraint=False,
    )
    node = models.ForeignKey(
        Node, on_delete=models.PROTECT, null=True, blank=True, db_constraint=False
    )
    gpu = models.ForeignKey(
        Gpu, on_delete=models.PROTECT, null=True, blank=True, db_constraint=False
    )
    component = models.CharField(max_length=8, choices=Component.choices)
    quantity = models.DecimalField(max_digits=20, decimal_places=6)
    unit = models.CharField(max_length=16, help_text="gpu_hour, gb_month or kwh.")
    unit_price = models.DecimalField(max_digits=14, decimal_places=6, null=True, blank=True)
    amount = models.DecimalField(max_digits=18, decimal_places=6)
    currency = models.CharField(max_length=3, default="USD", validators=[currency_validator])
    basis = models.CharField(max_length=16, choices=Basis.choices, default=Basis.ALLOCATION)
    price_reason = models.CharField(
        max_length=200, blank=True, help_text="Which rate was used, and why."
    )
    computed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "ledger entries"
        ordering = ["window_start", "bucket", "team"]
        indexes = [
            models.Index(fields=["window_start", "basis"], name="ledger_window_basis_idx"),
            models.Index(fields=["team", "window_start"], name="ledger_team_window_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(window_end__gt=F("window_start")), name="ledger_window_positive"
            ),
            models.CheckConstraint(condition=Q(amount__gte=0), name="ledger_amount_non_negative"),
            models.CheckConstraint(
                condition=Q(quantity__gte=0), name="ledger_quantity_non_negative"
            ),
            models.CheckConstraint(
                condition=(Q(bucket="team") & Q(team__isnull=False))
                | (~Q(bucket="team") & Q(team__isnull=True)),
                name="ledger_team_matches_bucket",
            ),
        ]

    def __str__(self) -> str:
        who = self.team.slug if self.team_id else self.bucket
        when = f"{self.window_start:%Y-%m-%d %H:00}"
        return f"{when} {who} {self.component} {self.amount} {self.currency}"


class DirtyWindow(models.Model):
    """An hour whose ledger is stale; the costing task recomputes and removes it."""

    window_start = models.DateTimeField(unique=True)
    marked_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.window_start:%Y-%m-%d %H:00}"


class LedgerDay(models.Model):
    """The ledger summed per UTC day, team, node and component, kept in step with the
    ledger by every recompute: month-long reports by team or node read this, not the
    millions of hourly entries."""

    day = models.DateTimeField(help_text="Start of the UTC day.")
    basis = models.CharField(max_length=16, choices=Basis.choices)
    bucket = models.CharField(max_length=16, choices=Bucket.choices)
    team = models.ForeignKey(Team, on_delete=models.CASCADE, null=True, blank=True)
    node = models.ForeignKey(Node, on_delete=models.CASCADE, null=True, blank=True)
    component = models.CharField(max_length=8, choices=Component.choices)
    regeneration = models.BooleanField(
        default=False, help_text="Cost of attempts that were not usable."
    )
    quantity = models.DecimalField(max_digits=20, decimal_places=6)
    amount = models.DecimalField(max_digits=18, decimal_places=6)

    class Meta:
        indexes = [models.Index(fields=["basis", "day"], name="ledgerday_basis_day_idx")]

    def __str__(self) -> str:
        return f"{self.day:%Y-%m-%d} {self.bucket} {self.component} {self.amount}"


class OutputDay(models.Model):
    """Seconds of video generated and usable per UTC day and team, kept with LedgerDay: a
    clip's usable seconds count once, on the day its first usable attempt finished."""

    day = models.DateTimeField()
    team = models.ForeignKey(Team, on_delete=models.CASCADE)
    generated_seconds = models.FloatField(default=0)
    usable_seconds = models.FloatField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["day", "team"], name="outputday_day_team_unique")
        ]

    def __str__(self) -> str:
        return f"{self.day:%Y-%m-%d} {self.team_id}: {self.usable_seconds:.1f} s usable"
