from __future__ import annotations

from django.apps import AppConfig


class PlacementConfig(AppConfig):
    name = "finops.placement"
    label = "placement"
    verbose_name = "Placement"
