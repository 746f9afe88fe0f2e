"""Which price applies to a node, or a storage device, at a time, and why."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db.models import Min, Q
from django.utils import timezone

from finops.fleet.models import GpuModel, Node, PricingModel, StorageDevice
from finops.pricing.models import PriceRate


@dataclass(frozen=True)
class ResolvedPrice:
    price: Decimal | None
    currency: str
    reason: str
    rate: PriceRate | None = None
    unit: str = "GPU-hour"

    def as_json(self) -> dict[str, object]:
        return {
            "price_per_gpu_hour": str(self.price) if self.price is not None else None,
            "currency": self.currency,
            "reason": self.reason,
            "rate_id": self.rate.pk if self.rate else None,
            "rate": None
            if self.rate is None
            else {
                "provider": self.rate.provider,
                "sku": self.rate.sku,
                "region": self.rate.region,
                "pricing_model": self.rate.pricing_model,
                "source": self.rate.source,
                "valid_from": self.rate.valid_from.isoformat(),
                "valid_to": self.rate.valid_to.isoformat() if self.rate.valid_to else None,
            },
        }


def _effective(at: datetime) -> Q:
    return Q(valid_from__lte=at) & (Q(valid_to__isnull=True) | Q(valid_to__gt=at))


def _node_gpu_model(node: Node) -> GpuModel | None:
    models = Counter(
        g.model
        for g in node.gpus.filter(retired_at__isnull=True, mig_parent__isnull=True).select_related(
            "model"
        )
    )
    return models.most_common(1)[0][0] if models else None


class PriceBook:
    """Price resolution over rates loaded once: the costing engine resolves thousands of
    (node, hour) pairs and must not query for each."""

    def __init__(self, *, providers: set[str]) -> None:
        self._rates: dict[tuple[str, str, str], list[PriceRate]] = defaultdict(list)
        for rate in PriceRate.objects.filter(provider__in=providers).order_by("-valid_from"):
            self._rates[(rate.provider, rate.sku, rate.pricing_model)].append(rate)

    def _rate(
        self, provider: str, sku: str, region: str, pricing_model: str, at: datetime
    ) -> PriceRate | None:
        """The rate for the region, else a region-less rate (a rate card's global price)."""
        candidates = [
            r
            for r in self._rates.get((provider, sku, pricing_model), [])
            if r.valid_from <= at and (r.valid_to is None or r.valid_to > at)
        ]
        return next((r for r in candidates if r.region == region), None) or next(
            (r for r in candidates if r.region == ""), None
        )

    def resolve(self, *, node: Node, at: datetime, gpu_model: GpuModel | None) -> ResolvedPrice:
        """Explicit node override > matching rate (provider, instance type, region, pricing
        model, effective at ``at``) > per-GPU rate for the node's GPU model (GCP prices GPUs
        apart from VMs) > the GPU model's default rate."""
        if node.price_override_per_gpu_hour is not None:
            return ResolvedPrice(
                node.price_override_per_gpu_hour, node.currency, "node price override"
            )
        site = node.site
        if node.instance_type:
            rate = self._rate(
                site.provider, node.instance_type, site.region, node.pricing_model, at
            )
            if rate is not None:
                where = f"{rate.region}" if rate.region else "any region"
                return ResolvedPrice(
                    rate.price_per_gpu_hour,
                    rate.currency,
                    f"{rate.get_source_display()} rate for {rate.sku} in {where}, "
                    f"{rate.pricing_model}, valid from {rate.valid_from:%Y-%m-%d}",
                    rate,
                )
        if gpu_model is not None:
            rate = self._rate(site.provider, gpu_model.name, site.region, node.pricing_model, at)
            if rate is not None:
                return ResolvedPrice(
                    rate.price_per_gpu_hour,
                    rate.currency,
                    f"{rate.get_source_display()} per-GPU rate for {gpu_model.name} in "
                    f"{rate.region or 'any region'}, {rate.pricing_model}",
                    rate,
                )
            if gpu_model.default_price_per_gpu_hour is not None:
                return ResolvedPrice(
                    gpu_model.default_price_per_gpu_hour,
                    gpu_model.default_price_currency,
                    f"default rate of {gpu_model.name}",
                )
        what = node.instance_type or (gpu_model.name if gpu_model else "unknown GPUs")
        return ResolvedPrice(
            None,
            node.currency,
            f"no price: no rate for {site.provider} {what} {site.region or ''} "
            f"{node.pricing_model} at {at:%Y-%m-%d %H:%M}Z and no default rate",
        )


def price_resolve(*, node: Node, at: datetime) -> ResolvedPrice:
    """The price per GPU-hour of ``node`` at ``at``, and why (see ``PriceBook.resolve``)."""
    book = PriceBook(providers={node.site.provider})
    return book.resolve(node=node, at=at, gpu_model=_node_gpu_model(node))


def storage_price_resolve(*, device: StorageDevice, at: datetime) -> ResolvedPrice:
    """Per GB-month price of a device's volume type at ``at`` (same provider and region)."""
    site = device.node.site
    if not device.volume_type:
        return ResolvedPrice(
            None, device.node.currency, "no price: the device has no volume type", unit="GB-month"
        )
    base = PriceRate.objects.filter(
        _effective(at),
        provider=site.provider,
        sku=device.volume_type,
        storage_per_gb_month__isnull=False,
    )
    rate = (
        base.filter(region=site.region).order_by("-valid_from").first()
        or base.filter(region="").first()
    )
    if rate is None:
        return ResolvedPrice(
            None,
            device.node.currency,
            f"no price for volume type {device.volume_type}",
            unit="GB-month",
        )
    return ResolvedPrice(
        rate.storage_per_gb_month,
        rate.currency,
        f"{rate.get_source_display()} rate for {rate.sku} per GB-month",
        rate,
        unit="GB-month",
    )


def unpriced_node_ids(*, at: datetime) -> set[int]:
    """Nodes that no override, rate or GPU-model default prices at ``at`` (one PriceBook
    for the whole fleet): their GPU time would be booked as unpriced."""
    nodes = list(Node.objects.select_related("site").prefetch_related("gpus__model"))
    book = PriceBook(providers={n.site.provider for n in nodes})
    unpriced = set()
    for node in nodes:
        models = Counter(
            g.model for g in node.gpus.all() if g.retired_at is None and g.mig_parent_id is None
        )
        gpu_model = models.most_common(1)[0][0] if models else None
        if book.resolve(node=node, at=at, gpu_model=gpu_model).price is None:
            unpriced.add(node.pk)
    return unpriced


def planner_prices(*, at: datetime | None = None) -> dict[str, tuple[Decimal, str]]:
    """What the planner (``inference.plan``) prices each GPU model at: the cheapest on-demand
    rate loaded and valid at ``at`` (now), else the model's default rate set in the admin;
    GPU model name -> (price per GPU-hour, where it came from)."""
    at = at or timezone.now()
    found: dict[str, tuple[Decimal, str]] = {}
    for model in GpuModel.objects.exclude(default_price_per_gpu_hour=None):
        found[model.name] = (model.default_price_per_gpu_hour, "catalog default")
    rates = (
        PriceRate.objects.filter(Q(valid_to__isnull=True) | Q(valid_to__gt=at), valid_from__lte=at)
        .filter(pricing_model=PricingModel.ON_DEMAND, gpu_model__isnull=False)
        .values("gpu_model__name")
        .annotate(price=Min("price_per_gpu_hour"))
        .order_by()
    )
    for rate in rates:
        found[rate["gpu_model__name"]] = (rate["price"], "cheapest on-demand rate")
    return found
