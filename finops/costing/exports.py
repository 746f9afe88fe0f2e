"""FOCUS 1.2 export and team invoices, read from the ledger (the allocation basis: a
line's ``amount``)."""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import Count, Max, Q, QuerySet, Sum

from finops.accounts.models import Team
from finops.costing.models import Bucket, Component, LedgerEntry
from finops.costing.money import money_str, quantity_str
from finops.costing.selectors import Part, unpriced_warnings

# FOCUS 1.2 mandatory columns, then the conditional ones FrameOps fills.
FOCUS_MANDATORY = (
    "BilledCost", "BillingAccountId", "BillingAccountName", "BillingCurrency", "BillingPeriodEnd",
    "BillingPeriodStart", "ChargeCategory", "ChargeClass", "ChargeDescription", "ChargePeriodEnd",
    "ChargePeriodStart", "ContractedCost", "EffectiveCost", "InvoiceIssuerName", "ListCost",
    "PricingQuantity", "PricingUnit", "ProviderName", "PublisherName", "ServiceCategory",
    "ServiceName",
)  # fmt: skip
FOCUS_EXTRA = ("ResourceId", "ResourceName", "SkuId", "ConsumedQuantity", "ConsumedUnit", "Tags")
FOCUS_COLUMNS = FOCUS_MANDATORY + FOCUS_EXTRA
PROVIDER_NAMES = {
    "aws": "AWS",
    "azure": "Microsoft",
    "gcp": "Google Cloud",
    "on-prem": "On-premises",
    "other": "Other",
}
UNITS = {"gpu_hour": "GPU-Hour", "gb_month": "GB-Month", "kwh": "kWh"}
DESCRIPTIONS = {
    Component.GPU: "GPU time",
    Component.IDLE: "Idle GPU time (paid, not held by any job)",
    Component.WASTE: "Reserved GPU time not used (usage basis)",
    Component.STORAGE: "Storage",
    Component.ENERGY: "Energy (on-premises)",
}


def _iso(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _month_bounds(ts: datetime) -> tuple[datetime, datetime]:
    start = ts.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return start, (start + timedelta(days=32)).replace(day=1)


def focus_entries(
    *, start: datetime, end: datetime, teams: QuerySet[Team], all_teams: bool
) -> QuerySet[LedgerEntry]:
    entries = LedgerEntry.objects.filter(window_start__gte=start, window_start__lt=end)
    if all_teams:
        entries = entries.filter(team__in=teams) | entries.filter(team__isnull=True)
    else:
        entries = entries.filter(team__in=teams)
    return entries.select_related("team", "job", "gpu__model", "node__site").order_by(
        "window_start", "id"
    )


def focus_etag(entries: QuerySet[LedgerEntry]) -> str:
    """Changes whenever a window in the export is recomputed."""
    stats = entries.order_by().aggregate(n=Count("id"), last=Max("computed_at"), ids=Max("id"))
    return hashlib.sha256(json.dumps(stats, default=str).encode()).hexdigest()[:32]


def focus_row(entry: LedgerEntry) -> dict[str, Any]:
    period_start, period_end = _month_bounds(entry.window_start)
    site = entry.node.site if entry.node_id else None
    amount = entry.amount
    list_cost = (
        (entry.quantity * entry.unit_price).quantize(Decimal("0.000001"))
        if entry.unit_price
        else amount
    )
    job = entry.job
    tags = {"team": entry.team.slug if entry.team_id else entry.bucket}
    if job is not None:
        tags.update(
            {
                "project": job.project,
                "model": job.model_name,
                "job": f"{job.source}:{job.external_id}",
            }
        )
    return {
        "BilledCost": amount,
        "BillingAccountId": entry.team.slug if entry.team_id else entry.bucket,
        "BillingAccountName": entry.team.name if entry.team_id else entry.get_bucket_display(),
        "BillingCurrency": entry.currency,
        "BillingPeriodEnd": _iso(period_end),
        "BillingPeriodStart": _iso(period_start),
        "ChargeCategory": "Usage",
        "ChargeClass": None,
        "ChargeDescription": DESCRIPTIONS.get(entry.component, entry.component)
        + (f" for job {job.source}:{job.external_id}" if job else ""),
        "ChargePeriodEnd": _iso(entry.window_end),
        "ChargePeriodStart": _iso(entry.window_start),
        "ContractedCost": amount,
        "EffectiveCost": amount,
        "InvoiceIssuerName": "FrameOps",
        "ListCost": list_cost,
        "PricingQuantity": entry.quantity,
        "PricingUnit": UNITS.get(entry.unit, entry.unit),
        "ProviderName": PROVIDER_NAMES.get(site.provider, site.provider) if site else "FrameOps",
        "PublisherName": PROVIDER_NAMES.get(site.provider, site.provider) if site else "FrameOps",
        "ServiceCategory": "AI and Machine Learning"
        if entry.unit == "gpu_hour"
        else ("Storage" if entry.component == Component.STORAGE else "Other"),
        "ServiceName": "GPU compute"
        if entry.unit == "gpu_hour"
        else DESCRIPTIONS.get(entry.component, ""),
        "ResourceId": entry.gpu.uuid
        if entry.gpu_id
        else (entry.node.hostname if entry.node_id else None),
        "ResourceName": entry.node.hostname if entry.node_id else None,
        "SkuId": entry.gpu.model.name if entry.gpu_id and entry.gpu.model_id else None,
        "ConsumedQuantity": entry.quantity,
        "ConsumedUnit": UNITS.get(entry.unit, entry.unit),
        "Tags": tags,
    }


class _Echo:
    def write(self, value: str) -> str:
        return value


def focus_csv(entries: QuerySet[LedgerEntry]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(FOCUS_COLUMNS)
    for entry in entries.iterator(chunk_size=2000):
        row = focus_row(entry)
        yield writer.writerow(
            [
                json.dumps(row[c], sort_keys=True)
                if c == "Tags"
                else ("" if row[c] is None else row[c])
                for c in FOCUS_COLUMNS
            ]
        )


def focus_json(entries: QuerySet[LedgerEntry]) -> Iterator[str]:
    yield "["
    for i, entry in enumerate(entries.iterator(chunk_size=2000)):
        row = {k: (str(v) if isinstance(v, Decimal) else v) for k, v in focus_row(entry).items()}
        yield ("," if i else "") + json.dumps(row)
    yield "]"


def invoice(*, team: Team, period_start: datetime) -> dict[str, Any]:
    """Line items for a team's month: by model, project and GPU model, per component."""
    start, end = _month_bounds(period_start)
    rows = (
        LedgerEntry.objects.filter(
            team=team,
            bucket=Bucket.TEAM,
            window_start__gte=start,
            window_start__lt=end,
        )
        .annotate(unpriced=Q(unit="gpu_hour", unit_price__isnull=True))
        .values(
            "job__model_name",
            "job__project",
            "gpu__model__name",
            "component",
            "unit",
            "currency",
            "unpriced",
        )
        .annotate(quantity=Sum("quantity"), total=Sum("amount"))
        .order_by("job__model_name", "job__project", "gpu__model__name", "component")
    )
    lines = []
    total = unpriced_hours = Decimal(0)
    currency = team.currency
    for r in rows:
        if r["unpriced"]:
            unpriced_hours += r["quantity"]
        quantity, amount = r["quantity"], r["total"]
        currency = r["currency"]
        total += amount
        lines.append(
            {
                "model": r["job__model_name"] or "",
                "project": r["job__project"] or "",
                "gpu_model": r["gpu__model__name"] or "",
                "component": r["component"],
                "quantity": quantity_str(quantity),
                "unit": UNITS.get(r["unit"], r["unit"]),
                "unit_price": quantity_str(amount / quantity) if quantity else None,
                "total": money_str(amount),
                "unpriced": bool(r["unpriced"]),
            }
        )
    return {
        "team": team.slug,
        "period": f"{start:%Y-%m}",
        "period_start": _iso(start),
        "period_end": _iso(end),
        "currency": currency,
        "lines": lines,
        "total": money_str(total),
        "unpriced_gpu_hours": quantity_str(unpriced_hours),
        "warnings": unpriced_warnings(
            [Part("lines", start, end)], Q(team=team, bucket=Bucket.TEAM)
        ),
    }
