"""Writes for the fleet."""

from __future__ import annotations

from typing import Any

from finops.fleet.catalog import catalog_entries

CATALOG_FIELDS = (
    "architecture",
    "vram_bytes",
    "memory_type",
    "bf16_dense_tflops",
    "mem_bandwidth_gb_per_s",
    "tdp_w",
    "pcie_gen",
    "nvlink",
    "match_patterns",
    "sources",
    "notes",
)


def gpu_model_catalog_sync(*, gpu_model_cls: Any) -> tuple[int, int]:
    """Upsert the shipped catalog by name; returns (created, updated).

    Takes the model class so data migrations can pass their historical model.
    """
    created = updated = 0
    for entry in catalog_entries():
        defaults = {field: entry[field] for field in CATALOG_FIELDS}
        _, was_created = gpu_model_cls.objects.update_or_create(
            name=entry["name"], defaults=defaults
        )
        created += was_created
        updated += not was_created
    return created, updated
