"""Thermal throttling: busy time with reasons 0x8 (hardware slowdown), 0x20 (software
thermal) or 0x40 (hardware thermal) >= 5%, or the SM clock below 85% of its maximum while
busy without a power cap to explain it. Waste: the lost throughput, (1 - clock ratio) x
busy cost. Fix: airflow and cooling, a lower power limit, staggering jobs."""

from __future__ import annotations

from finops.insights.context import Context
from finops.insights.detectors import Draft
from finops.insights.detectors.throttling import drafts_for, per_gpu

REASONS = ["hw_slowdown_s", "sw_thermal_s", "hw_thermal_s"]


def detect(ctx: Context) -> list[Draft]:
    t = ctx.thresholds
    rows = per_gpu(ctx, REASONS)
    if not len(rows):
        return []
    power = per_gpu(ctx, ["power_cap_s", "power_brake_s"])["share"].reindex(rows.index)
    slow = rows["clock_ratio"].lt(t["thermal_clock_ratio"]) & power.fillna(0).lt(t["power_share"])
    hits = rows[rows["share"].ge(t["thermal_share"]) | (slow & rows["throttled"].gt(0))]
    return drafts_for(
        ctx, hits, pattern="thermal_throttling", signal={},
        thresholds={"thermal_share": t["thermal_share"],
                    "thermal_clock_ratio": t["thermal_clock_ratio"]},
        what="throttled for heat (reasons 0x8, 0x20, 0x40)",
        fix="Check airflow and inlet temperature, clean filters, lower the power limit a "
        "little (throughput per watt rises), and stagger jobs on neighbouring GPUs.",
        kind="cooling",
    )  # fmt: skip
