from __future__ import annotations

from django.apps import AppConfig


class SimulationConfig(AppConfig):
    name = "finops.simulation"
    verbose_name = "Simulated studio"
