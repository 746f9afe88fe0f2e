from __future__ import annotations

from celery import shared_task
from django.conf import settings

from finops.pricing.services import price_offers_load
from finops.pricing.sources import HISTORY_KINDS, SOURCE_NAMES, offers_from


@shared_task(name="finops.pricing.tasks.refresh_prices")
def refresh_prices() -> dict[str, str]:
    """Reload every source in PRICE_SOURCES; one failing source does not stop the others."""
    results = {}
    for kind, location in settings.PRICE_SOURCES:
        try:
            report = price_offers_load(
                offers=offers_from(kind, location),
                source=SOURCE_NAMES[kind],
                history=kind in HISTORY_KINDS,
            )
            results[f"{kind} {location}"] = report.summary()
        except Exception as exc:  # reported per source; the task itself succeeds
            results[f"{kind} {location}"] = f"failed: {exc}"
    return results
