from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q


class Scope(models.TextChoices):
    """What an API key may do. ``read``: fleet, telemetry, jobs, costs of its teams.
    ``billing:read``: allocation, invoices and exports. ``ingest:write``: telemetry, nodes
    and job events."""

    INGEST_WRITE = "ingest:write", "ingest:write"
    BILLING_READ = "billing:read", "billing:read"
    READ = "read", "read"


class Role(models.TextChoices):
    VIEWER = "viewer", "Viewer"
    MANAGER = "manager", "Manager"
    FINANCE = "finance", "Finance"
    ADMIN = "admin", "Admin"


currency_validator = RegexValidator(r"^[A-Z]{3}$", "Use an ISO 4217 code such as USD.")


class Team(models.Model):
    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    monthly_budget = models.DecimalField(
        max_digits=14,
        decimal_places=2,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal(0))],
        help_text="Monthly GPU budget in the team's currency; empty for none.",
    )
    currency = models.CharField(max_length=3, default="USD", validators=[currency_validator])
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["slug"]
        constraints = [
            models.CheckConstraint(
                condition=Q(monthly_budget__isnull=True) | Q(monthly_budget__gte=0),
                name="team_budget_non_negative",
            ),
            # Slugs starting with "__" are reserved for ledger buckets (__idle__, __unallocated__).
            models.CheckConstraint(
                condition=~Q(slug__startswith="__"), name="team_slug_not_reserved"
            ),
        ]

    def __str__(self) -> str:
        return self.slug


class Membership(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "team"], name="membership_user_team_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.user} @ {self.team} ({self.role})"


class ApiKey(models.Model):
    """A bearer key for machines (agents, render farms, billing systems).

    The key is shown once at creation. The database keeps its visible ``prefix`` (to tell
    keys apart in lists) and ``digest`` = HMAC-SHA256(API_KEY_SECRET, key): a leaked
    database does not leak usable keys.
    """

    name = models.CharField(max_length=200)
    prefix = models.CharField(max_length=16, db_index=True)
    digest = models.CharField(max_length=64, unique=True)
    scopes = models.JSONField(default=list, help_text="Subset of ingest:write, billing:read, read.")
    team = models.ForeignKey(
        Team,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="api_keys",
        help_text="When set, the key sees and writes only this team's data.",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "API key"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes
