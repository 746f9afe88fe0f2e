"""I/O starvation, per node: GPU-minutes inside jobs whose utilisation dips below 30%
while the node's storage await exceeds 20 ms or its utilisation 90% (the GPUs wait on
storage), at least 10% of the held GPU time; latents on network storage are noted.

Waste: the stalled GPU time at the node's GPU-hour price. Fix: local NVMe Gen4/5 for
latents, prefetching inputs, asynchronous latent writes."""

from __future__ import annotations

from decimal import Decimal

import pandas as pd

from finops.fleet.models import StorageDevice, StorageKind
from finops.insights.context import Context
from finops.insights.detectors import Draft, dec, fix_action, money, severity_of


def detect(ctx: Context) -> list[Draft]:
    t = ctx.thresholds
    minutes, storage = ctx.minutes(), ctx.storage_minutes()
    if not len(minutes) or not len(storage):
        return []
    allocations = ctx.allocations()
    if not len(allocations):
        return []
    gpus = ctx.gpus.set_index("gpu_id")
    m = minutes.assign(node_id=minutes["gpu_id"].map(gpus["node_id"])).dropna(subset=["node_id"])
    # Held minutes: each GPU-minute against the allocation of that GPU starting before it.
    a = allocations.assign(end=allocations["end"].fillna(ctx.end)).sort_values("start")
    m = pd.merge_asof(m.sort_values("ts"), a, left_on="ts", right_on="start", by="gpu_id")
    held = m[m["start"].notna() & (m["ts"] < m["end"])]
    if not len(held):
        return []
    held = held.merge(storage, on=["node_id", "ts"], how="left")
    slow = held["await_ms"].fillna(0).gt(t["io_await_ms"]) | held["util_pct"].fillna(0).gt(
        t["io_storage_util_pct"]
    )
    stalled = held[held["util_mean_pct"].fillna(100).lt(t["io_gpu_util_pct"]) & slow]
    per_node = held.groupby("node_id")["covered_s"].sum().to_frame("held_s")
    per_node["stalled_s"] = stalled.groupby("node_id")["covered_s"].sum()
    per_node["await_ms"] = stalled.groupby("node_id")["await_ms"].mean()
    per_node = per_node.fillna(0)
    per_node["share"] = per_node["stalled_s"] / per_node["held_s"]
    hits = per_node[per_node["share"] >= t["io_stalled_share"]]
    if not len(hits):
        return []
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
        drafts.append(Draft(
            pattern="io_starvation", scope_kind="node", scope_key=host, team_id=None,
            evidence={
                "held_gpu_s": round(float(r["held_s"]), 1),
                "stalled_gpu_s": round(float(r["stalled_s"]), 1),
                "stalled_share": round(float(r["share"]), 4),
                "storage_await_ms_while_stalled": round(float(r["await_ms"]), 1),
                "latents_on_network_storage": node_id in network,
                "gpu_hour_price": str(money(hourly)),
            },
            waste=waste, scope_cost=cost,
            recommendation=f"GPUs on {host} waited on storage for {float(r['share']):.0%} of the "
            f"time jobs held them (utilisation under {t['io_gpu_util_pct']:.0f}% while storage "
            f"await averaged {float(r['await_ms']):.0f} ms)"
            + (", with latents on network storage" if node_id in network else "")
            + ". Put latents on local NVMe (Gen4/5), prefetch inputs, write latents "
            "asynchronously.",
            action=fix_action(kind="local_nvme", scope_cost=cost, saved=waste,
                              usable_seconds=float(usable_by_node.get(node_id, 0.0)),
                              assumptions=["the stalled minutes run at the node's normal "
                                           "utilisation on fast local storage"]),
            thresholds={k: t[k] for k in ("io_gpu_util_pct", "io_await_ms",
                                          "io_storage_util_pct", "io_stalled_share")},
            severity=severity_of(float(r["share"]), t["io_stalled_share"]),
        ))  # fmt: skip
    return drafts
