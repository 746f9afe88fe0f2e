"""Idle capacity: paid GPU time no job held, per node (DESIGN: idle share >= 30%).

Waste: the node's idle cost in the window. Fix: release the idle share of its GPUs (or
move them to spot where a spot rate is loaded for the instance type), priced."""

from __future__ import annotations

from decimal import Decimal

from finops.fleet.models import PricingModel
from finops.insights.context import Context
from finops.insights.detectors import Draft, fix_action, money, severity_of
from finops.pricing.models import PriceRate


def detect(ctx: Context) -> list[Draft]:
    threshold = ctx.thresholds["idle_share"]
    lines = ctx.ledger_node
    if not len(lines):
        return []
    gpu_time = lines[lines["component"].isin(["gpu", "idle"])]
    paid = gpu_time.groupby("node_id")["amount"].sum()
    idle = gpu_time[gpu_time["bucket"] == "__idle__"].groupby("node_id")["amount"].sum()
    share = (idle.reindex(paid.index, fill_value=Decimal(0)) / paid.where(paid > 0)).dropna()
    hits = share[share.astype(float) >= threshold]
    if not len(hits):
        return []
    node_cost = lines.groupby("node_id")["amount"].sum()
    gpus = ctx.gpus.set_index("gpu_id")
    per_node = ctx.gpus.groupby("node_id")
    usable = ctx.jobs.assign(node_id=ctx.jobs["first_gpu"].map(gpus["node_id"]))
    usable_by_node = usable.groupby("node_id")["usable_seconds"].sum()
    drafts = []
    for node_id, fraction in hits.items():
        node = per_node.get_group(node_id).iloc[0]
        gpu_count = len(per_node.get_group(node_id))
        cost, waste = node_cost[node_id], idle[node_id]
        release = int(float(fraction) * gpu_count)
        spot = _spot_price(node["provider"], node["instance_type"])
        assumptions = [
            "the idle share of the window repeats over the month",
            f"{release} of {gpu_count} GPUs can be released without delaying queued work",
        ]
        recommendation = (
            f"{float(fraction):.0%} of the paid GPU time on {node['hostname']} had no job. "
            + (f"Release {release} of its {gpu_count} GPUs or scale the node down off-hours"
               if release else "Scale the node down off-hours")
            + (f", or move it to spot at {spot} per GPU-hour" if spot is not None else "")
            + "; a shared queue across teams fills the rest."
        )  # fmt: skip
        drafts.append(Draft(
            pattern="idle_capacity", scope_kind="node", scope_key=node["hostname"], team_id=None,
            evidence={
                "idle_cost": str(money(waste)), "paid_gpu_cost": str(money(paid[node_id])),
                "idle_share": round(float(fraction), 4), "gpus": gpu_count,
                "gpu_model": node["gpu_model"], "pricing_model": node["pricing_model"],
                "spot_price_per_gpu_hour": str(spot) if spot is not None else None,
            },
            waste=waste, scope_cost=cost, recommendation=recommendation,
            action=fix_action(kind="scale_down", scope_cost=cost, saved=waste,
                              usable_seconds=float(usable_by_node.get(node_id, 0.0)),
                              assumptions=assumptions, release_gpus=release),
            thresholds={"idle_share": threshold},
            severity=severity_of(float(fraction), threshold),
        ))  # fmt: skip
    return drafts


def _spot_price(provider: str, instance_type: str) -> Decimal | None:
    if not instance_type:
        return None
    rate = (
        PriceRate.objects.filter(
            provider=provider,
            sku=instance_type,
            pricing_model=PricingModel.SPOT,
            valid_to__isnull=True,
        )
        .order_by("price_per_gpu_hour")
        .first()
    )
    return rate.price_per_gpu_hour if rate else None
