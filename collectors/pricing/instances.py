"""Which GPUs a priced unit carries: data in instances.json, easy to extend."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

DATA = Path(__file__).with_name("instances.json")


@cache
def _data() -> dict[str, Any]:
    return dict(json.loads(DATA.read_text()))


def instance_gpus(provider: str, instance_type: str) -> tuple[str, int] | None:
    """(catalog GPU model, GPUs per instance) for an instance type, or None if unknown."""
    table = _data().get(provider, {})
    entry = table.get(instance_type)
    if entry is None and provider == "azure":
        # Azure names appear with and without the "Standard_" prefix and in any case.
        wanted = instance_type.lower().removeprefix("standard_")
        entry = next(
            (v for k, v in table.items() if k.lower().removeprefix("standard_") == wanted), None
        )
    return (str(entry[0]), int(entry[1])) if entry else None


def gcp_gpu_model(description: str) -> str | None:
    """The catalog GPU model a GCP GPU SKU description names ("Nvidia H100 80GB GPU running
    in Americas"), or None."""
    text = " ".join(description.lower().replace("nvidia", " ").replace("tesla", " ").split()) + " "
    for needle, model in _data()["gcp_gpu_descriptions"]:
        if needle in text:
            return str(model)
    return None


def gcp_machine_gpus(machine_type: str) -> tuple[str, int] | None:
    entry = _data()["gcp_machine_types"].get(machine_type)
    return (str(entry[0]), int(entry[1])) if entry else None
