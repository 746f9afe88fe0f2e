"""One error shape for every API error: ``{"message": str, "extra": {...}}``.

Validation errors put per-field messages under ``extra.fields`` so a client can point at
the field; throttled responses say when to retry under ``extra.retry_after_s``.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, HttpRequest, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.serializers import as_serializer_error
from rest_framework.views import exception_handler


def error_body(message: str, **extra: Any) -> dict[str, Any]:
    return {"message": message, "extra": extra}


def _flatten(detail: Any) -> Any:
    if isinstance(detail, dict):
        return {key: _flatten(value) for key, value in detail.items()}
    if isinstance(detail, list):
        return [_flatten(item) for item in detail]
    return str(detail)


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(as_serializer_error(exc))
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, RequestDataTooBig):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        return Response(
            error_body(f"Request body is larger than the {limit}-byte limit.", limit_bytes=limit),
            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )

    response = exception_handler(exc, context)
    if response is None:
        return None

    if isinstance(exc, exceptions.ValidationError):
        fields = _flatten(exc.detail)
        if isinstance(fields, list):
            fields = {"non_field_errors": fields}
        names = ", ".join(sorted(fields))
        response.data = error_body(f"Invalid input: {names}.", fields=fields)
    elif isinstance(exc, exceptions.Throttled):
        response.data = error_body("Too many requests.", retry_after_s=exc.wait)
    elif isinstance(exc, exceptions.APIException):
        detail = exc.detail
        message = str(detail) if not isinstance(detail, dict | list) else "Request failed."
        extra: dict[str, Any] = {
            "code": exc.get_codes() if not isinstance(detail, dict | list) else None
        }
        if isinstance(detail, dict | list):
            extra["detail"] = _flatten(detail)
        response.data = error_body(message, **extra)
    return response


def json_not_found(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return JsonResponse(error_body(f"No such endpoint: {request.path}"), status=404)


def json_server_error(request: HttpRequest) -> JsonResponse:
    return JsonResponse(error_body("Internal server error; it has been logged."), status=500)
