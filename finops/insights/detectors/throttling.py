"""What thermal throttling and power capping share: throttled busy seconds by reason from
the GPU-hour rollups, the SM clock ratio while busy, and the lost throughput priced as
(1 - clock ratio) x the GPU's busy cost (the throttled share when no clock is reported)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd

from finops.insights.context import Context
from finops.insights.detectors import Draft, dec, fix_action, money, severity_of


def per_gpu(ctx: Context, reasons: list[str]) -> pd.DataFrame:
    """Per GPU: busy seconds, throttled seconds (the reasons' sum, at most busy), the
    busy-weighted clock ratio, the mean power; only GPUs that were busy."""
    hours = ctx.hours
    if not len(hours):
        return pd.DataFrame()
    h = hours.assign(
        throttled=np.minimum(hours[reasons].fillna(0).sum(axis=1), hours["busy_s"]),
        clock_w=hours["clock_ratio_mean"].fillna(0) * hours["busy_s"] * hours["clock_s"].gt(0),
        clock_busy=hours["busy_s"] * hours["clock_s"].gt(0),
        power_w_s=hours["power_mean_w"].fillna(0) * hours["power_s"],
    )
    g = h.groupby("gpu_id")[["busy_s", "throttled", "clock_w", "clock_busy", "power_w_s",
                            "power_s"]].sum()  # fmt: skip
    g = g[g["busy_s"] > 0]
    g["share"] = g["throttled"] / g["busy_s"]
    g["clock_ratio"] = (g["clock_w"] / g["clock_busy"]).where(g["clock_busy"] > 0)
    g["power_mean_w"] = (g["power_w_s"] / g["power_s"]).where(g["power_s"] > 0)
    return g.join(ctx.gpus.set_index("gpu_id"), how="left")


def drafts_for(
    ctx: Context, rows: pd.DataFrame, *, pattern: str, signal: dict[str, Any],
    thresholds: dict[str, float], what: str, fix: str, kind: str,
) -> list[Draft]:  # fmt: skip
    busy_cost = ctx.busy_cost_of_gpus()
    cost = ctx.cost_of_gpus(rows.index)
    gpu_node = ctx.gpus.set_index("gpu_id")["node_id"]
    usable = ctx.jobs.groupby("first_gpu")["usable_seconds"].sum()
    drafts = []
    for gpu_id, r in rows.iterrows():
        lost = (1 - r["clock_ratio"]) if r["clock_ratio"] == r["clock_ratio"] else r["share"]
        lost = min(max(float(lost), 0.0), 1.0)
        spent = busy_cost.get(gpu_id, Decimal(0))
        waste = spent * dec(lost)
        ratio = r["clock_ratio"]
        drafts.append(Draft(
            pattern=pattern, scope_kind="gpu", scope_key=r["uuid"], team_id=None,
            evidence={
                "node": r["hostname"], "gpu_model": r["gpu_model"],
                "busy_s": round(float(r["busy_s"]), 1),
                "throttled_s": round(float(r["throttled"]), 1),
                "throttled_share_of_busy": round(float(r["share"]), 4),
                "clock_ratio_while_busy": round(float(ratio), 4) if ratio == ratio else None,
                "power_mean_w": round(float(r["power_mean_w"]), 1)
                if r["power_mean_w"] == r["power_mean_w"] else None,
                "tdp_w": r["tdp_w"], "busy_cost": str(money(spent)),
                "lost_throughput_share": round(lost, 4), **signal.get(gpu_id, {}),
            },
            waste=waste, scope_cost=cost.get(gpu_id, Decimal(0)),
            recommendation=f"GPU {r['uuid']} on {r['hostname']} spent "
            f"{float(r['share']):.0%} of its busy time {what}"
            + (f" at {float(ratio):.0%} of its maximum SM clock" if ratio == ratio else "")
            + f". {fix}",
            action=fix_action(
                kind=kind, scope_cost=cost.get(gpu_id, Decimal(0)), saved=waste,
                usable_seconds=float(usable.get(gpu_id, 0.0)),
                assumptions=["throughput scales with the SM clock while busy",
                             "the same work at full clock takes (1 - lost share) of the time"],
                node_id=int(gpu_node.get(gpu_id, 0)),
            ),
            thresholds=thresholds,
            severity=severity_of(float(r["share"]), next(iter(thresholds.values()))),
        ))  # fmt: skip
    return drafts
