"""Loading price offers into PriceRates, keeping history."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from collectors.pricing.offers import PriceOffer, SkippedOffer
from finops.fleet.models import GpuModel
from finops.pricing.models import PriceRate


@dataclass
class LoadReport:
    created: int = 0
    changed: int = 0
    unchanged: int = 0
    skipped: list[SkippedOffer] = field(default_factory=list)
    changes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{self.created} new, {self.changed} changed, {self.unchanged} unchanged, "
            f"{len(self.skipped)} GPU offers without a catalog mapping"
        )


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


def price_offers_load(
    *,
    offers: Iterable[PriceOffer | SkippedOffer],
    source: str,
    dry_run: bool = False,
    now: datetime | None = None,
    progress: Callable[[int], None] | None = None,
) -> LoadReport:
    """Upsert offers as PriceRates in one transaction: all of a file, or nothing.

    A new (provider, sku, region, pricing model) opens a rate. A changed price or currency
    closes the open rate and opens a new one from the offer's effective date (or now, when
    the catalog dates it before the open rate); the old rate stays as history. With
    ``dry_run`` the report is computed and the transaction rolled back."""
    now = now or timezone.now()
    report = LoadReport()
    gpu_models = {m.name: m for m in GpuModel.objects.all()}
    seen: set[tuple[str, str, str, str]] = set()
    with transaction.atomic():
        for count, offer in enumerate(offers, start=1):
            if progress and count % 1000 == 0:
                progress(count)
            if isinstance(offer, SkippedOffer):
                report.skipped.append(offer)
                continue
            if offer.key in seen:
                continue  # a catalog lists a price once per term; the first wins
            seen.add(offer.key)
            provider, sku, region, model = offer.key
            label = f"{provider} {sku} {region or '-'} {model}"
            current = (
                PriceRate.objects.select_for_update()
                .filter(provider=provider, sku=sku, region=region, pricing_model=model)
                .order_by("-valid_from")
                .first()
            )
            fields = {
                **_rate_fields(offer, gpu_models),
                "provider": provider,
                "sku": sku,
                "region": region,
                "pricing_model": model,
                "valid_to": offer.valid_to,
                "source": source,
            }
            if current is None:
                PriceRate.objects.create(valid_from=offer.valid_from or now, **fields)
                report.created += 1
                report.changes.append(
                    f"+ {label}: {offer.price_per_gpu_hour} {offer.currency}/GPU-h"
                )
                continue
            same_price = (
                current.price_per_unit_hour == offer.price_per_unit_hour
                and current.currency == offer.currency
            )
            if same_price:
                if offer.valid_to == current.valid_to or offer.valid_to is None:
                    report.unchanged += 1
                else:  # the same price, now with an end date
                    current.valid_to = offer.valid_to
                    current.save(update_fields=["valid_to"])
                    report.changed += 1
                    report.changes.append(f"~ {label}: valid until {offer.valid_to:%Y-%m-%d}")
                continue
            valid_from = (
                offer.valid_from
                if offer.valid_from and offer.valid_from > current.valid_from
                else now
            )
            if current.valid_to is None or current.valid_to > valid_from:
                current.valid_to = valid_from
                current.save(update_fields=["valid_to"])
            PriceRate.objects.create(valid_from=valid_from, **fields)
            report.changed += 1
            was, now_price = current.price_per_gpu_hour, offer.price_per_gpu_hour
            report.changes.append(f"~ {label}: {was} -> {now_price} {offer.currency}/GPU-h")
        if dry_run:
            transaction.set_rollback(True)
    return report
