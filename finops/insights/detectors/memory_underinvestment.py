"""Memory underinvestment, per GPU model: busy time with memory at or above the pressure
fraction >= 20% while SM utilisation during pressure stays under 60% (the GPU waits on
memory, offloads or re-tiles), or OOM attempts >= 5% of attempts.

Waste: the OOM attempts' cost plus the pressured busy cost's unused share
(1 - utilisation during pressure). Fix: the next VRAM tier that fits the observed peak, at
its resolved price (the cheapest on-demand rate, else the model's default), or latent
caching, tiled VAE decode and fewer frames per segment."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pandas as pd
from django.db.models import F, Sum
from django.db.models.functions import Coalesce

from finops.fleet.models import GpuModel
from finops.insights.context import Context
from finops.insights.detectors import Draft, dec, fix_action, money, severity_of
from finops.insights.planning import predicted, shape_label, typical_shape
from finops.pricing.selectors import planner_prices
from finops.telemetry.models import GpuMinute

HEADROOM = 1.10  # the next tier must hold the peak with 10% to spare


def detect(ctx: Context) -> list[Draft]:
    t = ctx.thresholds
    hours, gpus, jobs = ctx.hours, ctx.gpus, ctx.jobs
    if not len(hours) or not len(gpus):
        return []
    h = hours.merge(gpus[["gpu_id", "gpu_model", "vram_bytes"]], on="gpu_id")
    h = h[h["gpu_model"].notna()]
    h = h.assign(util_p=h["util_mean_pct"].fillna(0) * h["mem_pressure_s"])
    # Utilisation during pressure from the pressured minutes themselves where they are kept:
    # an hour's mean mixes its pressured and its free minutes (40% under pressure and 87%
    # outside read as 64%), which understated the stalls.
    minutes = _pressured_minutes(ctx)
    if len(minutes):
        exact = h["gpu_id"].isin(minutes.index)
        h.loc[exact, "util_p"] = 0.0
        first = h[exact].groupby("gpu_id").head(1).index
        h.loc[first, "util_p"] = h.loc[first, "gpu_id"].map(minutes).to_numpy()
    by_model = h.groupby("gpu_model").agg(
        busy_s=("busy_s", "sum"), pressure_s=("mem_pressure_s", "sum"), util_p=("util_p", "sum"),
        mem_frac_max=("mem_frac_max", "max"), vram_bytes=("vram_bytes", "max"),
    )  # fmt: skip
    by_model = by_model[by_model["busy_s"] > 0]
    by_model["pressure_share"] = by_model["pressure_s"] / by_model["busy_s"]
    by_model["util_during_pressure"] = (by_model["util_p"] / by_model["pressure_s"]).where(
        by_model["pressure_s"] > 0
    )
    model_of_gpu = gpus.set_index("gpu_id")["gpu_model"]
    j = jobs.assign(gpu_model=jobs["first_gpu"].map(model_of_gpu))
    attempts = j.groupby("gpu_model")["job_id"].count()
    ooms = j[j["status"] == "oom"]
    oom_count = ooms.groupby("gpu_model")["job_id"].count()
    oom_cost = ooms.groupby("gpu_model")["cost"].sum()
    peak_job = j.groupby("gpu_model")["peak_vram_bytes"].max()
    usable = j.groupby("gpu_model")["usable_seconds"].sum()
    gpu_cost = ctx.ledger_gpu.merge(gpus[["gpu_id", "gpu_model"]], on="gpu_id")
    scope_cost = gpu_cost.groupby("gpu_model")["amount"].sum()
    busy_cost = gpu_cost[gpu_cost["component"] == "gpu"].groupby("gpu_model")["amount"].sum()
    hours_paid = (
        gpu_cost[gpu_cost["component"].isin(["gpu", "idle"])].groupby("gpu_model")["quantity"].sum()
    )
    catalog = {m.name: m for m in GpuModel.objects.all()}
    prices = planner_prices()
    drafts = []
    for model in sorted(set(by_model.index) | set(oom_count.index)):
        row = by_model.loc[model] if model in by_model.index else None
        share = float(row["pressure_share"]) if row is not None else 0.0
        util_p = row["util_during_pressure"] if row is not None else np.nan
        n_attempts = int(attempts.get(model, 0))
        oom_share = oom_count.get(model, 0) / n_attempts if n_attempts else 0.0
        pressured = share >= t["memory_pressure_share"] and (
            util_p != util_p or util_p < t["memory_pressure_util_pct"]
        )
        if not (pressured or oom_share >= t["memory_oom_share"]):
            continue
        cost = scope_cost.get(model, Decimal(0))
        lost = dec(share * (1 - (0.0 if util_p != util_p else util_p) / 100))
        waste = oom_cost.get(model, Decimal(0)) + busy_cost.get(model, Decimal(0)) * lost
        if row is not None and row["vram_bytes"] == row["vram_bytes"]:
            vram = int(row["vram_bytes"])
        else:
            vram = int(catalog[model].vram_bytes) if model in catalog else 0
        job_peak = peak_job.get(model)
        seen = row["mem_frac_max"] if row is not None else None
        peak = max(
            float(job_peak) if job_peak is not None and job_peak == job_peak else 0.0,
            float(seen) * vram if seen is not None and seen == seen else 0.0,
        )
        tier = _next_tier(catalog, prices, vram, peak)
        paid_hours = hours_paid.get(model, Decimal(0))
        current_price = (cost / paid_hours) if paid_hours else None
        saved, assumptions = waste, ["the OOM retries and the memory stalls go away"]
        details: dict[str, object] = {"current_gpu": model, "current_vram_gib": round(vram / 2**30)}
        shape = typical_shape(j[j["gpu_model"] == model])
        here = predicted(shape, model) if shape else None
        if tier is not None and current_price:
            name, tier_price, tier_vram = tier
            there = predicted(shape, name) if shape else None
            speed = Decimal(1)
            if here and there and here["seconds_per_clip"] and there["seconds_per_clip"]:
                # The planner's time for the jobs' own shape on each GPU.
                speed = dec(there["seconds_per_clip"] / here["seconds_per_clip"])
                assumptions.append(
                    f"the planner's time per clip for {shape_label(shape)}: "
                    f"{there['seconds_per_clip']:,.0f} s on {name} against "
                    f"{here['seconds_per_clip']:,.0f} s on {model}"
                )
                assumptions += [a for a in there["assumptions"] if a.startswith("MFU")]
            else:
                assumptions.append(f"the work runs as fast on {name} as on {model}, at its price")
            moved = (cost - waste) * (tier_price / current_price) * speed
            saved = cost - moved
            details.update({"to_gpu": name, "to_vram_gib": round(tier_vram / 2**30),
                            "to_price_per_gpu_hour": str(tier_price),
                            "current_price_per_gpu_hour": str(money(current_price))})  # fmt: skip
            if there:
                details["planned_to"] = there
        if here:
            details["planned_current"] = here
            details["planned_shape"] = {k: (v if isinstance(v, str) else int(v))
                                        for k, v in shape.items()} if shape else None  # fmt: skip
        fix = (
            f"Move these jobs to {tier[0]} ({round(tier[2] / 2**30)} GB), which holds the "
            f"observed peak of {peak / 1e9:.1f} GB"
            if tier
            else "No larger catalog GPU with a price fits the peak"
        ) + "; or cut the peak: latent caching, tiled VAE decode, fewer frames per segment."
        drafts.append(Draft(
            pattern="memory_underinvestment", scope_kind="gpu_model", scope_key=model,
            team_id=None,
            evidence={
                "memory_pressure_share_of_busy": round(share, 4),
                "util_during_pressure_pct": round(float(util_p), 1) if util_p == util_p else None,
                "attempts": n_attempts, "oom_attempts": int(oom_count.get(model, 0)),
                "oom_share": round(float(oom_share), 4),
                "oom_cost": str(money(oom_cost.get(model, Decimal(0)))),
                "peak_vram_bytes": int(peak), "vram_bytes": vram,
            },
            waste=waste, scope_cost=cost,
            recommendation=f"{model} GPUs spent {share:.0%} of their busy time at the memory "
            f"limit and {float(oom_share):.0%} of attempts ran out of memory. {fix}",
            action=fix_action(kind="vram_tier", scope_cost=cost, saved=max(saved, Decimal(0)),
                              usable_seconds=float(usable.get(model, 0.0)),
                              assumptions=assumptions, **details),
            thresholds={k: t[k] for k in ("memory_pressure_share", "memory_oom_share",
                                          "memory_pressure_util_pct")},
            severity=severity_of(max(share / t["memory_pressure_share"],
                                     oom_share / t["memory_oom_share"]), 1.0),
        ))  # fmt: skip
    return drafts


def _pressured_minutes(ctx: Context) -> pd.Series:
    """Per GPU: the sum of utilisation x pressured seconds over its pressured minutes."""
    rows = (
        GpuMinute.objects.filter(
            ts__gte=ctx.start, ts__lt=ctx.end, mem_pressure_s__gt=0, gpu__mig_parent__isnull=True
        )
        .values("gpu_id")
        .annotate(util_p=Sum(Coalesce(F("util_mean_pct"), 0.0) * F("mem_pressure_s")))
        .values_list("gpu_id", "util_p")
        .order_by()
    )
    return pd.Series(dict(rows), dtype=float)


def _next_tier(
    catalog: dict[str, GpuModel], prices: dict[str, tuple[Decimal, str]], vram: int, peak: float
) -> tuple[str, Decimal, int] | None:
    """The cheapest priced catalog GPU with more VRAM than ``vram`` that holds ``peak``."""
    fits = [
        (prices[name][0], m.vram_bytes, name)
        for name, m in catalog.items()
        if name in prices and m.vram_bytes and m.vram_bytes > vram
        and m.vram_bytes >= peak * HEADROOM
    ]  # fmt: skip
    if not fits:
        return None
    price, tier_vram, name = min(fits)
    return name, price, tier_vram
