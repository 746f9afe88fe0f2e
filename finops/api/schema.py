"""The OpenAPI description: FrameOps' own authentication, and the error responses of
every operation (drf-spectacular extensions)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema
from rest_framework import serializers


class ApiKeyScheme(OpenApiAuthenticationExtension):  # type: ignore[misc]
    target_class = "finops.api.authentication.ApiKeyAuthentication"
    name = "apiKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An API key from `manage.py create_api_key`, sent as "
            "`Authorization: Bearer fo_…`.",
        }


# --- every operation's error responses --------------------------------------------------


class ErrorSerializer(serializers.Serializer):
    """Every API error: a message, and details (``fields`` for validation errors)."""

    message = serializers.CharField()
    extra = serializers.DictField(help_text="`fields`: per-field messages; other details.")


ERROR_DESCRIPTIONS = {
    "400": "Invalid input: `extra.fields` names each parameter or field and what is wrong.",
    "401": "No credentials, or a key that is unknown or revoked.",
    "403": "The key or user lacks the scope this operation needs.",
    "404": "Not found, or not visible to this caller (another team's data).",
    "413": "The body (or its decompressed form) is larger than the limit.",
    "415": "The body's media type or Content-Encoding is not supported.",
    "429": "Too many requests: `extra.retry_after_s` says when to retry.",
}


class FrameOpsAutoSchema(AutoSchema):  # type: ignore[misc]
    """drf-spectacular's schema, with the error responses each operation can give: every
    operation 401/403/429 and 400; operations with a path parameter or a team filter 404;
    operations with a body 413 and 415."""

    def _get_response_bodies(self, direction: str = "response") -> dict[str, Any]:
        responses: dict[str, Any] = super()._get_response_bodies(direction)
        codes = ["400", "401", "403", "429"]
        if "{" in self.path or getattr(self.view, "may_404", False):
            codes.append("404")
        if self.method in ("POST", "PATCH", "PUT"):
            codes += ["413", "415"]
        for code in codes:
            if code not in responses:
                response = self._get_response_for_code(ErrorSerializer, code, direction=direction)
                response["description"] = ERROR_DESCRIPTIONS[code]
                responses[code] = response
        return responses
