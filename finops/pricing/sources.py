"""Price sources by kind and location (a file path or an http(s) URL)."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from itertools import chain
from pathlib import Path
from typing import IO, Any

from collectors.pricing import aws, azure, fetch, gcp, ratecard
from collectors.pricing.offers import PriceError, PriceOffer, SkippedOffer

KINDS = ("aws", "azure", "gcp", "csv", "onprem")
# Rate cards are history: each dated row is a rate of its own (catalogs give current prices).
HISTORY_KINDS = frozenset({"csv", "onprem"})
SOURCE_NAMES = {"aws": "aws", "azure": "azure", "gcp": "gcp", "csv": "csv", "onprem": "onprem"}


def _is_url(location: str) -> bool:
    return location.startswith(("http://", "https://"))


def _json_pages(path: Path) -> list[dict[str, Any]]:
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise PriceError(str(path), "(json)", f"is not valid or is truncated: {exc}") from exc
    return data if isinstance(data, list) else [data]


@contextmanager
def _local_copy(location: str) -> Iterator[Path]:
    if not _is_url(location):
        path = Path(location)
        if not path.is_file():
            raise PriceError(location, "(path)", "no such file")
        yield path
        return
    with tempfile.TemporaryDirectory() as tmp:
        yield fetch.download(location, Path(tmp) / "offer.json")


def _looks_like_get_products(path: Path) -> bool:
    with path.open("rb") as f:
        return b'"PriceList"' in f.read(4096)


def offers_from(
    kind: str,
    location: str,
    *,
    regions: set[str] | None = None,
    progress: Callable[[int], None] | None = None,
) -> Iterator[PriceOffer | SkippedOffer]:
    if kind not in KINDS:
        raise PriceError(kind, "kind", f"use one of {', '.join(KINDS)}")
    if kind == "aws":
        with _local_copy(location) as path:
            if _looks_like_get_products(path):
                pages: Iterable[dict[str, Any]] = _json_pages(path)
                if _is_url(location):
                    first = list(pages)
                    pages = chain(first, fetch.aws_next_pages(location, first[-1].get("NextToken")))
                yield from aws.get_products_pages(pages, regions=regions)
            else:

                def open_file() -> IO[bytes]:
                    return path.open("rb")

                yield from aws.offer_file(open_file, regions=regions, progress=progress)
    elif kind == "azure":
        pages = (
            fetch.azure_pages(location) if _is_url(location) else iter(_json_pages(Path(location)))
        )
        yield from azure.retail_items(pages, regions=regions)
    elif kind == "gcp":
        pages = (
            fetch.gcp_pages(location) if _is_url(location) else iter(_json_pages(Path(location)))
        )
        yield from gcp.skus(pages, regions=regions)
    elif kind == "csv":
        with _local_copy(location) as path, path.open(newline="") as f:
            yield from ratecard.rate_card_csv(f)
    else:
        with _local_copy(location) as path, path.open() as f:
            yield from ratecard.onprem_json(f)
