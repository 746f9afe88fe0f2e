"""AWS Price List: EC2 offer files (streamed) and the GetProducts response shape.

Offer file: ``{"products": {sku: {"productFamily", "attributes": {...}}}, "terms":
{"OnDemand": {sku: {term: {"effectiveDate", "priceDimensions": {rate: {"unit": "Hrs",
"pricePerUnit": {"USD": "98.32"}}}}}}, "Reserved": {...}}}``. Files run to hundreds of
MB, so they are read twice with a streaming parser (products, then terms) and only the
GPU products are held in memory. Kept: Linux, shared tenancy, ``capacitystatus`` Used, no
pre-installed software. Reserved terms: the 1-year, no-upfront, standard offering, as an
effective hourly price.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import IO, Any

import ijson

from collectors.pricing.instances import instance_gpus
from collectors.pricing.offers import (
    HOURS_PER_YEAR,
    PriceError,
    PriceOffer,
    SkippedOffer,
    catalog_time,
    currency_code,
    decimal_price,
)

# Older offer files carry no regionCode: the location names of the GPU regions.
LOCATION_REGIONS = {
    "US East (N. Virginia)": "us-east-1",
    "US East (Ohio)": "us-east-2",
    "US West (Oregon)": "us-west-2",
    "US West (N. California)": "us-west-1",
    "EU (Ireland)": "eu-west-1",
    "EU (Frankfurt)": "eu-central-1",
    "EU (London)": "eu-west-2",
    "EU (Stockholm)": "eu-north-1",
    "Asia Pacific (Tokyo)": "ap-northeast-1",
    "Asia Pacific (Seoul)": "ap-northeast-2",
    "Asia Pacific (Mumbai)": "ap-south-1",
    "Asia Pacific (Sydney)": "ap-southeast-2",
    "Asia Pacific (Singapore)": "ap-southeast-1",
    "Canada (Central)": "ca-central-1",
    "South America (Sao Paulo)": "sa-east-1",
}


@dataclass(frozen=True)
class _Product:
    instance_type: str
    region: str
    gpu_model: str
    gpus: int


def classify_product(
    sku: str, product: dict[str, Any], regions: set[str] | None
) -> _Product | SkippedOffer | None:
    """A GPU compute product FrameOps prices, a GPU product it cannot map, or None."""
    if not str(product.get("productFamily", "")).startswith("Compute Instance"):
        return None
    a = product.get("attributes", {})
    if (
        a.get("operatingSystem") != "Linux"
        or a.get("tenancy") != "Shared"
        or a.get("capacitystatus", "Used") != "Used"
        or a.get("preInstalledSw", "NA") != "NA"
    ):
        return None
    region = a.get("regionCode") or LOCATION_REGIONS.get(a.get("location", ""), "")
    if regions and region not in regions:
        return None
    instance_type = str(a.get("instanceType", ""))
    mapped = instance_gpus("aws", instance_type)
    if mapped is None:
        gpus = str(a.get("gpu", "0")).strip()
        if gpus.isdigit() and int(gpus) > 0:
            return SkippedOffer(
                "aws", instance_type, region, f"GPU instance ({gpus} GPUs) with no catalog mapping"
            )
        return None
    return _Product(instance_type, region, mapped[0], mapped[1])


def _hourly(dimensions: dict[str, Any], *, record: str) -> tuple[Decimal, Decimal, str]:
    """(hourly price, upfront price, currency) from a term's price dimensions."""
    hourly = upfront = Decimal(0)
    currency = ""
    found = False
    for rate_code, dim in dimensions.items():
        prices = dim.get("pricePerUnit") or {}
        where = f"{record}.priceDimensions.{rate_code}"
        if not prices:
            raise PriceError(where, "pricePerUnit", "is missing")
        if len(prices) != 1:
            raise PriceError(where, "pricePerUnit", f"has {len(prices)} currencies; expected one")
        ((code, value),) = prices.items()
        currency = currency_code(code, record=where, field_name="pricePerUnit")
        price = decimal_price(value, record=where, field_name=f"pricePerUnit.{code}")
        unit = dim.get("unit")
        if unit == "Hrs":
            hourly, found = price, True
        elif unit == "Quantity":
            upfront = price
    if not found:
        raise PriceError(record, "priceDimensions", "has no hourly (unit 'Hrs') price")
    return hourly, upfront, currency


def offers_from_terms(
    sku: str, product: _Product, kind: str, terms: dict[str, Any]
) -> Iterator[PriceOffer]:
    for code, term in terms.items():
        record = f"terms.{kind}.{sku}.{code}"
        if kind == "Reserved":
            attrs = term.get("termAttributes", {})
            if (
                attrs.get("LeaseContractLength"),
                attrs.get("PurchaseOption"),
                attrs.get("OfferingClass"),
            ) != (
                "1yr",
                "No Upfront",
                "standard",
            ):
                continue
        hourly, upfront, currency = _hourly(term.get("priceDimensions") or {}, record=record)
        if kind == "Reserved":
            hourly += upfront / HOURS_PER_YEAR
        yield PriceOffer(
            provider="aws",
            sku=product.instance_type,
            region=product.region,
            pricing_model="on-demand" if kind == "OnDemand" else "reserved",
            gpu_model=product.gpu_model,
            gpus_per_unit=product.gpus,
            price_per_unit_hour=hourly,
            currency=currency,
            valid_from=catalog_time(term.get("effectiveDate")),
            raw_reference={"sku": sku, "offerTermCode": term.get("offerTermCode", code)},
        )


def offer_file(
    open_file: Callable[[], IO[bytes]],
    *,
    regions: set[str] | None = None,
    progress: Callable[[int], None] | None = None,
) -> Iterator[PriceOffer | SkippedOffer]:
    """Stream an EC2 offer file. ``open_file`` is called twice (products, then terms)."""
    wanted: dict[str, _Product] = {}
    seen = 0
    try:
        with open_file() as f:
            for sku, product in ijson.kvitems(f, "products"):
                seen += 1
                if progress and seen % 10_000 == 0:
                    progress(seen)
                found = classify_product(sku, product, regions)
                if isinstance(found, _Product):
                    wanted[sku] = found
                elif isinstance(found, SkippedOffer):
                    yield found
        for kind in ("OnDemand", "Reserved"):
            with open_file() as f:
                for sku, terms in ijson.kvitems(f, f"terms.{kind}"):
                    seen += 1
                    if progress and seen % 10_000 == 0:
                        progress(seen)
                    product = wanted.get(sku)
                    if product is not None:
                        yield from offers_from_terms(sku, product, kind, terms)
    except ijson.JSONError as exc:
        where = _json_error_position(open_file)
        raise PriceError(
            "offer file", "(json)", f"is not valid or is truncated{where}: {exc}"
        ) from exc


# Re-read a broken offer file whole to say where it breaks; larger ones keep the parser's
# own message (a byte offset at best) rather than hold gigabytes in memory.
POSITION_SCAN_MAX_BYTES = 512 * 2**20


def _json_error_position(open_file: Callable[[], IO[bytes]]) -> str:
    """`` at line L, column C`` of the first JSON error in the file, or ``""``."""
    try:
        with open_file() as f:
            data = f.read(POSITION_SCAN_MAX_BYTES + 1)
    except OSError:
        return ""
    if len(data) > POSITION_SCAN_MAX_BYTES:
        return ""
    try:
        json.loads(data)
    except json.JSONDecodeError as exc:
        return f" at line {exc.lineno}, column {exc.colno} ({exc.msg})"
    except UnicodeDecodeError as exc:
        return f" at byte {exc.start} (not UTF-8)"
    return ""


def get_products_pages(
    pages: Iterable[dict[str, Any]], *, regions: set[str] | None = None
) -> Iterator[PriceOffer | SkippedOffer]:
    """Offers from ``pricing:GetProducts`` responses, whose ``PriceList`` entries are JSON
    strings of ``{"product": ..., "terms": {"OnDemand": ..., "Reserved": ...}}``."""
    for page_number, page in enumerate(pages, start=1):
        for position, raw in enumerate(page.get("PriceList", []), start=1):
            try:
                entry = json.loads(raw) if isinstance(raw, str) else raw
            except json.JSONDecodeError as exc:
                raise PriceError(
                    f"page {page_number} PriceList[{position}]", "(json)", str(exc)
                ) from exc
            product = entry.get("product", {})
            sku = str(product.get("sku", f"page{page_number}-{position}"))
            found = classify_product(sku, product, regions)
            if isinstance(found, SkippedOffer):
                yield found
            elif isinstance(found, _Product):
                terms = entry.get("terms", {})
                for kind in ("OnDemand", "Reserved"):
                    yield from offers_from_terms(sku, found, kind, terms.get(kind, {}).get(sku, {}))
