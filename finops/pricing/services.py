"""Loading price offers into PriceRates, keeping history."""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from collectors.pricing.offers import IgnoredItem, PriceError, PriceOffer, SkippedOffer
from collectors.pricing.video_api import VideoApiOffer, overlapping_offers_refuse
from finops.fleet.models import GpuModel
from finops.pricing.models import PriceRate, VideoApiOffering, VideoApiPrice


@dataclass
class LoadReport:
    created: int = 0
    changed: int = 0
    unchanged: int = 0
    duplicates: int = 0
    skipped: list[SkippedOffer] = field(default_factory=list)
    # Catalog items that are not prices FrameOps keeps, counted by reason.
    ignored: dict[str, int] = field(default_factory=dict)
    changes: list[str] = field(default_factory=list)
    # Keys that had no rate before this load: their later rows are new rates too.
    new_keys: set[tuple[str, str, str, str]] = field(default_factory=set, repr=False)

    def summary(self) -> str:
        text = f"{self.created} new, {self.changed} changed, {self.unchanged} unchanged, "
        if self.duplicates:
            text += (
                f"{self.duplicates} duplicate listings of a price already read skipped "
                "(a catalog lists one price once per term), "
            )
        text += f"{len(self.skipped)} GPU offers without a catalog mapping"
        if self.ignored:
            reasons = ", ".join(
                f"{reason}: {n}"
                for reason, n in sorted(self.ignored.items(), key=lambda kv: (-kv[1], kv[0]))
            )
            text += f"; {sum(self.ignored.values())} items ignored ({reasons})"
        return text


def _rate_fields(offer: PriceOffer, gpu_models: dict[str, GpuModel]) -> dict[str, object]:
    return {
        "gpu_model": gpu_models.get(offer.gpu_model),
        "gpus_per_unit": offer.gpus_per_unit,
        "price_per_unit_hour": offer.price_per_unit_hour,
        "price_per_gpu_hour": offer.price_per_gpu_hour,
        "storage_per_gb_month": offer.storage_per_gb_month,
        "energy_per_kwh": offer.energy_per_kwh,
        "pue": offer.pue,
        "currency": offer.currency,
        "raw_reference": offer.raw_reference,
    }


def _record(offer: PriceOffer) -> str:
    line = offer.raw_reference.get("line")
    return f"line {line}" if line is not None else f"{offer.sku} from {offer.valid_from}"


def _label(offer: PriceOffer) -> str:
    provider, sku, region, model = offer.key
    return f"{provider} {sku} {region or '-'} {model}"


def overlapping_rows_refuse(offers: list[PriceOffer]) -> None:
    """A rate card is history, so two of its rows for one (provider, sku, region, pricing
    model) must not both be valid at one instant: refuse the file, naming both lines."""
    by_key: dict[tuple[str, str, str, str], list[PriceOffer]] = defaultdict(list)
    for offer in offers:
        if offer.valid_from is not None:
            by_key[offer.key].append(offer)
    undated: dict[tuple[str, str, str, str], list[PriceOffer]] = defaultdict(list)
    for offer in offers:
        if offer.valid_from is None:
            undated[offer.key].append(offer)
    for key, rows in undated.items():
        if len(rows) > 1 or by_key.get(key):
            other = rows[1] if len(rows) > 1 else by_key[key][0]
            raise PriceError(
                f"{_record(rows[0])} and {_record(other)}",
                "valid_from",
                f"both give {_label(rows[0])} with an open start: give each row its valid_from",
            )
    for rows in by_key.values():
        rows.sort(key=lambda o: o.valid_from)  # type: ignore[arg-type,return-value]
        for earlier, later in itertools.pairwise(rows):
            if earlier.valid_to is None or earlier.valid_to > later.valid_from:  # type: ignore[operator]
                raise PriceError(
                    f"{_record(earlier)} and {_record(later)}",
                    "valid_to",
                    f"both are valid at {later.valid_from:%Y-%m-%d %H:%M}Z for "
                    f"{_label(earlier)}: end the first where the second starts",
                )


def price_offers_load(
    *,
    offers: Iterable[PriceOffer | SkippedOffer | IgnoredItem],
    source: str,
    dry_run: bool = False,
    now: datetime | None = None,
    progress: Callable[[int], None] | None = None,
    history: bool = False,
) -> LoadReport:
    """Upsert offers as PriceRates in one transaction: all of a file, or nothing.

    Catalogs (``history=False``) give the current price of each (provider, sku, region,
    pricing model), once per term: the first listing wins and the rest are counted as
    duplicates. A new key opens a rate; a changed price or currency closes the open rate and
    opens a new one from the offer's effective date (or now, when the catalog dates it
    before the open rate); the old rate stays as history.

    A rate card (``history=True``) is history itself: every dated row is kept with its own
    validity (rows of the file that overlap for one key are refused, naming both lines); a
    row whose start matches a loaded rate updates it, a new one closes the loaded rate it
    falls inside and ends where a later loaded rate begins. Undated rows are treated like
    catalog offers. With ``dry_run`` the report is computed and the transaction rolled
    back."""
    now = now or timezone.now()
    report = LoadReport()
    gpu_models = {m.name: m for m in GpuModel.objects.all()}
    seen: set[tuple[str, str, str, str]] = set()
    if history:
        listed = list(offers)
        overlapping_rows_refuse([o for o in listed if isinstance(o, PriceOffer)])
        offers = sorted(
            listed,
            key=lambda o: (
                isinstance(o, PriceOffer) and o.valid_from is not None,
                getattr(o, "valid_from", None) or now,
            ),
        )
    with transaction.atomic():
        for count, offer in enumerate(offers, start=1):
            if progress and count % 1000 == 0:
                progress(count)
            if isinstance(offer, SkippedOffer):
                report.skipped.append(offer)
                continue
            if isinstance(offer, IgnoredItem):
                report.ignored[offer.reason] = report.ignored.get(offer.reason, 0) + 1
                continue
            if history and offer.valid_from is not None:
                _history_row_load(offer, source, gpu_models, report)
                continue
            if offer.key in seen:
                report.duplicates += 1  # a catalog lists a price once per term; the first wins
                continue
            seen.add(offer.key)
            _current_offer_load(offer, source, gpu_models, report, now)
        if dry_run:
            transaction.set_rollback(True)
    return report


def _fields(offer: PriceOffer, source: str, gpu_models: dict[str, GpuModel]) -> dict[str, object]:
    provider, sku, region, model = offer.key
    return {
        **_rate_fields(offer, gpu_models),
        "provider": provider,
        "sku": sku,
        "region": region,
        "pricing_model": model,
        "valid_to": offer.valid_to,
        "source": source,
    }


def _same_price(rate: PriceRate, offer: PriceOffer) -> bool:
    return (
        rate.price_per_unit_hour == offer.price_per_unit_hour
        and rate.currency == offer.currency
        and rate.storage_per_gb_month == offer.storage_per_gb_month
    )


def _history_row_load(
    offer: PriceOffer, source: str, gpu_models: dict[str, GpuModel], report: LoadReport
) -> None:
    provider, sku, region, model = offer.key
    assert offer.valid_from is not None  # noqa: S101 - the caller routes undated rows elsewhere
    rates = list(
        PriceRate.objects.select_for_update()
        .filter(provider=provider, sku=sku, region=region, pricing_model=model)
        .order_by("valid_from")
    )
    label, fields = _label(offer), _fields(offer, source, gpu_models)
    same_start = next((r for r in rates if r.valid_from == offer.valid_from), None)
    later = next((r for r in rates if r.valid_from > offer.valid_from), None)
    valid_to = offer.valid_to
    if later is not None and (valid_to is None or valid_to > later.valid_from):
        valid_to = later.valid_from  # a loaded later rate keeps its start
    fields["valid_to"] = valid_to
    since = f"from {offer.valid_from:%Y-%m-%d %H:%M}Z"
    if same_start is not None:
        if _same_price(same_start, offer) and same_start.valid_to == valid_to:
            report.unchanged += 1
            return
        was = same_start.price_per_gpu_hour
        for name, value in fields.items():
            setattr(same_start, name, value)
        same_start.save()
        report.changed += 1
        report.changes.append(
            f"~ {label} {since}: {was} -> {offer.price_per_gpu_hour} {offer.currency}/GPU-h"
            + (f", until {valid_to:%Y-%m-%d %H:%M}Z" if valid_to else "")
        )
        return
    earlier = next(
        (
            r
            for r in reversed(rates)
            if r.valid_from < offer.valid_from
            and (r.valid_to is None or r.valid_to > offer.valid_from)
        ),
        None,
    )
    if earlier is not None:
        earlier.valid_to = offer.valid_from
        earlier.save(update_fields=["valid_to"])
    PriceRate.objects.create(valid_from=offer.valid_from, **fields)
    if rates and offer.key not in report.new_keys:
        report.changed += 1
        report.changes.append(
            f"~ {label} {since}: {offer.price_per_gpu_hour} {offer.currency}/GPU-h"
            + (" (the rate before ends there)" if earlier is not None else "")
        )
    else:
        report.created += 1
        report.new_keys.add(offer.key)
        report.changes.append(
            f"+ {label}: {offer.price_per_gpu_hour} {offer.currency}/GPU-h {since}"
        )


def _current_offer_load(
    offer: PriceOffer,
    source: str,
    gpu_models: dict[str, GpuModel],
    report: LoadReport,
    now: datetime,
) -> None:
    provider, sku, region, model = offer.key
    label, fields = _label(offer), _fields(offer, source, gpu_models)
    current = (
        PriceRate.objects.select_for_update()
        .filter(provider=provider, sku=sku, region=region, pricing_model=model)
        .order_by("-valid_from")
        .first()
    )
    if current is None:
        PriceRate.objects.create(valid_from=offer.valid_from or now, **fields)
        report.created += 1
        report.changes.append(f"+ {label}: {offer.price_per_gpu_hour} {offer.currency}/GPU-h")
        return
    if _same_price(current, offer):
        if offer.valid_to == current.valid_to or offer.valid_to is None:
            report.unchanged += 1
        else:  # the same price, now with an end date
            current.valid_to = offer.valid_to
            current.save(update_fields=["valid_to"])
            report.changed += 1
            report.changes.append(f"~ {label}: valid until {offer.valid_to:%Y-%m-%d}")
        return
    valid_from = (
        offer.valid_from if offer.valid_from and offer.valid_from > current.valid_from else now
    )
    if current.valid_to is None or current.valid_to > valid_from:
        current.valid_to = valid_from
        current.save(update_fields=["valid_to"])
    PriceRate.objects.create(valid_from=valid_from, **fields)
    report.changed += 1
    was, now_price = current.price_per_gpu_hour, offer.price_per_gpu_hour
    report.changes.append(f"~ {label}: {was} -> {now_price} {offer.currency}/GPU-h")


@dataclass
class VideoApiLoadReport:
    created: int = 0
    changed: int = 0
    unchanged: int = 0
    offerings_created: int = 0
    changes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (f"{self.created} new video API prices, {self.changed} changed, "
                f"{self.unchanged} unchanged; "
                f"{self.offerings_created} new offerings")  # fmt: skip


def video_api_prices_load(
    offers: Iterable[VideoApiOffer], *, dry_run: bool = False
) -> VideoApiLoadReport:
    """Store a video API price sheet, all or nothing. History is kept: a row already stored
    (same offering, tier, audio and start, same price) is unchanged; a row whose span
    overlaps another row of the sheet, or a stored one, is refused naming both."""
    rows = sorted(offers, key=lambda o: (o.key, o.valid_from))
    overlapping_offers_refuse(rows)
    report = VideoApiLoadReport()
    with transaction.atomic():
        for offer in rows:
            offering, created = VideoApiOffering.objects.get_or_create(
                provider=offer.provider, offering=offer.offering,
                defaults={"model_family": offer.model_family},
            )  # fmt: skip
            report.offerings_created += created
            same = VideoApiPrice.objects.filter(
                offering=offering, resolution_tier=offer.resolution_tier,
                audio_included=offer.audio_included,
            )  # fmt: skip
            stored = same.filter(valid_from=offer.valid_from).first()
            if stored is not None:
                if (stored.price_per_second, stored.currency) != (
                    offer.price_per_second,
                    offer.currency,
                ):
                    raise PriceError(
                        f"line {offer.line}", "price_per_second",
                        f"{offer.label} from {offer.valid_from:%Y-%m-%d} is stored at "
                        f"{stored.price_per_second} {stored.currency}: a price is history; "
                        "give a new price its own valid_from",
                    )  # fmt: skip
                if stored.valid_to == offer.valid_to:
                    report.unchanged += 1
                    continue
            clash = same.filter(Q(valid_to__isnull=True) | Q(valid_to__gt=offer.valid_from))
            if offer.valid_to is not None:
                clash = clash.filter(valid_from__lt=offer.valid_to)
            if stored is not None:
                clash = clash.exclude(pk=stored.pk)
            first = clash.first()
            if first is not None:
                raise PriceError(
                    f"line {offer.line} and the stored price from {first.valid_from:%Y-%m-%d} "
                    f"(loaded {first.loaded_at:%Y-%m-%d})", "valid_from",
                    f"both are valid at once for {offer.label}: end the stored one first "
                    "(its row again, with a valid_to) or start this one after it",
                )  # fmt: skip
            if stored is not None:  # the same price, now ended (or reopened)
                stored.valid_to = offer.valid_to
                stored.save(update_fields=["valid_to"])
                report.changed += 1
                report.changes.append(f"changed: {offer.label} from {offer.valid_from:%Y-%m-%d}"
                                      f" now ends {offer.valid_to or 'never'}")  # fmt: skip
                continue
            VideoApiPrice.objects.create(
                offering=offering, resolution_tier=offer.resolution_tier,
                audio_included=offer.audio_included, price_per_second=offer.price_per_second,
                currency=offer.currency, valid_from=offer.valid_from, valid_to=offer.valid_to,
                source=offer.source, raw_reference={"line": offer.line},
            )  # fmt: skip
            report.created += 1
            report.changes.append(
                f"new: {offer.label} {offer.price_per_second} {offer.currency}/s "
                f"from {offer.valid_from:%Y-%m-%d}"
            )
        if dry_run:
            transaction.set_rollback(True)
    return report
