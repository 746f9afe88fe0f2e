"""Writes for the fleet."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from collectors.catalog import catalog_entries
from finops.fleet.models import Gpu, Node, Site, StorageDevice
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


@dataclass(frozen=True)
class StorageRegistration:
    name: str
    kind: str | None = None
    volume_type: str | None = None
    capacity_bytes: int | None = None
    filesystem: str | None = None
    mount_point: str | None = None


# Node fields a registration may leave out: an omitted one keeps its value (a new node
# takes the model's default), so an agent restarting without them never resets pricing.
NODE_FIELDS = ("instance_type", "pricing_model", "interconnect", "pcie_gen")


@transaction.atomic
def node_register(
    *,
    hostname: str,
    site: str,
    provider: str,
    region: str = "",
    gpus: list[GpuRegistration],
    storage: list[StorageRegistration] | None = None,
    **fields: Any,
) -> tuple[Node, bool]:
    """Create or update a node, its GPUs and storage devices by hostname (idempotent).

    Only the node fields given (``instance_type``, ``pricing_model``, ``interconnect``,
    ``pcie_gen``) are changed. GPUs are keyed by UUID: a GPU seen on another node moves
    here; a GPU of this node that the registration no longer lists is marked retired (its
    history stays). Storage devices are keyed by name; their omitted fields are kept."""
    unknown = set(fields) - set(NODE_FIELDS)
    if unknown:
        raise TypeError(f"node_register: unknown fields {sorted(unknown)}")
    now = timezone.now()
    site_obj, _ = Site.objects.get_or_create(
        slug=site, defaults={"provider": provider, "region": region}
    )
    if site_obj.provider != provider or (region and site_obj.region != region):
        site_obj.provider, site_obj.region = provider, region or site_obj.region
        site_obj.save(update_fields=["provider", "region"])
    node, created = Node.objects.select_for_update().get_or_create(
        hostname=hostname, defaults={"site": site_obj, **fields}
    )
    if not created:
        node.site = site_obj
        for name, value in fields.items():
            setattr(node, name, value)
    node.last_seen_at = now
    node.save()
    for device in storage or []:
        given = {
            k: v
            for k in ("kind", "volume_type", "capacity_bytes", "filesystem", "mount_point")
            if (v := getattr(device, k)) is not None
        }
        obj, made = StorageDevice.objects.get_or_create(
            node=node, name=device.name, defaults={"kind": "local-nvme", **given}
        )
        if not made and given:
            for name, value in given.items():
                setattr(obj, name, value)
            obj.save(update_fields=list(given))

    listed = {g.uuid for g in gpus}
    returning = set(
        Gpu.objects.filter(uuid__in=listed, retired_at__isnull=False).values_list("uuid", flat=True)
    )
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
        # A registration lists the GPUs the agent opened at start-up, not what reports
        # now: it starts the staleness clock of a new or returning GPU, and leaves a known
        # GPU's last sample time alone (a GPU that died stays stale; its alert fires).
        if gpu.pk is None or gpu.last_seen_at is None or reg.uuid in returning:
            gpu.last_seen_at = now
        gpu.retired_at = None
        gpu.save()
        by_uuid[reg.uuid] = gpu
    return node, created
