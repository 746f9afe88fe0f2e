"""Google Cloud Billing Catalog ``skus`` (``services/6F81-5844-456A/skus``, Compute Engine).

GPUs are priced per GPU, apart from the VM's cores and memory: SKUs with
``category.resourceGroup`` ``GPU``, usage types ``OnDemand`` (on-demand), ``Preemptible``
(spot) and ``Commit1Yr`` (reserved). The price is ``units + nanos / 1e9`` per
``usageUnit`` (converted to per hour), first tier, for each region in ``serviceRegions``.
The offer's sku is the catalog GPU model; nodes resolve it through their GPUs.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from decimal import Decimal
from typing import Any

from collectors.pricing.instances import gcp_gpu_model
from collectors.pricing.offers import (
    PriceError,
    PriceOffer,
    SkippedOffer,
    catalog_time,
    currency_code,
    decimal_price,
)

USAGE_TYPES = {"OnDemand": "on-demand", "Preemptible": "spot", "Commit1Yr": "reserved"}
PER_HOUR = {"h": Decimal(1), "hour": Decimal(1), "min": Decimal(60), "s": Decimal(3600)}


def unit_price(money: dict[str, Any], *, record: str) -> tuple[Decimal, str]:
    """A Money (``{"currencyCode", "units", "nanos"}``) as a Decimal and its currency."""
    units = decimal_price(
        money.get("units", "0") or "0", record=record, field_name="unitPrice.units"
    )
    nanos = Decimal(str(money.get("nanos", 0) or 0))
    if nanos < 0:
        raise PriceError(record, "unitPrice.nanos", f"{nanos} is negative")
    code = currency_code(
        money.get("currencyCode"), record=record, field_name="unitPrice.currencyCode"
    )
    return units + nanos / Decimal(1_000_000_000), code


def skus(
    pages: Iterable[dict[str, Any]], *, regions: set[str] | None = None
) -> Iterator[PriceOffer | SkippedOffer]:
    for page in pages:
        for item in page.get("skus", []):
            record = f"sku {item.get('skuId', '?')} ({item.get('description', '')})"
            category = item.get("category", {})
            if category.get("resourceGroup") != "GPU":
                continue
            model = USAGE_TYPES.get(category.get("usageType", ""))
            if model is None:
                continue
            gpu = gcp_gpu_model(str(item.get("description", "")))
            wanted_regions = [
                r for r in item.get("serviceRegions", []) if not regions or r in regions
            ]
            if gpu is None:
                for region in wanted_regions:
                    yield SkippedOffer(
                        "gcp",
                        str(item.get("description", "")),
                        region,
                        "GPU with no catalog mapping",
                    )
                continue
            infos = item.get("pricingInfo") or []
            if not infos:
                raise PriceError(record, "pricingInfo", "is missing")
            expression = infos[0].get("pricingExpression", {})
            tiers = sorted(
                expression.get("tieredRates") or [],
                key=lambda t: float(t.get("startUsageAmount", 0)),
            )
            if not tiers:
                raise PriceError(record, "pricingExpression.tieredRates", "is missing")
            price, code = unit_price(tiers[0].get("unitPrice", {}), record=record)
            unit = str(expression.get("usageUnit", ""))
            if unit not in PER_HOUR:
                raise PriceError(
                    record, "pricingExpression.usageUnit", f"{unit!r} is not a time unit"
                )
            per_hour = price * PER_HOUR[unit]
            for region in wanted_regions:
                yield PriceOffer(
                    provider="gcp",
                    sku=gpu,
                    region=region,
                    pricing_model=model,
                    gpu_model=gpu,
                    gpus_per_unit=1,
                    price_per_unit_hour=per_hour,
                    currency=code,
                    valid_from=catalog_time(infos[0].get("effectiveTime")),
                    raw_reference={
                        "skuId": item.get("skuId"),
                        "description": item.get("description"),
                    },
                )
