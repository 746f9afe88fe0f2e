"""I/O starvation, per node: GPU-minutes inside jobs whose utilisation dips below 30%
while the node's storage await exceeds 20 ms or its utilisation 90% (the GPUs wait on
storage), at least 10% of the held GPU time; latents on network storage are noted.

Waste: the stalled GPU time at the node's GPU-hour price. Fix: local NVMe Gen4/5 for
latents, prefetching inputs, asynchronous latent writes."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pandas as pd
from django.db.models import Avg, Exists, OuterRef, Q, Sum

from finops.fleet.models import StorageDevice, StorageKind
from finops.insights.context import Context
from finops.insights.detectors import Draft, dec, fix_action, money, severity_of
from finops.jobs.models import GpuAllocation
from finops.telemetry.models import GpuMinute, StorageSample


def detect(ctx: Context) -> list[Draft]:
    t = ctx.thresholds
    # In SQL, over the window's GPU-minutes: held ones (an allocation covers the minute) and
    # of those the stalled ones (low utilisation while a device of the node is slow). Each
    # test is an index probe (allocations by GPU and start; storage samples by device, ts).
    held = GpuAllocation.objects.filter(
        gpu_id=OuterRef("gpu_id"), start__lte=OuterRef("ts")
    ).filter(Q(end__isnull=True) | Q(end__gt=OuterRef("ts")))
    slow = StorageSample.objects.filter(
        device__node_id=OuterRef("gpu__node_id"),
        ts__gte=OuterRef("ts"),
        ts__lt=OuterRef("ts") + timedelta(minutes=1),
    ).filter(Q(await_ms__gt=t["io_await_ms"]) | Q(util_pct__gt=t["io_storage_util_pct"]))
    # Only nodes whose storage was slow at all in the window can have stalled minutes.
    slow_nodes = list(
        StorageSample.objects.filter(ts__gte=ctx.start, ts__lt=ctx.end)
        .filter(Q(await_ms__gt=t["io_await_ms"]) | Q(util_pct__gt=t["io_storage_util_pct"]))
        .values_list("device__node_id", flat=True)
        .distinct()
    )
    if not slow_nodes:
        return []
    minutes = GpuMinute.objects.filter(
        ts__gte=ctx.start,
        ts__lt=ctx.end,
        gpu__mig_parent__isnull=True,
        gpu__node_id__in=slow_nodes,
    ).filter(Exists(held))
    rows = (
        minutes.values("gpu__node_id")
        .annotate(
            held_s=Sum("covered_s"),
            stalled_s=Sum(
                "covered_s",
                filter=Q(util_mean_pct__lt=t["io_gpu_util_pct"]) & Q(Exists(slow)),
            ),
        )
        .values_list("gpu__node_id", "held_s", "stalled_s")
    )
    per_node = pd.DataFrame.from_records(list(rows), columns=["node_id", "held_s", "stalled_s"])
    if not len(per_node):
        return []
    per_node = per_node.set_index("node_id").fillna(0.0)
    per_node = per_node[per_node["held_s"] > 0]
    per_node["share"] = per_node["stalled_s"] / per_node["held_s"]
    hits = per_node[per_node["share"] >= t["io_stalled_share"]].copy()
    if not len(hits):
        return []
    awaits = dict(
        StorageSample.objects.filter(
            ts__gte=ctx.start,
            ts__lt=ctx.end,
            device__node_id__in=hits.index.tolist(),
            await_ms__gt=t["io_await_ms"],
        )
        .values("device__node_id")
        .annotate(mean=Avg("await_ms"))
        .values_list("device__node_id", "mean")
    )
    hits["await_ms"] = [awaits.get(n, 0.0) for n in hits.index]
    gpus = ctx.gpus.set_index("gpu_id")
    lines = ctx.ledger_gpu
    gpu_time = lines[lines["component"].isin(["gpu", "idle"])]
    price = gpu_time.groupby("node_id")["amount"].sum() / gpu_time.groupby("node_id")[
        "quantity"
    ].sum().where(lambda q: q > 0)
    node_cost = ctx.ledger_node.groupby("node_id")["amount"].sum()
    network = set(
        StorageDevice.objects.filter(
            node_id__in=hits.index.tolist(), kind=StorageKind.NETWORK
        ).values_list("node_id", flat=True)
    )
    usable = ctx.jobs.assign(node_id=ctx.jobs["first_gpu"].map(gpus["node_id"]))
    usable_by_node = usable.groupby("node_id")["usable_seconds"].sum()
    hostnames = ctx.gpus.groupby("node_id")["hostname"].first()
    drafts = []
    for node_id, r in hits.iterrows():
        hourly = price.get(node_id)
        if hourly is None or hourly != hourly:
            continue
        waste = hourly * dec(r["stalled_s"] / 3600)
        cost = node_cost.get(node_id, Decimal(0))
        host = hostnames[node_id]
        drafts.append(
            Draft(
                pattern="io_starvation",
                scope_kind="node",
                scope_key=host,
                team_id=None,
                evidence={
                    "held_gpu_s": round(float(r["held_s"]), 1),
                    "stalled_gpu_s": round(float(r["stalled_s"]), 1),
                    "stalled_share": round(float(r["share"]), 4),
                    "storage_await_ms_while_stalled": round(float(r["await_ms"]), 1),
                    "latents_on_network_storage": node_id in network,
                    "gpu_hour_price": str(money(hourly)),
                },
                waste=waste,
                scope_cost=cost,
                recommendation=f"GPUs on {host} waited on storage for "
                f"{float(r['share']):.0%} of the "
                f"time jobs held them (utilisation under {t['io_gpu_util_pct']:.0f}% while storage "
                f"await averaged {float(r['await_ms']):.0f} ms)"
                + (", with latents on network storage" if node_id in network else "")
                + ". Put latents on local NVMe (Gen4/5), prefetch inputs, write latents "
                "asynchronously.",
                action=fix_action(
                    kind="local_nvme",
                    scope_cost=cost,
                    saved=waste,
                    usable_seconds=float(usable_by_node.get(node_id, 0.0)),
                    assumptions=[
                        "the stalled minutes run at the node's normal "
                        "utilisation on fast local storage"
                    ],
                ),
                thresholds={
                    k: t[k]
                    for k in (
                        "io_gpu_util_pct",
                        "io_await_ms",
                        "io_storage_util_pct",
                        "io_stalled_share",
                    )
                },
                severity=severity_of(float(r["share"]), t["io_stalled_share"]),
            )
        )
    return drafts
