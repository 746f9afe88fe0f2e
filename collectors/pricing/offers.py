"""The normalised price record every pricing parser yields."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

CURRENCY = re.compile(r"^[A-Z]{3}$")
# ISO 4217 codes seen in cloud catalogs and rate cards; anything else is refused.
KNOWN_CURRENCIES = frozenset(
    {"USD", "EUR", "GBP", "JPY", "CNY", "INR", "KRW", "AUD", "CAD", "CHF", "SEK", "NOK", "DKK",
     "BRL", "SGD", "HKD", "TWD", "NZD", "ZAR", "MXN"}
)  # fmt: skip
PRICING_MODELS = ("on-demand", "spot", "reserved", "on-prem")
HOURS_PER_YEAR = Decimal(8760)
HOURS_PER_MONTH = Decimal(730)  # 8760 / 12, the convention cloud catalogs use


class PriceError(ValueError):
    """A record that cannot be priced: names the record and the field."""

    def __init__(self, record: str, field_name: str, message: str) -> None:
        super().__init__(f"{record}: {field_name}: {message}")
        self.record = record
        self.field = field_name


@dataclass(frozen=True)
class PriceOffer:
    provider: str
    sku: str  # instance type, or GPU model for per-GPU catalogs (GCP)
    region: str
    pricing_model: str
    gpu_model: str  # catalog name, e.g. "H100 SXM"
    gpus_per_unit: int
    price_per_unit_hour: Decimal
    currency: str
    valid_from: datetime | None = None
    valid_to: datetime | None = None
    storage_per_gb_month: Decimal | None = None
    energy_per_kwh: Decimal | None = None
    pue: Decimal | None = None
    raw_reference: dict[str, Any] = field(default_factory=dict)

    @property
    def price_per_gpu_hour(self) -> Decimal:
        return (self.price_per_unit_hour / self.gpus_per_unit).quantize(Decimal("0.000001"))

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.provider, self.sku, self.region, self.pricing_model)


@dataclass(frozen=True)
class SkippedOffer:
    """A GPU offer FrameOps could not map to its catalog, reported for an operator."""

    provider: str
    sku: str
    region: str
    reason: str


@dataclass(frozen=True)
class IgnoredItem:
    """A catalog item that is not a price FrameOps keeps (not a GPU instance, Windows, low
    priority, another reservation term, ...): counted by reason, never loaded."""

    provider: str
    reason: str


def decimal_price(value: Any, *, record: str, field_name: str) -> Decimal:
    """A non-negative finite price from a string or number."""
    if value is None or value == "":
        raise PriceError(record, field_name, "is missing")
    try:
        price = Decimal(str(value).strip())
    except InvalidOperation:
        raise PriceError(record, field_name, f"{value!r} is not a number") from None
    if not price.is_finite():
        raise PriceError(record, field_name, f"{value!r} is not a finite number")
    if price < 0:
        raise PriceError(record, field_name, f"{value} is negative")
    return price


def currency_code(value: Any, *, record: str, field_name: str = "currency") -> str:
    code = str(value or "").strip().upper()
    if not CURRENCY.match(code) or code not in KNOWN_CURRENCIES:
        raise PriceError(record, field_name, f"{value!r} is not a known ISO 4217 currency")
    return code


def catalog_time(value: Any) -> datetime | None:
    """An effective date as catalogs write it (RFC 3339, "Z" allowed); None when absent or
    unreadable: the loader then dates the rate by the load."""
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
