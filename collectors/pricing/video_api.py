"""Video API price sheets: what a hosted video model charges per generated second.

CSV columns: ``provider,offering,model_family,resolution_tier,price_per_second,currency,
audio_included,valid_from,valid_to,source`` (``valid_to`` empty: open). A row is one list
price of one offering at one resolution tier, with or without audio, over a dated span; the
source says where it was read and when. Plain Python: the server's loader
(``finops.pricing.services.video_api_prices_load``) stores what this yields.
"""

from __future__ import annotations

import csv
import itertools
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import IO

from collectors.pricing.offers import PriceError, currency_code, decimal_price
from collectors.pricing.ratecard import iso_time

COLUMNS = (
    "provider", "offering", "model_family", "resolution_tier", "price_per_second", "currency",
    "audio_included", "valid_from", "valid_to", "source",
)  # fmt: skip
RESOLUTION_TIERS = ("480p", "720p", "1080p", "4k")
MAX_PRICE_PER_SECOND = Decimal(100)  # far above any list price: a typo, not a price


@dataclass(frozen=True)
class VideoApiOffer:
    line: int
    provider: str
    offering: str
    model_family: str
    resolution_tier: str
    price_per_second: Decimal
    currency: str
    audio_included: bool
    valid_from: datetime
    valid_to: datetime | None
    source: str

    @property
    def key(self) -> tuple[str, str, str, bool]:
        return (self.provider, self.offering, self.resolution_tier, self.audio_included)

    @property
    def label(self) -> str:
        audio = "with audio" if self.audio_included else "without audio"
        return f"{self.provider} {self.offering} {self.resolution_tier} {audio}"


def resolution_tier(width: int, height: int) -> str:
    """The tier a clip of width x height is sold at: by its shorter side."""
    short = min(width, height)
    if short <= 480:
        return "480p"
    if short <= 720:
        return "720p"
    if short <= 1080:
        return "1080p"
    return "4k"


def _text(row: dict[str, str], name: str, record: str, *, required: bool = True) -> str:
    value = (row.get(name) or "").strip()
    if required and not value:
        raise PriceError(record, name, "is missing")
    if len(value) > 200 and name != "source":
        raise PriceError(record, name, "is longer than 200 characters")
    return value


def video_api_csv(f: IO[str]) -> Iterator[VideoApiOffer]:
    """Each row validated, or PriceError naming the line and the field."""
    reader = csv.DictReader(f)
    missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise PriceError("header", missing[0], f"column missing; expected {','.join(COLUMNS)}")
    for number, row in enumerate(reader, start=2):
        record = f"line {number}"
        tier = _text(row, "resolution_tier", record).lower()
        if tier not in RESOLUTION_TIERS:
            raise PriceError(
                record, "resolution_tier", f"{tier!r}: use {', '.join(RESOLUTION_TIERS)}"
            )
        price = decimal_price(row.get("price_per_second"), record=record,
                              field_name="price_per_second")  # fmt: skip
        if price > MAX_PRICE_PER_SECOND:
            raise PriceError(record, "price_per_second", f"{price} a second is not a list price")
        audio = _text(row, "audio_included", record).lower()
        if audio not in ("true", "false", "yes", "no"):
            raise PriceError(record, "audio_included", f"{audio!r}: use true or false")
        valid_from = iso_time(_text(row, "valid_from", record), record=record,
                              field_name="valid_from")  # fmt: skip
        valid_to = iso_time(_text(row, "valid_to", record, required=False), record=record,
                            field_name="valid_to")  # fmt: skip
        if valid_from and valid_to and valid_to <= valid_from:
            raise PriceError(record, "valid_to", "must be after valid_from")
        source = _text(row, "source", record)
        if not source:
            raise PriceError(record, "source", "say where the price was read and when")
        yield VideoApiOffer(
            line=number, provider=_text(row, "provider", record).lower(),
            offering=_text(row, "offering", record),
            model_family=_text(row, "model_family", record),
            resolution_tier=tier, price_per_second=price,
            currency=currency_code(row.get("currency"), record=record),
            audio_included=audio in ("true", "yes"), valid_from=valid_from,  # type: ignore[arg-type]
            valid_to=valid_to, source=source,
        )  # fmt: skip


def overlapping_offers_refuse(offers: list[VideoApiOffer]) -> None:
    """Two rows of one offering, tier and audio valid at one instant: refuse the sheet,
    naming both lines."""
    by_key: dict[tuple[str, str, str, bool], list[VideoApiOffer]] = defaultdict(list)
    for offer in offers:
        by_key[offer.key].append(offer)
    for rows in by_key.values():
        rows.sort(key=lambda o: o.valid_from)
        for earlier, later in itertools.pairwise(rows):
            if earlier.valid_to is None or earlier.valid_to > later.valid_from:
                raise PriceError(
                    f"line {earlier.line} and line {later.line}", "valid_to",
                    f"both are valid at {later.valid_from:%Y-%m-%d %H:%M}Z for {earlier.label}: "
                    "end the first where the second starts",
                )  # fmt: skip
