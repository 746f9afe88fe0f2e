"""Power capping: busy time with reasons 0x4 (software power cap) or 0x80 (power brake)
>= 10% with the power draw near the limit (the GPU model's TDP). Waste: the lost
throughput, (1 - clock ratio) x busy cost. Fix: the node's power budget or placement."""

from __future__ import annotations

from finops.insights.context import Context
from finops.insights.detectors import Draft
from finops.insights.detectors.throttling import drafts_for, per_gpu

REASONS = ["power_cap_s", "power_brake_s"]


def detect(ctx: Context) -> list[Draft]:
    t = ctx.thresholds
    rows = per_gpu(ctx, REASONS)
    if not len(rows):
        return []
    near = (rows["power_mean_w"] / rows["tdp_w"].astype(float)).where(rows["tdp_w"].notna())
    # Without a TDP in the catalog the reason bits alone decide.
    hits = rows[rows["share"].ge(t["power_share"]) & (near.isna() | near.ge(t["power_near_limit"]))]
    signal = {g: {"power_over_tdp": round(float(near[g]), 3) if near[g] == near[g] else None}
              for g in hits.index}  # fmt: skip
    return drafts_for(
        ctx, hits, pattern="power_capping", signal=signal,
        thresholds={"power_share": t["power_share"], "power_near_limit": t["power_near_limit"]},
        what="capped by power (reasons 0x4, 0x80)",
        fix="Raise the node's power budget if the PSUs and rack allow it, or spread the "
        "hottest jobs over nodes so each GPU stays under its limit.",
        kind="power_budget",
    )  # fmt: skip
