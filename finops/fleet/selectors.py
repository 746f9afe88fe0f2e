"""Reads for the fleet."""

from __future__ import annotations

from collectors.catalog import CatalogCandidate, match_gpu_model
from finops.fleet.models import GpuModel


def gpu_model_for_reported_name(
    *, reported_name: str, mem_total_bytes: int | None = None
) -> GpuModel | None:
    """The catalog model for a name as NVML or dcgm-exporter reports it; None if unknown or
    ambiguous. Operators extend matching by editing a model's patterns in the admin."""
    models = {m.pk: m for m in GpuModel.objects.all()}
    candidates = [
        CatalogCandidate(key=pk, vram_bytes=m.vram_bytes, patterns=m.match_patterns)
        for pk, m in models.items()
    ]
    pk = match_gpu_model(reported_name, candidates, mem_total_bytes=mem_total_bytes)
    return models.get(pk) if pk is not None else None
