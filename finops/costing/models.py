from __future__ import annotations

from datetime import datetime, timedelta

from django.db import models
from django.db.models import Q

from finops.accounts.models import Team, currency_validator
from finops.fleet.models import Gpu, GpuModel, Node
from finops.jobs.models import Clip, RenderJob


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
    """One attributed cost in one hour window, for both bases: ``amount`` is the allocation
    basis; the usage basis charges a team's GPU line ``round(amount x activity, 6)`` and
    books the rest as waste (``activity`` is 1 on every other line). Recomputing replaces
    the lines of whole UTC days in one transaction."""

    window_start = models.DateTimeField()
    bucket = models.CharField(max_length=16, choices=Bucket.choices, default=Bucket.TEAM)
    # No database constraints or single-column indexes on these keys: a month's ledger is
    # millions of rows written in one transaction; PostgreSQL checks deferred foreign keys
    # row by row at commit (a quarter of a recompute) and every index is written per row
    # (four of them doubled the write). The lines are derived from the rows they name, in
    # the same transaction; PROTECT and SET_NULL still hold for deletes through Django (a
    # rare scan). Reads go through the window index.
    team = models.ForeignKey(
        Team,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="ledger_entries",
        db_constraint=False,
        db_index=False,
    )
    job = models.ForeignKey(
        RenderJob,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="ledger_entries",
        db_constraint=False,
        db_index=False,
    )
    node = models.ForeignKey(
        Node, on_delete=models.PROTECT, null=True, blank=True, db_constraint=False, db_index=False
    )
    gpu = models.ForeignKey(
        Gpu, on_delete=models.PROTECT, null=True, blank=True, db_constraint=False, db_index=False
    )
    component = models.CharField(max_length=8, choices=Component.choices)
    quantity = models.DecimalField(max_digits=20, decimal_places=6)
    unit = models.CharField(max_length=16, help_text="gpu_hour, gb_month or kwh.")
    unit_price = models.DecimalField(max_digits=14, decimal_places=6, null=True, blank=True)
    amount = models.DecimalField(max_digits=18, decimal_places=6)
    currency = models.CharField(max_length=3, default="USD", validators=[currency_validator])
    activity = models.DecimalField(
        max_digits=7,
        decimal_places=6,
        default=1,
        help_text="Measured SM activity of the GPU in the window (0-1): the usage basis's "
        "factor on a team's GPU line.",
    )
    activity_assumed = models.BooleanField(
        default=False,
        help_text="No telemetry covered the time the job held the GPU: activity taken as 1.",
    )
    computed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "ledger entries"
        ordering = ["window_start", "bucket", "team"]
        # One index: every read and every recompute selects by window (a team's invoice
        # filters the month's lines; a team-window index cost a quarter of each write).
        indexes = [models.Index(fields=["window_start"], name="ledger_window_idx")]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gte=0), name="ledger_amount_non_negative"),
            models.CheckConstraint(
                condition=Q(activity__gte=0, activity__lte=1), name="ledger_activity_fraction"
            ),
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

    @property
    def window_end(self) -> datetime:
        return self.window_start + timedelta(hours=1)


class LedgerPrice(models.Model):
    """The GPU-hour rate the ledger applied to a node in an hour window, and why: written
    with the ledger lines of that hour (every line of the node carries the price)."""

    window_start = models.DateTimeField()
    node = models.ForeignKey(Node, on_delete=models.CASCADE, db_constraint=False, db_index=False)
    unit_price = models.DecimalField(max_digits=14, decimal_places=6, null=True, blank=True)
    currency = models.CharField(max_length=3, validators=[currency_validator])
    reason = models.CharField(max_length=200, help_text="Which rate was used, and why.")

    class Meta:
        indexes = [models.Index(fields=["window_start", "node"], name="ledgerprice_window_idx")]

    def __str__(self) -> str:
        return f"{self.window_start:%Y-%m-%d %H:00} {self.node_id}: {self.unit_price}"


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
    # Keys as on LedgerEntry: derived in the same transaction, no per-row checks or indexes.
    team = models.ForeignKey(
        Team, on_delete=models.CASCADE, null=True, blank=True, db_constraint=False, db_index=False
    )
    node = models.ForeignKey(
        Node, on_delete=models.CASCADE, null=True, blank=True, db_constraint=False, db_index=False
    )
    gpu_model = models.ForeignKey(
        GpuModel,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        db_constraint=False,
        db_index=False,
        help_text="The model of the lines' GPU; empty for storage and energy (no GPU).",
    )
    component = models.CharField(max_length=8, choices=Component.choices)
    regeneration = models.BooleanField(
        default=False, help_text="Cost of attempts that were not usable."
    )
    quantity = models.DecimalField(max_digits=20, decimal_places=6)
    amount = models.DecimalField(max_digits=18, decimal_places=6)
    unpriced_quantity = models.DecimalField(
        max_digits=20, decimal_places=6, default=0, help_text="GPU-hours no price resolved for."
    )
    assumed_quantity = models.DecimalField(
        max_digits=20,
        decimal_places=6,
        default=0,
        help_text="GPU-hours of jobs whose activity was assumed (no telemetry).",
    )

    class Meta:
        # Day first: a recompute replaces whole days, reports read a range of days by basis.
        indexes = [models.Index(fields=["day", "basis"], name="ledgerday_day_basis_idx")]

    def __str__(self) -> str:
        return f"{self.day:%Y-%m-%d} {self.bucket} {self.component} {self.amount}"


class DaySums(models.Model):
    """What every daily summary of the ledger holds beside its keys: the day, basis, bucket,
    team, component and regeneration flag, and the sums of the lines."""

    day = models.DateTimeField(help_text="Start of the UTC day.")
    basis = models.CharField(max_length=16, choices=Basis.choices)
    bucket = models.CharField(max_length=16, choices=Bucket.choices)
    team = models.ForeignKey(
        Team, on_delete=models.CASCADE, null=True, blank=True, db_constraint=False, db_index=False
    )
    component = models.CharField(max_length=8, choices=Component.choices)
    regeneration = models.BooleanField(default=False)
    quantity = models.DecimalField(max_digits=20, decimal_places=6)
    amount = models.DecimalField(max_digits=18, decimal_places=6)
    unpriced_quantity = models.DecimalField(max_digits=20, decimal_places=6, default=0)
    assumed_quantity = models.DecimalField(max_digits=20, decimal_places=6, default=0)

    class Meta:
        abstract = True


class LedgerTeamDay(DaySums):
    """The ledger summed per UTC day, basis, bucket, team, component and regeneration: what
    a report by team alone (the overview, budgets, the cost gauges) reads, a few hundred
    rows a day whatever the fleet's size. Kept with ``LedgerDay`` (the same sums without
    the node and GPU model)."""

    class Meta:
        indexes = [models.Index(fields=["day", "basis"], name="ledgerteamday_day_basis_idx")]

    def __str__(self) -> str:
        return f"{self.day:%Y-%m-%d} {self.team_id} {self.component} {self.amount}"


class LedgerDimensionDay(DaySums):
    """The ledger summed per UTC day, basis, bucket and the dimensions of the line's job
    (team, project, model, model version, resolution), component and regeneration, kept in
    step with the ledger by every recompute: pages, reports and the allocation API read a
    team's breakdown by job dimension from this, not from its per-job lines. Lines of no
    job (storage, energy, idle, unallocated) have null dimensions (NULL, not empty: a job
    may report an empty project, and the two are told apart as the lines tell them)."""

    project = models.CharField(max_length=200, null=True, blank=True)  # noqa: DJ001
    model_name = models.CharField(max_length=200, null=True, blank=True)  # noqa: DJ001
    model_version = models.CharField(max_length=64, null=True, blank=True)  # noqa: DJ001
    resolution = models.CharField(  # noqa: DJ001
        max_length=32, null=True, blank=True, help_text="WIDTHxHEIGHT; empty: not reported."
    )

    class Meta:
        indexes = [models.Index(fields=["day", "basis", "team"], name="ledgerdimday_day_basis_idx")]

    def __str__(self) -> str:
        return f"{self.day:%Y-%m-%d} {self.team_id} {self.project} {self.component} {self.amount}"


class OutputDay(models.Model):
    """Attempts finished and seconds of video generated and usable per UTC day, team and job
    dimension (project, model, model version, resolution), kept with the ledger's daily
    summaries: a clip's usable seconds count once, on the day its first usable attempt
    finished."""

    day = models.DateTimeField()
    team = models.ForeignKey(Team, on_delete=models.CASCADE)
    project = models.CharField(max_length=200, blank=True)
    model_name = models.CharField(max_length=200, blank=True)
    model_version = models.CharField(max_length=64, blank=True)
    resolution = models.CharField(max_length=32, blank=True, help_text="WIDTHxHEIGHT.")
    attempts = models.PositiveIntegerField(default=0, help_text="Jobs that finished this day.")
    generated_seconds = models.FloatField(default=0)
    usable_seconds = models.FloatField(default=0)

    class Meta:
        indexes = [models.Index(fields=["day", "team"], name="outputday_day_team_idx")]

    def __str__(self) -> str:
        return f"{self.day:%Y-%m-%d} {self.team_id}: {self.usable_seconds:.1f} s usable"


class ClipDay(models.Model):
    """A clip's day, kept with the ledger's daily summaries: the cost of its attempts' ledger
    lines that day (allocation basis), and the attempts that started that day, how many of
    them were judged usable, whether the clip's first usable attempt is among them, and when
    the first and last of them started. A clip may have two rows a day (one for cost, one
    for attempts): readers sum them."""

    day = models.DateTimeField()
    clip = models.ForeignKey(Clip, on_delete=models.CASCADE, db_constraint=False, db_index=False)
    team = models.ForeignKey(Team, on_delete=models.CASCADE, db_constraint=False, db_index=False)
    cost = models.DecimalField(
        max_digits=18,
        decimal_places=6,
        null=True,
        blank=True,
        help_text="Null on a row of attempts only (the clip had no ledger lines that day).",
    )
    attempts = models.PositiveIntegerField(default=0)
    usable_attempts = models.PositiveIntegerField(default=0)
    first_usable = models.PositiveSmallIntegerField(
        default=0, help_text="1 when the clip's first usable attempt started this day."
    )
    first_attempt_at = models.DateTimeField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["day", "team"], name="clipday_day_team_idx"),
            models.Index(fields=["clip"], name="clipday_clip_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.day:%Y-%m-%d} clip {self.clip_id}: {self.cost}"


class RecomputeRun(models.Model):
    """A ledger recompute fanned out over Celery workers, a task per UTC day: its days are
    marked done in the transaction that writes them, so progress counts each day once
    however often a task is delivered."""

    created_at = models.DateTimeField(auto_now_add=True)
    start = models.DateTimeField()
    end = models.DateTimeField()
    reason = models.CharField(max_length=32, help_text="command or dirty-windows")

    def __str__(self) -> str:
        return f"recompute {self.start:%Y-%m-%d %H:%M} to {self.end:%Y-%m-%d %H:%M} ({self.reason})"


class RecomputeRunDay(models.Model):
    run = models.ForeignKey(RecomputeRun, on_delete=models.CASCADE, related_name="days")
    start = models.DateTimeField()
    end = models.DateTimeField()
    done_at = models.DateTimeField(null=True, blank=True)
    entries = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["run", "start"], name="recomputerunday_run_start_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.run_id}: {self.start:%Y-%m-%d %H:%M}"


class FunnelHour(models.Model):
    """Where each paid dollar of GPU time went, per hour, team (empty: idle and unallocated
    time) and GPU model, kept with the ledger's daily summaries (``finops.costing.funnel``):
    paid ⊇ held ⊇ active ⊇ used ⊇ on usable output. Hourly, as the ledger's lines are, so
    any window is read from it alone (a few rows per team an hour, whatever the job count)."""

    hour = models.DateTimeField()
    team = models.ForeignKey(
        Team, on_delete=models.CASCADE, null=True, blank=True, db_constraint=False, db_index=False
    )
    gpu_model = models.ForeignKey(
        GpuModel, on_delete=models.CASCADE, null=True, blank=True, db_constraint=False,
        db_index=False,
    )  # fmt: skip
    paid_amount = models.DecimalField(max_digits=18, decimal_places=6, default=0)
    paid_hours = models.DecimalField(max_digits=20, decimal_places=6, default=0)
    held_amount = models.DecimalField(max_digits=18, decimal_places=6, default=0)
    held_hours = models.DecimalField(max_digits=20, decimal_places=6, default=0)
    active_amount = models.DecimalField(max_digits=18, decimal_places=6, default=0)
    active_hours = models.DecimalField(max_digits=20, decimal_places=6, default=0)
    used_amount = models.DecimalField(max_digits=18, decimal_places=6, default=0)
    used_hours = models.DecimalField(max_digits=20, decimal_places=6, default=0)
    usable_amount = models.DecimalField(max_digits=18, decimal_places=6, default=0)
    usable_hours = models.DecimalField(max_digits=20, decimal_places=6, default=0)

    class Meta:
        indexes = [models.Index(fields=["hour"], name="funnelhour_hour_idx")]

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H:%M} {self.team_id} {self.gpu_model_id}: {self.paid_amount}"


class FocusExport(models.Model):
    """One version of a UTC day's FOCUS file(s) in ``FOCUS_EXPORT_DIR``
    (``finops.costing.focus_files``): written once the day is complete and its ledger clean,
    and written again, as the next version, when the day's ledger is recomputed later."""

    day = models.DateField()
    version = models.PositiveIntegerField()
    ledger_stamp = models.CharField(
        max_length=64, help_text="The day's ledger as exported (changes on a recompute)."
    )
    rows = models.PositiveIntegerField()
    billed_cost = models.DecimalField(max_digits=20, decimal_places=6)
    currency = models.CharField(max_length=3, validators=[currency_validator])
    files = models.JSONField(default=dict, help_text="format -> {name, bytes, sha256}")
    written_at = models.DateTimeField()
    superseded_by = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="supersedes"
    )

    class Meta:
        ordering = ["day", "version"]
        constraints = [
            models.UniqueConstraint(fields=["day", "version"], name="focusexport_day_version"),
            models.CheckConstraint(condition=Q(version__gte=1), name="focusexport_version_from_1"),
        ]

    def __str__(self) -> str:
        return f"FOCUS {self.day} v{self.version}"
