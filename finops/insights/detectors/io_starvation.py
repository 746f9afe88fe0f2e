"""I/O starvation, per node: GPU-minutes inside jobs whose utilisation dips below 30%
while the node's storage await exceeds 20 ms or its utilisation 90% (the GPUs wait on
storage), at least 10% of the held GPU time; latents on network storage are noted.

Waste: the stalled GPU time at the node's GPU-hour price. Fix: local NVMe Gen4/5 for
latents, prefetching inputs, asynchronous latent writes."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pandas as pd
from django.db import connection
from django.db.models import Avg, Exists, OuterRef, Q, Sum

from finops.fleet.models import StorageDevice, StorageKind
from finops.insights.context import Context
from finops.insights.detectors import Draft, dec, fix_action, money, severity_of
from finops.jobs.models import GpuAllocation
from finops.telemetry.models import GpuMinute, StorageSample

# PostgreSQL: each GPU's held time as one multirange, each slow (node, minute) once, and
# only the slow nodes' GPUs' minutes read, GPU by GPU on their (gpu, ts) index (LATERAL:
# not a scan of every GPU's minutes), joined to both by range lookup and hash instead of two
# index probes a minute.
_STALLED_SQL = """
WITH slow AS (
    SELECT DISTINCT d.node_id, date_trunc('minute', s.ts) AS minute
    FROM telemetry_storagesample s JOIN fleet_storagedevice d ON d.id = s.device_id
    WHERE s.ts >= %(start)s AND s.ts < %(end)s
      AND (s.await_ms > %(await_ms)s OR s.util_pct > %(storage_util)s)
), held AS (
    SELECT a.gpu_id, g.node_id, range_agg(tstzrange(a.start, a."end")) AS spans
    FROM jobs_gpuallocation a JOIN fleet_gpu g ON g.id = a.gpu_id
    WHERE g.mig_parent_id IS NULL AND g.node_id IN (SELECT node_id FROM slow)
      AND a.start < %(end)s AND (a."end" IS NULL OR a."end" > %(start)s)
    GROUP BY a.gpu_id, g.node_id
)
SELECT h.node_id, SUM(m.covered_s),
       SUM(m.covered_s) FILTER (WHERE m.util_mean_pct < %(gpu_util)s AND sl.minute IS NOT NULL)
FROM held h
CROSS JOIN LATERAL (
    SELECT ts, covered_s, util_mean_pct FROM telemetry_gpuminute
    WHERE gpu_id = h.gpu_id AND ts >= %(start)s AND ts < %(end)s
) m
LEFT JOIN slow sl ON sl.node_id = h.node_id AND sl.minute = m.ts
WHERE h.spans @> m.ts
GROUP BY h.node_id
"""


def _held_and_stalled(ctx: Context) -> list[tuple[int, float, float | None]]:
    """Per node: seconds of GPU-minutes held by a job, and of those the stalled ones (GPU
    utilisation low while a storage device of the node was slow in that minute)."""
    t = ctx.thresholds
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(_STALLED_SQL, {
                "start": ctx.start, "end": ctx.end, "await_ms": t["io_await_ms"],
                "storage_util": t["io_storage_util_pct"], "gpu_util": t["io_gpu_util_pct"],
            })  # fmt: skip
            return list(cursor.fetchall())
    # The same sums by index probes (the embedded SQLite demo).
    held = GpuAllocation.objects.filter(
        gpu_id=OuterRef("gpu_id"), start__lte=OuterRef("ts")
    ).filter(Q(end__isnull=True) | Q(end__gt=OuterRef("ts")))
    slow = StorageSample.objects.filter(
        device__node_id=OuterRef("gpu__node_id"),
        ts__gte=OuterRef("ts"),
        ts__lt=OuterRef("ts") + timedelta(minutes=1),
    ).filter(Q(await_ms__gt=t["io_await_ms"]) | Q(util_pct__gt=t["io_storage_util_pct"]))
    slow_nodes = list(
        StorageSample.objects.filter(ts__gte=ctx.start, ts__lt=ctx.end)
        .filter(Q(await_ms__gt=t["io_await_ms"]) | Q(util_pct__gt=t["io_storage_util_pct"]))
        .values_list("device__node_id", flat=True)
        .distinct()
    )
    minutes = GpuMinute.objects.filter(
        ts__gte=ctx.start,
        ts__lt=ctx.end,
        gpu__mig_parent__isnull=True,
        gpu__node_id__in=slow_nodes,
    ).filter(Exists(held))
    return list(
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


def detect(ctx: Context) -> list[Draft]:
    t = ctx.thresholds
    rows = _held_and_stalled(ctx)
    per_node = pd.DataFrame.from_records(rows, columns=["node_id", "held_s", "stalled_s"])
    if not len(per_node):
        return []
    per_node = per_node.set_index("node_id").astype(float).fillna(0.0)
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
