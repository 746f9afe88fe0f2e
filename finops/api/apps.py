from __future__ import annotations

from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "finops.api"
    label = "api"

    def ready(self) -> None:
        from finops.api import schema  # noqa: F401  (registers the OpenAPI auth extension)
