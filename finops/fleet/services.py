"""Writes for the fleet."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from finops.fleet.catalog import catalog_entries
from finops.fleet.models import Gpu, Interconnect, Node, PricingModel, Site
from finops.fleet.selectors import gpu_model_for_reported_name

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


@dataclass(frozen=True)
class GpuRegistration:
    uuid: str
    index: int
    model: str = ""
    mem_total_bytes: int | None = None
    mig_parent_uuid: str | None = None
    mig_profile: str = ""
    mig_instance_id: int | None = None


@transaction.atomic
def node_register(
    *,
    hostname: str,
    site: str,
    provider: str,
    region: str = "",
    instance_type: str = "",
    pricing_model: str = PricingModel.ON_DEMAND,
    interconnect: str = Interconnect.PCIE,
    pcie_gen: int | None = None,
    gpus: list[GpuRegistration],
) -> tuple[Node, bool]:
    """Create or update a node and its GPUs by hostname (idempotent).

    GPUs are keyed by UUID: a GPU seen on another node moves here; a GPU of this node that
    the registration no longer lists is marked retired (its history stays)."""
    now = timezone.now()
    site_obj, _ = Site.objects.get_or_create(
        slug=site, defaults={"provider": provider, "region": region}
    )
    if site_obj.provider != provider or (region and site_obj.region != region):
        site_obj.provider, site_obj.region = provider, region or site_obj.region
        site_obj.save(update_fields=["provider", "region"])
    node, created = Node.objects.select_for_update().get_or_create(
        hostname=hostname,
        defaults={
            "site": site_obj,
            "instance_type": instance_type,
            "pricing_model": pricing_model,
            "interconnect": interconnect,
            "pcie_gen": pcie_gen,
        },
    )
    if not created:
        node.site, node.instance_type, node.pricing_model = site_obj, instance_type, pricing_model
        node.interconnect, node.pcie_gen = interconnect, pcie_gen
    node.last_seen_at = now
    node.save()

    listed = {g.uuid for g in gpus}
    # Free the slots first: retire what is gone, so a replaced GPU can take its index.
    Gpu.objects.filter(node=node, retired_at__isnull=True).exclude(uuid__in=listed).update(
        retired_at=now
    )
    Gpu.objects.filter(uuid__in=listed).update(retired_at=now)  # re-activated below
    by_uuid = {g.uuid: g for g in Gpu.objects.filter(uuid__in=listed)}
    # Physical GPUs before MIG instances, which need their parent.
    for reg in sorted(gpus, key=lambda g: g.mig_parent_uuid is not None):
        model = gpu_model_for_reported_name(
            reported_name=reg.model, mem_total_bytes=reg.mem_total_bytes
        )
        parent = by_uuid.get(reg.mig_parent_uuid) if reg.mig_parent_uuid else None
        gpu = by_uuid.get(reg.uuid) or Gpu(uuid=reg.uuid)
        gpu.node, gpu.index, gpu.model, gpu.reported_name = node, reg.index, model, reg.model
        gpu.vram_bytes = reg.mem_total_bytes
        gpu.mig_parent, gpu.mig_profile, gpu.mig_instance_id = (
            parent,
            reg.mig_profile,
            reg.mig_instance_id,
        )
        gpu.retired_at, gpu.last_seen_at = None, now
        gpu.save()
        by_uuid[reg.uuid] = gpu
    return node, created
