from __future__ import annotations

import io
import logging
from collections.abc import Callable

from django.conf import settings
from django.core.handlers.wsgi import LimitedStream
from django.db import InterfaceError, OperationalError, connections
from django.http import HttpRequest, HttpResponse, JsonResponse

log = logging.getLogger("frameops.ops")


class RequestBodyLimitMiddleware:
    """Refuse a body larger than MAX_REQUEST_BYTES (413, JSON) before anything reads it.

    Django enforces DATA_UPLOAD_MAX_MEMORY_SIZE only on ``request.body`` and form parsing;
    DRF parsers read the stream directly, so the declared length is checked here.

    A body sent chunked has no Content-Length. Django reads such a body as empty; gunicorn
    marks its input as terminated (``wsgi.input_terminated``), so it is read here, at most
    one byte past the limit: above it is a 413 like a declared length, within it the body
    is handed on with its length as if it had been declared."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if _chunked_without_length(request):
            refused = _read_chunked_body(request, limit)
            if refused is not None:
                return refused
        raw_length = request.META.get("CONTENT_LENGTH") or "0"
        try:
            length = int(raw_length)
        except ValueError:
            return JsonResponse(
                {"message": f"Content-Length {raw_length!r} is not a number.", "extra": {}},
                status=400,
            )
        if limit is not None and length > limit:
            return _too_large(limit, f"Request body of {length} bytes", content_length=length)
        return self.get_response(request)


def _too_large(limit: int, what: str, **extra: object) -> JsonResponse:
    return JsonResponse(
        {
            "message": f"{what} is larger than the {limit}-byte limit.",
            "extra": {"limit_bytes": limit, **extra},
        },
        status=413,
    )


def _chunked_without_length(request: HttpRequest) -> bool:
    meta = request.META
    return (
        not meta.get("CONTENT_LENGTH")
        and "chunked" in meta.get("HTTP_TRANSFER_ENCODING", "").lower()
        and bool(meta.get("wsgi.input_terminated"))
    )


def _read_chunked_body(request: HttpRequest, limit: int | None) -> JsonResponse | None:
    stream = request.META["wsgi.input"]
    body = stream.read(limit + 1) if limit is not None else stream.read()
    if limit is not None and len(body) > limit:
        return _too_large(limit, "Chunked request body", transfer_encoding="chunked")
    request.META["CONTENT_LENGTH"] = str(len(body))
    request._stream = LimitedStream(io.BytesIO(body), len(body))  # type: ignore[attr-defined]
    return None


class DatabaseUnavailableMiddleware:
    """A request that finds PostgreSQL away (restarting, failing over) answers 503 with
    Retry-After, JSON: a client that retries (the host agent spools and replays on 503)
    loses nothing, where a 500 would read as a bug in its request. The next request opens
    a new connection (CONN_HEALTH_CHECKS), so the web process needs no restart."""

    RETRY_AFTER_S = 5

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, OperationalError | InterfaceError):
            return None
        # Drop the broken connection now, so this process reconnects on its next request.
        for connection in connections.all(initialized_only=True):
            connection.close_if_unusable_or_obsolete()
        log.warning("database unavailable: %s", str(exception).strip().splitlines()[0:1])
        response = JsonResponse(
            {
                "message": "The database is unavailable; retry shortly. Nothing of this "
                "request was stored.",
                "extra": {"retry_after_s": self.RETRY_AFTER_S},
            },
            status=503,
        )
        response["Retry-After"] = str(self.RETRY_AFTER_S)
        return response
