from __future__ import annotations

from django.apps import AppConfig


class OpsConfig(AppConfig):
    name = "finops.ops"
    label = "ops"
    verbose_name = "Operations"

    def ready(self) -> None:
        from finops.ops import checks, metrics  # noqa: F401  (registers checks and signals)
        from finops.ops.audit import audit_register

        audit_register()
