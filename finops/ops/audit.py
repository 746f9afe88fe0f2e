"""The audit trail: who changed what and when, for the settings that move money or access.

django-auditlog keeps one table of changes (``auditlog.LogEntry``: actor, time, object,
action, field changes as JSON) filled from model signals, with the signed-in person taken
from the request by its middleware. One table suits the questions asked of an audit trail
("what did this person change", "every change in March", one export), where a history
table per model (django-simple-history) would need a union over a dozen tables. Changes
made by commands and tasks have no actor: they are recorded with ``actor`` empty.

What is audited, and which fields (a field left out changes too often to be a decision,
such as a key's last use or a finding's last sighting):
"""

from __future__ import annotations

from typing import Any

from auditlog.models import LogEntry
from auditlog.registry import auditlog
from django.apps import apps

AUDITED: dict[str, dict[str, Any]] = {
    # prices and overrides
    "pricing.PriceRate": {},
    "fleet.Node": {"include_fields": ["price_override_per_gpu_hour", "pricing_model", "site"]},
    "fleet.GpuModel": {"include_fields": ["default_price_per_gpu_hour"]},
    # alerting
    "alerts.AlertRule": {},
    "alerts.Silence": {},
    # A webhook URL is a credential (Slack's are): its change is recorded, masked.
    "alerts.Channel": {"mask_fields": ["target"]},
    # findings: only what a person (or the lifecycle) decides
    "insights.Finding": {"include_fields": ["status"]},
    # access
    "accounts.ApiKey": {"exclude_fields": ["digest", "last_used_at"]},
    "accounts.Membership": {},
    "accounts.Team": {"include_fields": ["slug", "name", "monthly_budget", "currency"]},
    # attribution and reports
    "jobs.KubernetesMapping": {},
    "reports.ReportSubscription": {},
}


def audit_register() -> None:
    for label, options in AUDITED.items():
        model = apps.get_model(label)
        names = {f.name for f in model._meta.get_fields()}
        options = {
            key: [name for name in value if name in names] if key.endswith("_fields") else value
            for key, value in options.items()
        }
        auditlog.register(model, **options)


def audit_record_change(instance: Any, changes: dict[str, list[Any]]) -> None:
    """Record a change made by a conditional UPDATE (which sends no model signal)."""
    LogEntry.objects.log_create(
        instance,
        action=LogEntry.Action.UPDATE,
        changes={name: [str(before), str(after)] for name, (before, after) in changes.items()},
    )
