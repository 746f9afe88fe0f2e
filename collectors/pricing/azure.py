"""Azure Retail Prices API pages (``{"Items": [...], "NextPageLink": ...}``).

Kept: Virtual Machines meters of known GPU SKUs (``armSkuName``), Linux (product names
without "Windows"), type ``Consumption`` (on-demand; ``Spot`` in the meter or SKU name makes
it spot) and ``Reservation`` with a one-year term (as an effective hourly price). Dropped:
``DevTestConsumption``, Windows, Low Priority (Batch) meters.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from collectors.pricing.instances import instance_gpus
from collectors.pricing.offers import (
    HOURS_PER_YEAR,
    IgnoredItem,
    PriceError,
    PriceOffer,
    SkippedOffer,
    catalog_time,
    currency_code,
    decimal_price,
)


def retail_items(
    pages: Iterable[dict[str, Any]], *, regions: set[str] | None = None, currency: str | None = None
) -> Iterator[PriceOffer | SkippedOffer | IgnoredItem]:
    for page_number, page in enumerate(pages, start=1):
        items = page.get("Items")
        if not isinstance(items, list):
            raise PriceError(f"page {page_number}", "Items", "is missing or not a list")
        page_currency = page.get("BillingCurrency") or currency
        for position, item in enumerate(items, start=1):
            record = f"page {page_number} Items[{position}] ({item.get('meterId', '?')})"
            if item.get("serviceName") != "Virtual Machines":
                yield IgnoredItem("azure", "not a virtual machine")
                continue
            kind = item.get("type")
            product, meter = str(item.get("productName", "")), str(item.get("meterName", ""))
            sku_name = str(item.get("skuName", ""))
            if kind == "DevTestConsumption":
                yield IgnoredItem("azure", "dev/test pricing")
                continue
            if "Windows" in product:
                yield IgnoredItem("azure", "Windows")
                continue
            if "Low Priority" in meter or "Low Priority" in sku_name:
                yield IgnoredItem("azure", "low priority")
                continue
            region = str(item.get("armRegionName", ""))
            if regions and region not in regions:
                yield IgnoredItem("azure", "another region")
                continue
            arm_sku = str(item.get("armSkuName", ""))
            mapped = instance_gpus("azure", arm_sku)
            if mapped is None:
                if arm_sku.lower().startswith(("standard_nc", "standard_nd", "standard_nv")):
                    yield SkippedOffer(
                        "azure", arm_sku, region, "GPU VM size with no catalog mapping"
                    )
                else:
                    yield IgnoredItem("azure", "not a GPU instance")
                continue
            price = decimal_price(item.get("retailPrice"), record=record, field_name="retailPrice")
            code = currency_code(
                item.get("currencyCode") or page_currency, record=record, field_name="currencyCode"
            )
            if kind == "Consumption":
                model = "spot" if "Spot" in meter or "Spot" in sku_name else "on-demand"
                if item.get("unitOfMeasure") != "1 Hour":
                    raise PriceError(
                        record, "unitOfMeasure", f"{item.get('unitOfMeasure')!r}; expected '1 Hour'"
                    )
            elif kind == "Reservation":
                if item.get("reservationTerm") != "1 Year":
                    yield IgnoredItem(
                        "azure", f"reservation term {item.get('reservationTerm')!s} (1 Year kept)"
                    )
                    continue
                model, price = "reserved", price / HOURS_PER_YEAR
            else:
                yield IgnoredItem("azure", f"price type {kind!s}")
                continue
            yield PriceOffer(
                provider="azure",
                sku=arm_sku,
                region=region,
                pricing_model=model,
                gpu_model=mapped[0],
                gpus_per_unit=mapped[1],
                price_per_unit_hour=price,
                currency=code,
                valid_from=catalog_time(item.get("effectiveStartDate")),
                raw_reference={
                    k: item.get(k) for k in ("meterId", "skuId", "productName", "meterName", "type")
                },
            )
