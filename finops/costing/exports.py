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

from django.conf import settings
from django.db.models import Count, Max, Q, QuerySet, Sum

from finops.accounts.models import Team
from finops.costing.models import Bucket, Component, LedgerEntry
from finops.costing.money import money_str, quantity_str
from finops.costing.selectors import Part, unpriced_warnings

# FOCUS 1.2 (Cost and Usage): the Mandatory columns, then the Recommended and the
# Conditional ones whose condition FrameOps' data meets, then those for concepts that do not
# apply here (present and null, as the spec allows). docs/costing.md "FOCUS" maps each.
FOCUS_MANDATORY = (
    "BilledCost", "BillingAccountId", "BillingAccountName", "BillingCurrency", "BillingPeriodEnd",
    "BillingPeriodStart", "ChargeCategory", "ChargeClass", "ChargeDescription", "ChargePeriodEnd",
    "ChargePeriodStart", "ContractedCost", "EffectiveCost", "InvoiceIssuerName", "ListCost",
    "PricingQuantity", "PricingUnit", "ProviderName", "PublisherName", "ServiceCategory",
    "ServiceName",
)  # fmt: skip
FOCUS_RECOMMENDED = ("ChargeFrequency", "InvoiceId", "ServiceSubcategory")
FOCUS_CONDITIONAL = (
    "ConsumedQuantity", "ConsumedUnit", "ContractedUnitPrice", "ListUnitPrice",
    "PricingCategory", "PricingCurrency", "PricingCurrencyContractedUnitPrice",
    "PricingCurrencyEffectiveCost", "PricingCurrencyListUnitPrice", "RegionId", "RegionName",
    "ResourceId", "ResourceName", "ResourceType",
    "SkuId", "SkuMeter", "SkuPriceDetails", "SkuPriceId", "SubAccountId", "SubAccountName",
    "Tags",
)  # fmt: skip
FOCUS_NOT_APPLICABLE = (
    "CapacityReservationId", "CapacityReservationStatus", "CommitmentDiscountCategory",
    "CommitmentDiscountId", "CommitmentDiscountName", "CommitmentDiscountQuantity",
    "CommitmentDiscountStatus", "CommitmentDiscountType", "CommitmentDiscountUnit",
)  # fmt: skip
FOCUS_COLUMNS = FOCUS_MANDATORY + FOCUS_RECOMMENDED + FOCUS_CONDITIONAL + FOCUS_NOT_APPLICABLE
# Who is who in a chargeback: the studio's GPU platform (FrameOps, or FOCUS_PROVIDER_NAME)
# provides the service and issues the invoices; the cloud vendor, or the studio itself for
# its own machines, publishes the underlying capacity.
PUBLISHER_NAMES = {
    "aws": "AWS",
    "azure": "Microsoft",
    "gcp": "Google Cloud",
    "on-prem": "On-premises",
    "other": "Other",
}
# FOCUS unit format: a count per plural time unit (GPU-Hours), data size per time unit.
UNITS = {"gpu_hour": "GPU-Hours", "gb_month": "GB-Months", "kwh": "kWh"}
PRICING_CATEGORIES = {
    "on-demand": "Standard",
    "spot": "Dynamic",
    "reserved": "Committed",
    "on-prem": "Other",
}
DESCRIPTIONS = {
    Component.GPU: "GPU time",
    Component.IDLE: "Idle GPU time (paid, not held by any job)",
    Component.WASTE: "Reserved GPU time not used (usage basis)",
    Component.STORAGE: "Storage",
    Component.ENERGY: "Energy (on-premises)",
}
# (ServiceCategory, ServiceSubcategory, ServiceName, SkuMeter, ResourceType) per component
SERVICES = {
    Component.GPU: ("AI and Machine Learning", "Generative AI", "GPU compute", "GPU time", "GPU"),
    Component.IDLE: ("AI and Machine Learning", "Generative AI", "GPU compute", "GPU time",
                     "GPU"),
    Component.WASTE: ("AI and Machine Learning", "Generative AI", "GPU compute", "GPU time",
                      "GPU"),
    Component.STORAGE: ("Storage", "Block Storage", "Storage", "Storage capacity", "Node"),
    Component.ENERGY: ("Other", "Other (Other)", "Energy", "Energy", "Node"),
}  # fmt: skip
MICRO = Decimal("0.000001")


def _iso(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def month_bounds(ts: datetime) -> tuple[datetime, datetime]:
    """The calendar month (UTC) holding ``ts``: [its first instant, the next month's)."""
    start = ts.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return start, (start + timedelta(days=32)).replace(day=1)


def invoice_id(team_slug: str, period_start: datetime) -> str:
    """The id of a team's invoice for the month (``GET /api/v1/teams/{slug}/invoice``), and
    the ``InvoiceId`` of its FOCUS rows."""
    return f"FO-{team_slug}-{period_start.astimezone(UTC):%Y-%m}"


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
    period_start, period_end = month_bounds(entry.window_start)
    node = entry.node if entry.node_id else None
    site = node.site if node is not None else None
    amount = entry.amount
    unit_price = entry.unit_price
    # A line priced from a unit rate lists that rate; a share of a node's storage or energy
    # (or an unpriced GPU-hour) carries its amount over its quantity.
    if unit_price is None and entry.quantity:
        unit_price = (amount / entry.quantity).quantize(MICRO)
    list_cost = (entry.quantity * unit_price).quantize(MICRO) if unit_price is not None else amount
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
    category, subcategory, service, meter, resource_type = SERVICES.get(
        entry.component, ("Other", "Other (Other)", entry.component, entry.component, "Node")
    )
    unit = UNITS.get(entry.unit, entry.unit)
    pricing_model = node.pricing_model if node is not None else ""
    pricing_category = PRICING_CATEGORIES.get(pricing_model, "Standard")
    if entry.gpu_id and entry.gpu.model_id:
        sku = entry.gpu.model.name
    elif entry.component == Component.STORAGE:
        sku = "storage"
    else:
        sku = entry.component
    region = site.region if site is not None and site.region else None
    sku_price_id = "|".join(
        [sku, pricing_model or "-", region or "-", unit, str(unit_price), entry.currency]
    )
    provider = settings.FOCUS_PROVIDER_NAME
    project = job.project if job is not None and job.project else None
    team_line = entry.team_id is not None and entry.bucket == Bucket.TEAM
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
        "ContractedCost": list_cost,
        "EffectiveCost": amount,
        "InvoiceIssuerName": provider,
        "ListCost": list_cost,
        "PricingQuantity": entry.quantity,
        "PricingUnit": unit,
        "ProviderName": provider,
        "PublisherName": PUBLISHER_NAMES.get(site.provider, site.provider) if site else provider,
        "ServiceCategory": category,
        "ServiceName": service,
        "ChargeFrequency": "Usage-Based",
        # Team lines are on the team's monthly invoice; idle and unallocated time on the
        # platform's own provisional invoice for that account (the allocation report's idle).
        "InvoiceId": invoice_id(
            entry.team.slug if team_line else entry.bucket.strip("_"), period_start
        ),
        "ServiceSubcategory": subcategory,
        "ConsumedQuantity": entry.quantity,
        "ConsumedUnit": unit,
        "ContractedUnitPrice": unit_price,
        "ListUnitPrice": unit_price,
        "PricingCategory": pricing_category,
        # Prices are in the billing currency: the pricing-currency columns repeat them.
        "PricingCurrency": entry.currency,
        "PricingCurrencyContractedUnitPrice": unit_price,
        "PricingCurrencyEffectiveCost": amount,
        "PricingCurrencyListUnitPrice": unit_price,
        "RegionId": region,
        "RegionName": region,
        "ResourceId": entry.gpu.uuid if entry.gpu_id else (node.hostname if node else None),
        "ResourceName": node.hostname if node is not None else None,
        "ResourceType": resource_type,
        "SkuId": sku,
        "SkuMeter": meter,
        "SkuPriceDetails": {"PricingModel": pricing_model or None, "Unit": unit},
        "SkuPriceId": sku_price_id,
        "SubAccountId": project,
        "SubAccountName": project,
        "Tags": tags,
        **dict.fromkeys(FOCUS_NOT_APPLICABLE),
    }


JSON_COLUMNS = ("Tags", "SkuPriceDetails")
# The FOCUS validator's applicability criteria that FrameOps' data meets (docs/costing.md
# "FOCUS": each argued there); the validator checks the conditional columns they bring in.
FOCUS_APPLICABILITY_CRITERIA = (
    "ACCOUNT_NAMING_SUPPORTED",  # teams have names (BillingAccountName)
    "BILLING_BASED_ON_PROVISIONED_RESOURCES_SUPPORTED",  # GPUs are paid by the hour held
    "MULTIPLE_PRICING_CATEGORIES_SUPPORTED",  # on-demand, spot, reserved and on-prem rates
    "PUBLIC_PRICE_LIST_SUPPORTED",  # rates come from public price lists
    "REGION_SUPPORTED",  # nodes live in a site's region
    "RESOURCE_TYPE_ASSIGNMENT_SUPPORTED",  # GPUs and nodes (storage, energy)
    "SUB_ACCOUNT_SUPPORTED",  # a team's projects
    "TAGGING_SUPPORTED",  # team, project, model, job
    "UNIT_PRICING_SUPPORTED",  # a price per GPU-hour, GB-month, kWh
    "USAGE_MEASUREMENT_SUPPORTED",  # GPU-hours, GB-months and kWh measured
)


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
                if c in JSON_COLUMNS
                else ("" if row[c] is None else row[c])
                for c in FOCUS_COLUMNS
            ]
        )


MONEY_COLUMNS = (
    "BilledCost", "ContractedCost", "EffectiveCost", "ListCost", "ContractedUnitPrice",
    "ListUnitPrice", "PricingCurrencyContractedUnitPrice", "PricingCurrencyEffectiveCost",
    "PricingCurrencyListUnitPrice",
)  # fmt: skip
QUANTITY_COLUMNS = ("PricingQuantity", "ConsumedQuantity", "CommitmentDiscountQuantity")
TIME_COLUMNS = ("BillingPeriodEnd", "BillingPeriodStart", "ChargePeriodEnd", "ChargePeriodStart")


def focus_arrow_schema() -> Any:
    """The FOCUS columns as Parquet types: money and quantities as decimals (to the
    micro-unit, as the ledger keeps them), periods as UTC timestamps, the rest strings (the
    JSON columns as JSON text)."""
    import pyarrow as pa

    def kind(column: str) -> Any:
        if column in MONEY_COLUMNS:
            return pa.decimal128(24, 6)
        if column in QUANTITY_COLUMNS:
            return pa.decimal128(26, 6)
        if column in TIME_COLUMNS:
            return pa.timestamp("ms", tz="UTC")  # Parquet keeps no whole-second unit
        return pa.string()

    return pa.schema([(c, kind(c)) for c in FOCUS_COLUMNS])


def _arrow_value(column: str, value: Any) -> Any:
    if value is None:
        return None
    if column in TIME_COLUMNS:
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    if column in JSON_COLUMNS:
        return json.dumps(value, sort_keys=True)
    if column in MONEY_COLUMNS or column in QUANTITY_COLUMNS:
        return Decimal(value).quantize(MICRO)
    return str(value)


def focus_parquet(entries: QuerySet[LedgerEntry], *, batch: int = 5000) -> bytes:
    """The rows as one Parquet file (row groups of ``batch`` rows), typed as
    ``focus_arrow_schema``; ``focus_csv`` holds the same values as text."""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = focus_arrow_schema()
    out = io.BytesIO()
    with pq.ParquetWriter(out, schema, compression="zstd") as writer:
        columns: dict[str, list[Any]] = {c: [] for c in FOCUS_COLUMNS}

        def flush() -> None:
            writer.write_table(pa.Table.from_pydict(columns, schema=schema))
            for values in columns.values():
                values.clear()

        count = 0
        for entry in entries.iterator(chunk_size=2000):
            row = focus_row(entry)
            for c in FOCUS_COLUMNS:
                columns[c].append(_arrow_value(c, row[c]))
            count += 1
            if count % batch == 0:
                flush()
        if count % batch or count == 0:
            flush()
    return out.getvalue()


def focus_json(entries: QuerySet[LedgerEntry]) -> Iterator[str]:
    yield "["
    for i, entry in enumerate(entries.iterator(chunk_size=2000)):
        row = {k: (str(v) if isinstance(v, Decimal) else v) for k, v in focus_row(entry).items()}
        yield ("," if i else "") + json.dumps(row)
    yield "]"


def invoice(*, team: Team, period_start: datetime) -> dict[str, Any]:
    """Line items for a team's month: by model, project and GPU model, per component."""
    start, end = month_bounds(period_start)
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
        "invoice_id": invoice_id(team.slug, start),
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
