from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse


class RequestBodyLimitMiddleware:
    """Refuse a body larger than MAX_REQUEST_BYTES (413, JSON) before anything reads it.

    Django enforces DATA_UPLOAD_MAX_MEMORY_SIZE only on ``request.body`` and form parsing;
    DRF parsers read the stream directly, so the declared length is checked here."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        raw_length = request.META.get("CONTENT_LENGTH") or "0"
        try:
            length = int(raw_length)
        except ValueError:
            return JsonResponse(
                {"message": f"Content-Length {raw_length!r} is not a number.", "extra": {}},
                status=400,
            )
        if limit is not None and length > limit:
            return JsonResponse(
                {
                    "message": f"Request body of {length} bytes is larger than the "
                    f"{limit}-byte limit.",
                    "extra": {"limit_bytes": limit, "content_length": length},
                },
                status=413,
            )
        return self.get_response(request)
