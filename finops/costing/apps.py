from __future__ import annotations

from django.apps import AppConfig


class CostingConfig(AppConfig):
    name = "finops.costing"
    label = "costing"
