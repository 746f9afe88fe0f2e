"""Rate card CSV for neoclouds and negotiated rates, and on-prem amortisation.

CSV columns (DESIGN "Public contract"):
``provider,sku,region,pricing_model,price_per_hour,gpus_per_unit,currency,valid_from,valid_to``
(``valid_to`` empty: open), optionally ``storage_per_gb_month``. A node's ``instance_type``
matches ``sku``.

On-prem (JSON list): ``{"sku", "gpu_model", "gpus_per_unit", "purchase_price",
"amortization_months", "power_draw_w", "price_per_kwh", "pue", "currency", "region",
"valid_from"}``. The GPU-hour price is the purchase price spread over the amortisation
months (730 h each); energy is a separate rate (``price_per_kwh`` x ``pue``) that costing
applies to measured energy, so it is not added to the GPU-hour price twice.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import IO, Any

from collectors.pricing.instances import instance_gpus
from collectors.pricing.offers import (
    HOURS_PER_MONTH,
    PRICING_MODELS,
    PriceError,
    PriceOffer,
    currency_code,
    decimal_price,
)

COLUMNS = (
    "provider",
    "sku",
    "region",
    "pricing_model",
    "price_per_hour",
    "gpus_per_unit",
    "currency",
    "valid_from",
    "valid_to",
)
PROVIDERS = ("aws", "azure", "gcp", "on-prem", "other")


def iso_time(value: str, *, record: str, field_name: str) -> datetime | None:
    value = (value or "").strip()
    if not value:
        return None
    try:
        ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise PriceError(record, field_name, f"{value!r} is not an ISO 8601 date or time") from None
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def _positive_int(value: Any, *, record: str, field_name: str) -> int:
    text = str(value or "").strip()
    if not text.isdigit() or int(text) < 1:
        raise PriceError(record, field_name, f"{value!r} must be a whole number of at least 1")
    return int(text)


def _gpu_model_for(provider: str, sku: str) -> str:
    for candidate in ("aws", "azure") if provider not in ("aws", "azure") else (provider,):
        mapped = instance_gpus(candidate, sku)
        if mapped:
            return mapped[0]
    return ""


def rate_card_csv(f: IO[str]) -> Iterator[PriceOffer]:
    reader = csv.DictReader(f)
    missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise PriceError("header", missing[0], f"column is missing (needs {','.join(COLUMNS)})")
    for row in reader:
        record = f"line {reader.line_num}"
        provider = (row["provider"] or "").strip().lower()
        if provider not in PROVIDERS:
            raise PriceError(
                record, "provider", f"{row['provider']!r} is not one of {', '.join(PROVIDERS)}"
            )
        model = (row["pricing_model"] or "").strip().lower()
        if model not in PRICING_MODELS:
            raise PriceError(
                record,
                "pricing_model",
                f"{row['pricing_model']!r} is not one of {', '.join(PRICING_MODELS)}",
            )
        sku = (row["sku"] or "").strip()
        if not sku:
            raise PriceError(record, "sku", "is empty")
        valid_from = iso_time(row["valid_from"], record=record, field_name="valid_from")
        valid_to = iso_time(row["valid_to"], record=record, field_name="valid_to")
        if valid_from and valid_to and valid_to <= valid_from:
            raise PriceError(record, "valid_to", "must be after valid_from")
        storage = (row.get("storage_per_gb_month") or "").strip()
        yield PriceOffer(
            provider=provider,
            sku=sku,
            region=(row["region"] or "").strip(),
            pricing_model=model,
            gpu_model=_gpu_model_for(provider, sku),
            gpus_per_unit=_positive_int(
                row["gpus_per_unit"], record=record, field_name="gpus_per_unit"
            ),
            price_per_unit_hour=decimal_price(
                row["price_per_hour"], record=record, field_name="price_per_hour"
            ),
            currency=currency_code(row["currency"], record=record),
            valid_from=valid_from,
            valid_to=valid_to,
            storage_per_gb_month=decimal_price(
                storage, record=record, field_name="storage_per_gb_month"
            )
            if storage
            else None,
            raw_reference={"line": reader.line_num},
        )


def onprem_json(f: IO[str]) -> Iterator[PriceOffer]:
    try:
        entries = json.load(f)
    except json.JSONDecodeError as exc:
        raise PriceError("on-prem file", "(json)", str(exc)) from exc
    if not isinstance(entries, list):
        raise PriceError("on-prem file", "(json)", "must be a list of systems")
    for position, e in enumerate(entries, start=1):
        record = f"system {position} ({e.get('sku', '?')})"
        months = _positive_int(
            e.get("amortization_months"), record=record, field_name="amortization_months"
        )
        purchase = decimal_price(
            e.get("purchase_price"), record=record, field_name="purchase_price"
        )
        power_w = decimal_price(e.get("power_draw_w"), record=record, field_name="power_draw_w")
        per_kwh = decimal_price(e.get("price_per_kwh"), record=record, field_name="price_per_kwh")
        pue = decimal_price(e.get("pue", "1.0"), record=record, field_name="pue")
        if pue < 1:
            raise PriceError(record, "pue", f"{pue} is below 1")
        sku = str(e.get("sku") or "").strip()
        if not sku:
            raise PriceError(record, "sku", "is empty")
        capex_per_hour = purchase / (months * HOURS_PER_MONTH)
        yield PriceOffer(
            provider="on-prem",
            sku=sku,
            region=str(e.get("region", "")),
            pricing_model="on-prem",
            gpu_model=str(e.get("gpu_model", "")),
            gpus_per_unit=_positive_int(
                e.get("gpus_per_unit"), record=record, field_name="gpus_per_unit"
            ),
            price_per_unit_hour=capex_per_hour.quantize(Decimal("0.000001")),
            currency=currency_code(e.get("currency", "USD"), record=record),
            valid_from=iso_time(
                str(e.get("valid_from", "")), record=record, field_name="valid_from"
            ),
            energy_per_kwh=per_kwh,
            pue=pue,
            raw_reference={
                "purchase_price": str(purchase),
                "amortization_months": months,
                "power_draw_w": str(power_w),
                "energy_per_hour_at_rated_draw": str(
                    (power_w / 1000 * pue * per_kwh).quantize(Decimal("0.000001"))
                ),
            },
        )
