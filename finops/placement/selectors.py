"""Where each team workload should run: today's measured cost per usable second against
every catalog GPU at every loaded rate (the planner's time for the workload's own shape)
and every video API offering at the workload's resolution tier, on one scale: money per
usable second, attempts counted (docs/placement.md).

A workload is a team's model, model version and resolution over the window. Its measured
figures come from the allocation report (the ledger's daily summaries): cost, generated
seconds (every attempt's frames / fps) and usable seconds; its shape (frames, steps, fps)
is the most common one of its jobs in the window.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import Count, Min, Q, QuerySet
from django.utils import timezone

from collectors.pricing.video_api import resolution_tier
from finops.accounts.models import Team
from finops.costing.selectors import AllocationQuery, allocation_report, output_seconds
from finops.jobs.models import RenderJob
from finops.placement.models import PlacementMapping
from finops.pricing.models import PriceRate, VideoApiPrice
from inference.pipeline import OFFLOAD_MODES, Setup, estimate, gpu_entries, pipeline_for_model

MONTH = timedelta(days=30)
MICRO = Decimal("0.000001")
CENT = Decimal("0.01")
# Setups tried in order for a GPU row: the first that fits is priced.
SETUPS = (frozenset(), frozenset({"model"}), frozenset(OFFLOAD_MODES))


@dataclass
class Option:
    kind: str  # "today", "gpu", "api"
    label: str
    cost_per_usable_second: Decimal | None
    monthly_cost: Decimal | None
    monthly_saving: Decimal | None
    recommendable: bool
    assumptions: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def saving_text(self) -> str:
        """The monthly saving as the page prints it: -$30.18 when it costs more."""
        if self.monthly_saving is None:
            return "-"
        sign = "-" if self.monthly_saving < 0 else ""
        return f"{sign}${abs(self.monthly_saving):,.2f}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "label": self.label,
            "cost_per_usable_second": _s(self.cost_per_usable_second),
            "monthly_cost": _s(self.monthly_cost),
            "monthly_saving": _s(self.monthly_saving),
            "recommendable": self.recommendable,
            "assumptions": self.assumptions,
            **self.details,
        }


@dataclass
class Workload:
    team: str
    team_id: int
    model_name: str
    model_version: str
    resolution: str
    frames: int | None
    steps: int | None
    fps: float | None
    cost: Decimal
    generated_seconds: float
    usable_seconds: float
    monthly_usable_seconds: float
    options: list[Option]

    @property
    def today(self) -> Option:
        return self.options_by_kind("today")[0]

    def options_by_kind(self, kind: str) -> list[Option]:
        return [o for o in self.options if o.kind == kind]

    def as_dict(self) -> dict[str, Any]:
        return {
            "team": self.team, "model": self.model_name, "model_version": self.model_version,
            "resolution": self.resolution, "frames": self.frames, "steps": self.steps,
            "cost": _s(self.cost), "generated_seconds": round(self.generated_seconds, 3),
            "usable_seconds": round(self.usable_seconds, 3),
            "usable_share": round(self.usable_seconds / self.generated_seconds, 4)
            if self.generated_seconds else None,
            "monthly_usable_seconds": round(self.monthly_usable_seconds, 1),
            "options": [o.as_dict() for o in self.options],
        }  # fmt: skip


def _s(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _shapes(teams: QuerySet[Team], start: datetime, end: datetime) -> dict[tuple[Any, ...], Any]:
    """(team slug, model, version, "WxH") -> the most common (frames, steps, fps)."""
    rows = (
        RenderJob.objects.filter(team__in=teams, started_at__gte=start, started_at__lt=end)
        .exclude(frames=None)
        .values_list("team__slug", "model_name", "model_version", "width", "height", "frames",
                     "steps", "fps")
        .annotate(n=Count("id"))
        .order_by("-n")
    )  # fmt: skip
    out: dict[tuple[Any, ...], Any] = {}
    for slug, model, version, width, height, frames, steps, fps, _ in rows:
        key = (slug, model, version, f"{width or 0}x{height or 0}")
        out.setdefault(key, (frames, steps, fps))
    return out


def _gpu_rates(at: datetime) -> list[tuple[str, str, Decimal]]:
    """(GPU model, pricing model, cheapest price per GPU-hour) of the rates valid at ``at``."""
    rows = (
        PriceRate.objects.filter(Q(valid_to__isnull=True) | Q(valid_to__gt=at), valid_from__lte=at,
                                 gpu_model__isnull=False)
        .values_list("gpu_model__name", "pricing_model")
        .annotate(price=Min("price_per_gpu_hour"))
        .order_by("gpu_model__name", "pricing_model")
    )  # fmt: skip
    return list(rows)


def _api_prices(at: datetime) -> list[VideoApiPrice]:
    return list(
        VideoApiPrice.objects.filter(Q(valid_to__isnull=True) | Q(valid_to__gt=at),
                                     valid_from__lte=at)
        .select_related("offering")
        .order_by("offering__provider", "offering__offering", "resolution_tier")
    )  # fmt: skip


def placement(
    *, teams: QuerySet[Team], start: datetime, end: datetime, at: datetime | None = None
) -> list[Workload]:
    """Every workload of ``teams`` in [start, end) with its options, cheapest first."""
    at = at or timezone.now()
    query = AllocationQuery(
        start=start, end=end, aggregate=("team", "model", "model_version", "resolution"),
        step="window", idle="separate", basis="allocation",
    )  # fmt: skip
    report = allocation_report(query=query, teams=teams, all_teams=False)
    rows = report["steps"][0]["rows"] if report["steps"] else []
    seconds = output_seconds(query=query, teams=teams)
    shapes = _shapes(teams, start, end)
    team_ids = dict(teams.values_list("slug", "id"))
    rates = _gpu_rates(at)
    prices = _api_prices(at)
    mappings = list(
        PlacementMapping.objects.values_list("model_name", "resolution", "offering_id", "team_id")
    )
    scale = MONTH / (end - start)
    out = []
    for row in rows:
        parts = row["name"].split(",")
        if len(parts) != 4 or parts[0] not in team_ids:
            continue  # idle and unallocated buckets
        slug, model, version, resolution = parts
        generated, usable = seconds.get(tuple(parts), (0.0, 0.0))
        if not usable:
            continue  # nothing usable yet: no cost per usable second to compare
        cost = Decimal(row["total_cost"])
        monthly_usable = usable * scale
        today_cps = (cost / Decimal(repr(usable))).quantize(MICRO)
        monthly_today = (today_cps * Decimal(repr(monthly_usable))).quantize(CENT)
        frames, steps, fps = shapes.get((slug, model, version, resolution), (None, None, None))
        attempts = Decimal(repr(generated)) / Decimal(repr(usable))
        options = [Option("today", "today (measured)", today_cps, monthly_today, Decimal(0), False,
                          [f"measured over the window: {generated:,.1f} s generated, "
                           f"{usable:,.1f} s usable"])]  # fmt: skip

        def priced(cps: Decimal, volume: float = monthly_usable,
                   today: Decimal = monthly_today) -> tuple[Decimal, Decimal]:  # fmt: skip
            monthly = (cps * Decimal(repr(volume))).quantize(CENT)
            return monthly, today - monthly

        options += _gpu_options(model, resolution, frames, steps, fps, attempts, rates, priced)
        mine = [(m, r, o) for m, r, o, t in mappings if t in (None, team_ids[slug])]
        options += _api_options(model, resolution, attempts, prices, mine, priced)
        options.sort(key=lambda o: (o.cost_per_usable_second is None,
                                    o.cost_per_usable_second or 0))  # fmt: skip
        out.append(Workload(slug, team_ids[slug], model, version, resolution, frames, steps, fps,
                            cost, generated, usable, monthly_usable, options))  # fmt: skip
    return out


def _gpu_options(model: str, resolution: str, frames: Any, steps: Any, fps: Any,
                 attempts: Decimal, rates: list[tuple[str, str, Decimal]],
                 priced: Any) -> list[Option]:  # fmt: skip
    pipeline = pipeline_for_model(model)
    try:
        width, height = (int(v) for v in resolution.split("x"))
    except ValueError:
        return []
    if pipeline is None or not frames or not steps or not fps:
        return []
    clip_seconds = Decimal(repr(frames / fps))
    entries = {e["name"]: e for e in gpu_entries()}
    out = []
    for gpu, pricing_model, price in rates:
        entry = entries.get(gpu)
        if entry is None or not entry.get("bf16_dense_tflops"):
            continue
        try:
            fitting = None
            for offload in SETUPS:
                est = estimate(pipeline, entry, height=height, width=width, frames=frames,
                               steps=steps, setup=Setup(offload=offload))  # fmt: skip
                if est.peak_bytes_per_gpu <= entry["vram_bytes"]:
                    fitting = (est, offload)
                    break
        except ValueError:  # a clip size the pipeline cannot take
            return []
        label = f"{gpu} {pricing_model} at ${price:.2f}/GPU-h"
        if fitting is None:
            note = (f"does not fit: {est.peak_bytes_per_gpu / 1e9:.1f} GB at its smallest setup "
                    f"on {entry['vram_bytes'] / 1e9:.1f} GB")  # fmt: skip
            details = {"gpu": gpu, "pricing_model": pricing_model, "fits": False}
            out.append(Option("gpu", label, None, None, None, False, [note], details))
            continue
        est, offload = fitting
        per_clip = Decimal(repr(est.seconds)) * price / 3600
        cps = (per_clip * attempts / clip_seconds).quantize(MICRO)
        monthly, saving = priced(cps)
        notes = [f"the planner's {est.seconds:,.0f} s a clip ({frames} frames, {steps} steps)"
                 + (f" with {', '.join(sorted(offload))} offload" if offload else ""),
                 f"{attempts:.2f} seconds generated per usable second, as measured"]  # fmt: skip
        notes += [a for a in est.assumptions if a.startswith("MFU")]
        out.append(Option("gpu", label, cps, monthly, saving, True, notes,
                          {"gpu": gpu, "pricing_model": pricing_model, "fits": True,
                           "price_per_gpu_hour": str(price),
                           "seconds_per_clip": round(est.seconds, 1)}))  # fmt: skip
    return out


def _api_options(model: str, resolution: str, attempts: Decimal, prices: list[VideoApiPrice],
                 mappings: list[tuple[str, str, int]], priced: Any) -> list[Option]:  # fmt: skip
    try:
        width, height = (int(v) for v in resolution.split("x"))
    except ValueError:
        return []
    tier = resolution_tier(width, height)
    mapped = {o for m, r, o in mappings if m == model and r in ("", resolution)}
    out = []
    for price in prices:
        if price.resolution_tier != tier or price.currency != "USD":
            continue
        is_mapped = price.offering_id in mapped
        cps = (price.price_per_second * attempts).quantize(MICRO)
        monthly, saving = priced(cps)
        notes = [f"${price.price_per_second}/generated second at {tier}"
                 + (" with audio" if price.audio_included else ""),
                 f"its outputs assumed to need as many attempts as the team's ({attempts:.2f} "
                 "generated seconds per usable second)",
                 "mapped as a replacement for this model" if is_mapped
                 else "for reference only: not mapped as a replacement for this model"]  # fmt: skip
        out.append(Option("api", f"{price.offering} ({tier})", cps, monthly, saving, is_mapped,
                          notes, {"offering_id": price.offering_id, "mapped": is_mapped,
                                  "price_per_second": str(price.price_per_second),
                                  "source": price.source}))  # fmt: skip
    return out
