"""HTTP for price catalogs: timeouts, retries with backoff, paging, streamed downloads."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import requests

RETRY_STATUS = {429, 500, 502, 503, 504}


def get_json(
    session: requests.Session, url: str, *, timeout_s: float = 30, attempts: int = 4
) -> dict[str, Any]:
    delay = 1.0
    for attempt in range(1, attempts + 1):
        try:
            response = session.get(url, timeout=timeout_s)
            if response.status_code in RETRY_STATUS and attempt < attempts:
                raise requests.HTTPError(f"HTTP {response.status_code}")
            response.raise_for_status()
            payload: dict[str, Any] = response.json()
            return payload
        except (requests.ConnectionError, requests.Timeout, requests.HTTPError) as exc:
            if attempt == attempts or (
                isinstance(exc, requests.HTTPError)
                and exc.response is not None
                and exc.response.status_code not in RETRY_STATUS
            ):
                raise
            time.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")


def azure_pages(
    url: str, *, session: requests.Session | None = None, max_pages: int = 10_000
) -> Iterator[dict[str, Any]]:
    """Follow ``NextPageLink`` to the end."""
    session = session or requests.Session()
    next_url: str | None = url
    for _ in range(max_pages):
        if not next_url:
            return
        page = get_json(session, next_url)
        yield page
        next_url = page.get("NextPageLink") or None
    raise RuntimeError(f"more than {max_pages} pages from {url}")


def _with_param(url: str, key: str, value: str) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != key] + [(key, value)]
    return urlunsplit(parts._replace(query=urlencode(query)))


def gcp_pages(
    url: str, *, session: requests.Session | None = None, max_pages: int = 10_000
) -> Iterator[dict[str, Any]]:
    """Follow ``nextPageToken`` (as ``pageToken``) to the end."""
    session = session or requests.Session()
    page_url = url
    for _ in range(max_pages):
        page = get_json(session, page_url)
        yield page
        token = page.get("nextPageToken")
        if not token:
            return
        page_url = _with_param(url, "pageToken", token)
    raise RuntimeError(f"more than {max_pages} pages from {url}")


def aws_next_pages(
    url: str,
    next_token: str | None,
    *,
    session: requests.Session | None = None,
    max_pages: int = 10_000,
) -> Iterator[dict[str, Any]]:
    """The GetProducts-shaped pages after the first, following ``NextToken`` to the end."""
    session = session or requests.Session()
    for _ in range(max_pages):
        if not next_token:
            return
        page = get_json(session, _with_param(url, "NextToken", next_token))
        yield page
        next_token = page.get("NextToken")
    raise RuntimeError(f"more than {max_pages} pages from {url}")


def download(
    url: str, target: Path, *, session: requests.Session | None = None, timeout_s: float = 60
) -> Path:
    """Stream a (large) file to disk without holding it in memory."""
    session = session or requests.Session()
    with session.get(url, stream=True, timeout=timeout_s) as response:
        response.raise_for_status()
        with target.open("wb") as out:
            for chunk in response.iter_content(chunk_size=1 << 20):
                out.write(chunk)
    return target
