"""Cheaper placement, per team workload (model, version, resolution): a video API offering
mapped as a replacement for the model (``PlacementMapping``: a person's call) costs at
least 20% less per usable second, attempts counted, and saves at least the configured
amount a month at the workload's measured volume. Unmapped offerings and GPU rows are
shown on the Placement page, never turned into findings here.

Waste: the window's share of the monthly saving. Fix: move the workload to the offering,
with today's and the offering's cost per usable second and the volume (docs/placement.md).
"""

from __future__ import annotations

from decimal import Decimal

from finops.accounts.models import Team
from finops.insights.context import Context
from finops.insights.detectors import Draft, fix_action, money, severity_of
from finops.placement.selectors import placement


def detect(ctx: Context) -> list[Draft]:
    t = ctx.thresholds
    drafts = []
    window_share = Decimal(repr(ctx.window_s)) / Decimal(30 * 86400)
    for w in placement(teams=Team.objects.all(), start=ctx.start, end=ctx.end, at=ctx.end):
        today = w.today.cost_per_usable_second
        mapped = [o for o in w.options_by_kind("api")
                  if o.recommendable and o.cost_per_usable_second is not None]  # fmt: skip
        if not today or not mapped:
            continue
        best = min(mapped, key=lambda o: o.cost_per_usable_second or 0)
        cps = best.cost_per_usable_second or Decimal(0)
        cheaper = float(1 - cps / today)
        saving = best.monthly_saving or Decimal(0)
        if cheaper < t["placement_cheaper_share"] or saving < Decimal(
            repr(t["placement_min_monthly_saving"])
        ):
            continue
        waste = min(saving * window_share, w.cost)
        drafts.append(Draft(
            pattern="placement", scope_kind="workload",
            scope_key=f"{w.team}:{w.model_name}:{w.model_version or '-'}:{w.resolution}",
            team_id=w.team_id,
            evidence={
                "model": w.model_name, "model_version": w.model_version,
                "resolution": w.resolution,
                "cost_per_usable_second_today": str(today),
                "alternative": best.label,
                "alternative_cost_per_usable_second": str(cps),
                "cheaper_share": round(cheaper, 4),
                "generated_seconds": round(w.generated_seconds, 1),
                "usable_seconds": round(w.usable_seconds, 1),
                "monthly_usable_seconds": round(w.monthly_usable_seconds, 1),
                "monthly_saving": str(money(saving)),
            },
            waste=waste, scope_cost=w.cost,
            recommendation=f"{w.model_name} at {w.resolution} costs ${today} per usable second "
            f"on the team's GPUs; {best.label}, mapped as its replacement, would cost ${cps} "
            f"({cheaper:.0%} less, about ${money(saving)} a month at this volume).",
            action=fix_action(kind="video_api", scope_cost=w.cost, saved=waste,
                              usable_seconds=w.usable_seconds, assumptions=best.assumptions,
                              to_offering=best.label, monthly_saving=str(money(saving))),
            thresholds={k: t[k] for k in ("placement_cheaper_share",
                                          "placement_min_monthly_saving")},
            severity=severity_of(cheaper, t["placement_cheaper_share"]),
        ))  # fmt: skip
    return drafts
