"""A simulated studio with known faults, written through the same services as real data.

Nodes are registered (``node_register``), prices loaded (``price_offers_load``), jobs
reported in bulk as a farm sends them (``jobs_import_batch``, behind ``POST
/api/v1/jobs/bulk``), one GPU reading a minute sent as the minutes a host agent computes
from it (or as raw samples, ``telemetry="samples"``) and storage samples stored through
the ingest path, then costed. Every name says "sim": sites, nodes, teams (named
"… (simulated)"), price SKUs and the job source, so the data is labelled wherever a person
sees it, and ``studio_clear`` removes exactly those rows.

Faults, one per failure pattern, each with a decoy just under its threshold (so a detector
that fires too easily is caught); ``GroundTruth`` lists the (pattern, scope kind, scope
key) each injected fault must produce.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from collectors.pricing.offers import PriceOffer
from collectors.records import GpuSample, StorageSample
from collectors.rollups import THROTTLE_BITS
from finops.accounts.models import Role, Team
from finops.accounts.services import membership_set
from finops.costing.engine import ledger_recompute
from finops.costing.models import (
    ClipDay,
    DirtyWindow,
    FunnelHour,
    LedgerDay,
    LedgerDimensionDay,
    LedgerEntry,
    LedgerPrice,
    LedgerTeamDay,
    OutputDay,
)
from finops.fleet.models import Node, Site
from finops.fleet.services import GpuRegistration, StorageRegistration, node_register
from finops.insights.models import Finding
from finops.jobs.models import Clip, JobStatus, RenderJob
from finops.pricing.models import PriceRate, VideoApiOffering
from finops.pricing.services import price_offers_load
from finops.telemetry.ingest import (
    gpu_minute_columns_store,
    gpu_samples_store,
    storage_samples_store,
)
from finops.telemetry.models import RollupBacklog
from finops.telemetry.rollups import rollups_recompute

PREFIX = "sim-"
TELEMETRY_MODES = ("minutes", "samples")
SOURCE = "sim-farm"
FAULTS = (
    "idle_capacity",
    "regeneration_waste",
    "thermal_throttling",
    "power_capping",
    "memory_underinvestment",
    "premature_horizontal_scaling",
    "io_starvation",
    "model_cost_regression",
    "placement",
    "idle_held",
)
# Faults whose recommended fix ``apply_fixes_at`` applies (power capping and placement are
# left as they are: a power limit is a choice, a move to a video API leaves the ledger).
FIXABLE = (
    "memory_underinvestment",
    "premature_horizontal_scaling",
    "thermal_throttling",
    "io_starvation",
    "regeneration_waste",
    "idle_capacity",
    "model_cost_regression",
)
# The regenerating team's usable share, and after seed locking: the attempt rate the
# regeneration fix is priced at (INSIGHTS_THRESHOLDS regen_target_attempts).
REGEN_USABLE = 0.3
# Seed locking brings the team to 1.3 attempts a usable clip: under the 1.4 the fix is priced
# at (regen_target_attempts), as a team that acts on it would aim.
REGEN_FIXED_USABLE = 1 / 1.3
# (GPU model, reported name, VRAM GiB, interconnect, price per GPU-hour, TDP W)
TIERS = [
    ("L4", "NVIDIA L4", 24, "pcie", Decimal("0.80"), 72),
    ("L40S", "NVIDIA L40S", 48, "pcie", Decimal("1.90"), 350),
    ("H100 SXM", "NVIDIA H100 80GB HBM3", 80, "nvlink", Decimal("4.00"), 700),
    ("H200", "NVIDIA H200", 141, "nvlink", Decimal("5.00"), 700),
]
TEAMS = [
    ("sim-studio-a", "Studio A (simulated)"),
    ("sim-studio-b", "Studio B (simulated)"),
    ("sim-studio-c", "Studio C (simulated)"),
]
# Workloads: model, version, resolution, minutes per clip on one GPU (from the planner's
# shapes: Wan 1.3B and 14B, a HunyuanVideo-size model), frames, steps.
WORKLOADS = [
    ("wan2.1-t2v-1.3b", "2.1", (832, 480), 8),
    ("wan2.1-t2v-14b", "2.1", (1280, 720), 25),
    ("hunyuan-video", "1.0", (1280, 720), 30),
]


@dataclass
class GroundTruth:
    faults: list[dict[str, str]] = field(default_factory=list)
    decoys: list[dict[str, str]] = field(default_factory=list)
    start: str = ""
    end: str = ""
    fixes_at: str | None = None  # the instant the fixes were applied, when they were
    fixed: list[str] = field(default_factory=list)  # the patterns whose fix was applied

    def add(self, pattern: str, kind: str, key: str, *, decoy: bool = False) -> None:
        (self.decoys if decoy else self.faults).append(
            {"pattern": pattern, "scope_kind": kind, "scope_key": key}
        )


@dataclass
class _Gpu:
    uuid: str
    host: str
    tier: tuple[Any, ...]
    # minute-level overrides set by faults
    thermal_share: float = 0.0
    thermal_clock: float = 1.0
    power_share: float = 0.0
    power_clock: float = 1.0
    pressure_share: float = 0.0
    pressure_util: float = 85.0
    busy_share: float = 0.9  # share of the day jobs hold it
    stalled_share: float = 0.0  # held minutes waiting on (network) storage
    energy_mj: int = 10**9  # the GPU's energy counter at the next reading
    # minutes from the simulation's start: the GPU reports [live_from, live_until)
    live_from: int = 0
    live_until: int | None = None
    # from ``fix_at`` on (a minute), these fields take these values (a fix applied)
    fix_at: int | None = None
    after: dict[str, float] = field(default_factory=dict)
    # (first minute, last minute + 1, memory share) with memory held and nothing computed
    idle_held: list[tuple[int, int, float]] = field(default_factory=list)
    # job-generation events: (minute, kind) — "stall" (a job hangs after its work),
    # "orphan" (a process outlives its job), "pause" (a short pause between steps)
    events: list[tuple[int, str]] = field(default_factory=list)
    slowdown: float = 1.0  # job length multiplier before ``fix_at`` (memory stalls)
    fresh: bool = False  # added by a fix (the next tier's node)

    def share(self, name: str, minute: float) -> float:
        if self.fix_at is not None and minute >= self.fix_at and name in self.after:
            return self.after[name]
        return float(getattr(self, name))


@dataclass
class Readings:
    """One GPU's readings, one at the start of each minute of a chunk."""

    util: np.ndarray
    mem_used: np.ndarray
    vram: int
    power: np.ndarray
    clock_mhz: np.ndarray
    clock_max_mhz: int
    reasons: np.ndarray
    energy_mj: np.ndarray

    def samples(self, uuid: str, start: datetime) -> list[GpuSample]:
        """The readings as the raw samples an agent sends."""
        return [
            GpuSample(
                gpu_uuid=uuid,
                ts=start + timedelta(minutes=m),
                sm_util_pct=util,
                mem_used_bytes=used,
                mem_total_bytes=self.vram,
                power_w=power,
                sm_clock_mhz=clock,
                sm_clock_max_mhz=self.clock_max_mhz,
                clocks_event_reasons=reasons,
                energy_mj=energy,
            )
            for m, (util, used, power, clock, reasons, energy) in enumerate(
                zip(
                    self.util.tolist(),
                    self.mem_used.tolist(),
                    self.power.tolist(),
                    self.clock_mhz.tolist(),
                    self.reasons.tolist(),
                    self.energy_mj.tolist(),
                    strict=True,
                )
            )
        ]


def simulated_minutes(
    r: Readings, *, gpu_id: int, start_s: int, last: bool
) -> dict[str, np.ndarray]:
    """The minute rows the rollup rules (docs/telemetry.md) give for readings taken at the
    start of every minute: each reading stands for its whole minute, and its energy is the
    counter's increase to the next reading (none after the final reading of the series,
    ``last``). ``tests/telemetry/test_edge_equivalence.py`` holds them equal to the server's
    rollup of the same readings stored as samples."""
    n = len(r.util)
    whole = np.full(n, 60.0)
    busy = r.util > 0
    mem_frac = r.mem_used / r.vram
    pressure = busy & (mem_frac >= settings.TELEMETRY_MEMORY_PRESSURE_FRACTION)
    increase = np.diff(
        r.energy_mj, append=r.energy_mj[-1] + (r.power[-1] * 60_000).astype(np.int64)
    )
    energy_j = increase / 1000.0
    if last:
        energy_j[-1] = np.nan
    nothing = np.full(n, np.nan)
    return {
        "gpu_id": np.full(n, gpu_id, dtype=np.int64),
        "ts": start_s + 60 * np.arange(n, dtype=np.int64),
        "samples": np.ones(n, dtype=np.int64),
        "covered_s": whole,
        "busy_s": 60.0 * busy,
        "util_mean_pct": r.util,
        "util_max_pct": r.util,
        "mem_frac_mean": mem_frac,
        "mem_frac_max": mem_frac,
        "mem_pressure_s": 60.0 * pressure,
        **{name: 60.0 * ((r.reasons & bit) != 0) for name, bit in THROTTLE_BITS.items()},
        "clock_ratio_mean": r.clock_mhz / r.clock_max_mhz,
        "power_mean_w": r.power.astype(float),
        "temp_max_c": nothing,
        "energy_j": energy_j,
        "pcie_tx_bytes": nothing,
        "pcie_rx_bytes": nothing,
        "util_s": whole,
        "mem_s": whole,
        "clock_s": whole,
        "power_s": whole,
    }


PERSONA = f"{PREFIX}manager"


def persona_ensure() -> str | None:
    """A manager of the simulated studio A (``sim-manager``), to look at the dashboard as a
    team-scoped person does; returns its generated password when created, else None."""
    users = get_user_model().objects
    team = Team.objects.filter(slug=TEAMS[0][0]).first()
    if team is None or users.filter(username=PERSONA).exists():
        return None
    password = secrets.token_urlsafe(12)
    user = users.create_user(
        username=PERSONA, email="manager@sim-studio-a.invalid", password=password
    )
    membership_set(user=user, team=team, role=Role.MANAGER)
    return password


def studio_clear() -> dict[str, int]:
    """Remove every simulated row (and only those)."""
    with transaction.atomic():
        nodes = list(Node.objects.filter(hostname__startswith=PREFIX).values_list("id", flat=True))
        teams = list(Team.objects.filter(slug__startswith=PREFIX).values_list("id", flat=True))
        counts = {
            "ledger": LedgerEntry.objects.filter(node_id__in=nodes).delete()[0]
            + LedgerEntry.objects.filter(team_id__in=teams).delete()[0],
            "findings": Finding.objects.filter(team_id__in=teams).delete()[0]
            + Finding.objects.filter(scope_key__startswith=PREFIX).delete()[0]
            + Finding.objects.filter(scope_key__startswith=f"GPU-{PREFIX}").delete()[0],
        }
        LedgerPrice.objects.filter(node_id__in=nodes).delete()
        days = list(LedgerDay.objects.filter(node_id__in=nodes).values_list("day", flat=True)
                    .distinct().order_by())  # fmt: skip
        LedgerDay.objects.filter(node_id__in=nodes).delete()
        # Summaries without a node hold the simulated fleet's idle with any real fleet's:
        # those days' rows go, and the days are marked for the costing beat to rebuild.
        simulated_or_fleet = Q(team_id__in=teams) | Q(team__isnull=True)
        for model in (LedgerTeamDay, LedgerDimensionDay):
            model.objects.filter(simulated_or_fleet, day__in=days).delete()
        for day in days:
            FunnelHour.objects.filter(simulated_or_fleet, hour__gte=day,
                                      hour__lt=day + timedelta(days=1)).delete()  # fmt: skip
        DirtyWindow.objects.bulk_create(
            [DirtyWindow(window_start=day) for day in days], ignore_conflicts=True
        )
        for model in (OutputDay, ClipDay):
            model.objects.filter(team_id__in=teams).delete()
        counts["jobs"] = RenderJob.objects.filter(source=SOURCE).delete()[0]
        Clip.objects.filter(team_id__in=teams).delete()
        counts["fleet rows"] = Node.objects.filter(id__in=nodes).delete()[0]
        counts["teams"] = Team.objects.filter(id__in=teams).delete()[0]
        counts["sites"] = Site.objects.filter(slug__startswith=PREFIX).delete()[0]
        counts["personas"] = (
            get_user_model().objects.filter(username__startswith=PREFIX).delete()[0]
        )
        counts["prices"] = PriceRate.objects.filter(sku__startswith=PREFIX).delete()[0]
        counts["video API offerings"] = VideoApiOffering.objects.filter(
            provider__startswith=PREFIX
        ).delete()[0]
    return counts


def studio_simulate(
    *,
    days: int,
    gpus: int,
    seed: int,
    faults: list[str] | None = None,
    end: datetime | None = None,
    progress: Callable[[str], None] | None = None,
    telemetry: str = "minutes",
    apply_fixes_at: int | None = None,
) -> GroundTruth:
    """Write ``days`` of a ``gpus``-GPU studio ending at ``end`` (the last whole hour).

    ``telemetry``: "minutes" sends each GPU's minutes as a host agent computes them (the
    bulk minute store; fast at fleet size), "samples" its raw readings (the ingest path,
    rolled up here).

    ``apply_fixes_at``: from the start of this day (1 to days - 1) each injected fault's
    recommended fix is applied (``FIXABLE``): the memory-starved L4 work moves to a new
    L40S node per L4 node (as fast as the planner predicts, no OOMs, no stalls), the
    over-split clips run one GPU each, the throttled GPUs are cooled, latents move to local
    NVMe, the regenerating team locks seeds (to the attempt rate the fix is priced at), the
    idle node's idle GPUs are released and its work packed on the rest, and the regressed
    model version is rolled back (it came 12 hours before the fixes)."""
    if telemetry not in TELEMETRY_MODES:
        raise ValueError(
            f"telemetry must be one of {', '.join(TELEMETRY_MODES)}, got {telemetry!r}"
        )
    faults = list(FAULTS) if faults is None else faults
    unknown = sorted(set(faults) - set(FAULTS))
    if unknown:
        raise ValueError(f"unknown faults {', '.join(unknown)}; use {', '.join(FAULTS)}")
    if gpus < 64:
        raise ValueError("a simulated studio needs at least 64 GPUs (8 nodes of 8, two per tier)")
    if apply_fixes_at is not None and not 1 <= apply_fixes_at < days:
        raise ValueError(
            f"apply_fixes_at must be a day from 1 to {days - 1} (the days before it raise the "
            f"findings, the days from it show the fixes), got {apply_fixes_at}"
        )
    say = progress or (lambda _: None)
    rng = random.Random(seed)  # noqa: S311 - a simulation, not a secret
    end = (end or timezone.now()).replace(minute=0, second=0, microsecond=0)
    start = end - timedelta(days=days)
    truth = GroundTruth(start=start.isoformat(), end=end.isoformat())
    span_min = days * 1440
    fix_min = apply_fixes_at * 1440 if apply_fixes_at is not None else None
    if fix_min is not None:
        truth.fixes_at = (start + timedelta(minutes=fix_min)).isoformat()
        truth.fixed = [f for f in FIXABLE if f in faults] + (
            ["idle_held"] if "idle_held" in faults else []
        )
    teams = {
        slug: Team.objects.get_or_create(slug=slug, defaults={"name": name})[0]
        for slug, name in TEAMS
    }
    _prices(start)
    fleet = _fleet(gpus, faults, truth, span_min=span_min, fix_min=fix_min)
    say(f"{len(fleet)} GPUs on {len({g.host for g in fleet})} nodes registered")
    jobs = _jobs(fleet, teams, start, end, rng, faults, truth, fix_min=fix_min)
    say(f"{jobs} jobs reported")
    _video_apis(start, teams, faults, truth)
    day = start
    while day < end:
        chunk_end = min(day + timedelta(days=1), end)
        _telemetry(fleet, day, chunk_end, rng, last=chunk_end >= end, mode=telemetry,
                   origin=start)  # fmt: skip
        say(f"telemetry {day:%Y-%m-%d} written")
        day = chunk_end
    if telemetry == "samples":
        rollups_recompute(start=start, end=end)
    # The rollups above cover what ingest queued for late samples.
    RollupBacklog.objects.filter(
        start__gte=start - timedelta(minutes=5), end__lte=end + timedelta(minutes=5)
    ).delete()
    ledger_recompute(start=start, end=end)
    DirtyWindow.objects.filter(window_start__gte=start, window_start__lt=end).delete()
    _analyze()
    say("rolled up and costed")
    return truth


def _analyze() -> None:
    """Planner statistics for the tables just bulk-loaded, as after any bulk load: before
    autovacuum gets to them the detectors' joins were planned blind (the I/O detector's
    query took 6 minutes over 14 fresh days, 1.8 s once analysed)."""
    from django.db import connection

    from finops.costing.models import LedgerEntry
    from finops.jobs.models import GpuAllocation
    from finops.telemetry.models import GpuHour, GpuMinute, StorageSample

    if connection.vendor != "postgresql":
        return
    models = (GpuMinute, GpuHour, StorageSample, RenderJob, GpuAllocation, LedgerEntry)
    with connection.cursor() as cursor:
        for model in models:
            cursor.execute(f"ANALYZE {connection.ops.quote_name(model._meta.db_table)}")


def _prices(start: datetime) -> None:
    offers = [
        PriceOffer(
            provider="other",
            sku=f"{PREFIX}{name.lower().replace(' ', '-')}x8",
            region="",
            pricing_model="on-demand",
            gpu_model=name,
            gpus_per_unit=8,
            price_per_unit_hour=price * 8,
            currency="USD",
            valid_from=start - timedelta(days=1),
            raw_reference={"line": i + 2},
        )
        for i, (name, _, _, _, price, _) in enumerate(TIERS)
    ]
    offers.append(
        PriceOffer(
            provider="other",
            sku=f"{PREFIX}nvme",
            region="",
            pricing_model="on-demand",
            gpu_model="",
            gpus_per_unit=1,
            price_per_unit_hour=Decimal(0),
            currency="USD",
            storage_per_gb_month=Decimal("0.08"),
            valid_from=start - timedelta(days=1),
            raw_reference={"line": 99},
        )
    )
    price_offers_load(offers=offers, source="csv", history=True)


def _register(host: str, tier: tuple[Any, ...], *, network: bool) -> None:
    node_register(
        hostname=host,
        site=f"{PREFIX}cloud",
        provider="other",
        instance_type=f"{PREFIX}{tier[0].lower().replace(' ', '-')}x8",
        pricing_model="on-demand",
        interconnect=tier[3],
        gpus=[
            GpuRegistration(
                uuid=f"GPU-{host}-{i}", index=i, model=tier[1], mem_total_bytes=tier[2] * 2**30
            )
            for i in range(8)
        ],
        storage=[
            StorageRegistration(
                name="nvme0n1",
                kind="network" if network else "local-nvme",
                volume_type=f"{PREFIX}nvme",
                capacity_bytes=4 * 10**12,
            )
        ],
    )


def _fleet(
    gpus: int, faults: list[str], truth: GroundTruth, *, span_min: int, fix_min: int | None
) -> list[_Gpu]:
    nodes = max(gpus // 8, 4)
    fleet: list[_Gpu] = []
    for n in range(nodes):
        tier = TIERS[n % len(TIERS)]
        host = f"{PREFIX}{tier[0].lower().replace(' ', '-')}-{n:03d}"
        # An L40S node reading latents from network storage (the I/O fault).
        _register(host, tier, network=n == 1 and "io_starvation" in faults)
        fleet += [_Gpu(f"GPU-{host}-{i}", host, tier) for i in range(8)]
    fixing = fix_min is not None
    by_host: dict[str, list[_Gpu]] = {}
    for g in fleet:
        by_host.setdefault(g.host, []).append(g)
    hosts = list(by_host)

    # Hosts by tier position: 0 L4, 1 L40S, 2 H100, 3 H200, then again.
    def fix(g: _Gpu, **after: float) -> None:
        if fixing:
            g.fix_at, g.after = fix_min, {**g.after, **after}

    if "idle_capacity" in faults:
        for i, g in enumerate(by_host[hosts[7]]):
            g.busy_share = 0.45  # 55% of paid time idle
            if fixing and i >= 4:  # the fix: release 4 of 8, pack the work on the rest
                g.live_until = fix_min
            fix(g, busy_share=0.9)
        for g in by_host[hosts[4]]:
            g.busy_share = 0.78  # decoy: about 22% idle
        truth.add("idle_capacity", "node", hosts[4], decoy=True)
        truth.add("idle_capacity", "node", hosts[7])
    if "thermal_throttling" in faults:
        hot, warm = by_host[hosts[2]][0], by_host[hosts[2]][1]
        hot.thermal_share, hot.thermal_clock = 0.20, 0.70
        warm.thermal_share, warm.thermal_clock = 0.03, 0.97  # decoy
        fix(hot, thermal_share=0.0)  # cooled
        fix(warm, thermal_share=0.0)
        truth.add("thermal_throttling", "gpu", hot.uuid)
        truth.add("thermal_throttling", "gpu", warm.uuid, decoy=True)
    if "idle_held" in faults:
        # Ten hours before the fixes (or the end): a job that hangs after its work, holding
        # half the VRAM for 90 minutes; a process that outlives its job, holding 30% for two
        # hours with no job; the decoys: a 9-minute pause between steps inside a job, and
        # every busy GPU, which holds memory while it computes.
        anchor = (fix_min if fix_min is not None else span_min) - 600
        stalled, orphan, pausing = by_host[hosts[2]][4:7]
        stalled.events.append((anchor, "stall"))
        orphan.events.append((anchor, "orphan"))
        pausing.events.append((anchor, "pause"))
        truth.add("idle_held", "gpu", stalled.uuid)
        truth.add("idle_held", "gpu", orphan.uuid)
        truth.add("idle_held", "gpu", pausing.uuid, decoy=True)
        truth.add("idle_held", "gpu", by_host[hosts[2]][7].uuid, decoy=True)
    if "power_capping" in faults:
        capped, near = by_host[hosts[3]][0], by_host[hosts[3]][1]
        capped.power_share, capped.power_clock = 0.25, 0.85
        near.power_share, near.power_clock = 0.07, 0.97  # decoy
        truth.add("power_capping", "gpu", capped.uuid)
        truth.add("power_capping", "gpu", near.uuid, decoy=True)
    if "memory_underinvestment" in faults:
        for n, host in enumerate(hosts[0::4]):  # every L4
            for g in by_host[host]:
                g.pressure_share, g.pressure_util = 0.45, 40.0
                # A GPU waiting on memory at 40% utilisation takes longer: the share of its
                # busy time the detector counts lost (pressure share x (1 - utilisation)).
                g.slowdown = 1 / (1 - g.pressure_share * (1 - g.pressure_util / 100))
                if fixing:
                    g.live_until = fix_min
            if fixing:  # the fix: the next tier (L40S), one node per L4 node
                tier = TIERS[1]
                fresh = f"{PREFIX}{tier[0].lower()}-{100 + n:03d}"
                _register(fresh, tier, network=False)
                # The same work moves: each new GPU as busy as the one it replaces.
                fleet += [_Gpu(f"GPU-{fresh}-{i}", fresh, tier, live_from=fix_min or 0,
                               fresh=True, busy_share=g.busy_share)
                          for i, g in enumerate(by_host[host])]  # fmt: skip
        for g in by_host[hosts[1]]:  # decoy: L40S at 12% pressure
            g.pressure_share, g.pressure_util = 0.12, 80.0
        truth.add("memory_underinvestment", "gpu_model", "L4")
    if "io_starvation" in faults:
        for g in by_host[hosts[1]]:
            g.stalled_share = 0.30
            fix(g, stalled_share=0.0)  # latents on local NVMe
        for g in by_host[hosts[2]]:
            g.stalled_share = 0.04  # decoy: local NVMe with a few slow minutes
        truth.add("io_starvation", "node", hosts[1])
        truth.add("io_starvation", "node", hosts[2], decoy=True)
    return fleet


def _jobs(
    fleet: list[_Gpu],
    teams: dict[str, Team],
    start: datetime,
    end: datetime,
    rng: random.Random,
    faults: list[str],
    truth: GroundTruth,
    *,
    fix_min: int | None = None,
) -> int:
    count = 0
    fixed = float(fix_min) if fix_min is not None else float("inf")
    team_slugs = list(teams)
    span_min = int((end - start).total_seconds() // 60)
    by_host: dict[str, list[_Gpu]] = {}
    for g in fleet:
        by_host.setdefault(g.host, []).append(g)
    hosts = list(by_host)
    scaling_host = hosts[5 % len(hosts)]  # an L40S node over PCIe
    decoy_host = hosts[6 % len(hosts)]  # an H100 node over NVLink
    clip = 0
    # Job events as a render farm sends them to POST /api/v1/jobs/bulk, through the same
    # validation and service (finops.api.job_views.jobs_import_batch).
    events: list[dict[str, Any]] = []

    def report(
        team: Team,
        gpus: list[_Gpu],
        a: float,
        b: float,
        model: tuple[Any, ...],
        *,
        version: str | None = None,
        usable: bool = True,
        status: str = JobStatus.SUCCEEDED,
        peak: int | None = None,
    ) -> None:
        nonlocal count
        name, default_version, (w, h), _ = model
        began, ended = _iso(start + timedelta(minutes=a)), _iso(start + timedelta(minutes=b))
        events.append({
            "source": SOURCE, "external_id": f"job-{count}", "team": team.slug,
            "status": status, "clip_id": f"{team.slug}-clip-{clip}",
            "project": rng.choice(["trailer", "ads", "series"]), "model": name,
            "model_version": version or default_version, "width": w, "height": h,
            "frames": 81, "fps": 16.0, "steps": 50,
            "usable": usable if status == JobStatus.SUCCEEDED else False,
            "peak_vram_bytes": peak, "queued_at": began, "started_at": began,
            "finished_at": ended,
            "gpus": [{"uuid": g.uuid, "start": began, "end": ended} for g in gpus],
        })  # fmt: skip
        count += 1

    # The regressed version arrives halfway through, or 12 hours before the fixes (which
    # roll it back); the decoy version stays.
    switch = span_min / 2 if fix_min is None else fix_min - 720
    # The next tier's time for the memory-starved work, as the planner predicts it.
    speed = _planned_speed(WORKLOADS[0], TIERS[1][0], TIERS[0][0]) if fix_min is not None else 1
    for host, gpus in by_host.items():
        if host in (scaling_host, decoy_host):
            continue
        for g in gpus:
            cursor = g.live_from + rng.uniform(0, 10)
            stop = span_min if g.live_until is None else min(g.live_until, span_min)
            tier_index = TIERS.index(g.tier)
            model = WORKLOADS[min(tier_index, 1)] if g.tier[0] != "H200" else WORKLOADS[2]
            if g.tier[0] == "L4" or g.fresh:
                model = WORKLOADS[0]
            planned = sorted(g.events)
            while cursor < stop - 5:
                length = model[3] * rng.uniform(0.8, 1.2) * (speed if g.fresh else g.slowdown)
                if g.live_until is not None and cursor + 1.6 * length > stop:
                    break  # a GPU released by a fix takes no job it cannot finish
                b = min(cursor + length, stop)
                team_slug = rng.choice(team_slugs)
                team = teams[team_slug]
                regenerating = team_slug == "sim-studio-c" and "regeneration_waste" in faults
                # studio-b is the regeneration decoy: 1.4 attempts a clip, 28% of its cost.
                decoy_team = team_slug == "sim-studio-b" and "regeneration_waste" in faults
                regen_p = REGEN_USABLE if cursor < fixed else REGEN_FIXED_USABLE
                usable_p = regen_p if regenerating else 0.72 if decoy_team else 0.9
                oom = g.share("pressure_share", cursor) > 0.3 and rng.random() < 0.10
                version = None
                status = JobStatus.OOM if oom else JobStatus.SUCCEEDED
                if (
                    "model_cost_regression" in faults
                    and team_slug == "sim-studio-a"
                    and model is WORKLOADS[0]
                ):  # the decoy: Wan 1.3B 2.2 takes 10% longer (and stays)
                    late = cursor > switch
                    version = "2.2" if late else "2.1"
                    if late:
                        b = min(cursor + length * 1.1, stop)
                if (
                    "model_cost_regression" in faults
                    and team_slug == "sim-studio-a"
                    and model is WORKLOADS[1]
                ):
                    late = switch < cursor < fixed
                    version = "2.2" if late else "2.1"
                    if late:
                        b = min(cursor + length * 1.6, stop)  # 2.2 takes 60% longer
                extra = 0.0
                if planned and cursor >= planned[0][0]:
                    kind = planned.pop(0)[1]
                    if kind == "stall":  # hangs after its work until killed 90 minutes on
                        worked, b = b, min(b + 90, stop)
                        g.idle_held.append((int(np.ceil(worked)), int(b), 0.5))
                        status = JobStatus.CANCELLED
                    elif kind == "pause":  # waits 9 minutes between two steps
                        first = int(np.ceil(cursor)) + 2
                        g.idle_held.append((first, first + 9, 0.6))
                        b = min(b + 9, stop)
                    elif kind == "orphan":  # its process keeps 30% of VRAM for two hours
                        after = int(np.ceil(b)) + 1
                        g.idle_held.append((after, after + 120, 0.3))
                        extra = 125.0
                usable = rng.random() < usable_p
                report(
                    team,
                    [g],
                    cursor,
                    b,
                    model,
                    version=version,
                    usable=usable,
                    status=status,
                    peak=int(g.tier[2] * 2**30 * (0.97 if g.pressure_share > 0.3 else 0.6)),
                )
                if usable or not regenerating:
                    clip += 1
                busy = g.share("busy_share", cursor)
                gap = length * (1 - busy) / max(busy, 0.05)
                cursor = b + extra + gap * rng.uniform(0.8, 1.2)
    # Horizontal scaling: the same model and resolution on 4 GPUs and on 1.
    for host, efficiency, model in (
        (scaling_host, 0.5, WORKLOADS[2]),
        (decoy_host, 0.85, WORKLOADS[1]),
    ):
        gpus = by_host[host]
        team = teams["sim-studio-b"]
        single = model[3]
        # Four GPUs render one clip each; the other four render clips together (until the
        # fix, when the over-split clips run one GPU each).
        singles = [(g, 0.0) for g in gpus[:4]]
        if "premature_horizontal_scaling" in faults or host == decoy_host:
            multi = single / (4 * efficiency)
            until = span_min if host == decoy_host else min(span_min, fixed)
            cursor = 0.0
            while cursor < until - multi:
                report(team, gpus[4:8], cursor, cursor + multi, model)
                clip += 1
                cursor += multi * 1.05
            if until < span_min:
                singles += [(g, cursor) for g in gpus[4:8]]
        else:
            singles += [(g, 0.0) for g in gpus[4:8]]
        for g, begin in singles:
            cursor = begin + rng.uniform(0, 3)
            while cursor < span_min - single:
                report(team, [g], cursor, cursor + single, model)
                clip += 1
                cursor += single * 1.05
    name, _, (w, h), _ = WORKLOADS[2]
    if "premature_horizontal_scaling" in faults:
        truth.add("premature_horizontal_scaling", "model", f"sim-studio-b:{name}:{w}x{h}")
    name, _, (w, h), _ = WORKLOADS[1]
    truth.add("premature_horizontal_scaling", "model", f"sim-studio-b:{name}:{w}x{h}", decoy=True)
    if "regeneration_waste" in faults:
        truth.add("regeneration_waste", "team", "sim-studio-c")
        truth.add("regeneration_waste", "team", "sim-studio-b", decoy=True)
    if "model_cost_regression" in faults:
        name, _, (w, h), _ = WORKLOADS[1]
        truth.add("model_cost_regression", "model", f"sim-studio-a:{name}:{w}x{h}:2.2")
        name, _, (w, h), _ = WORKLOADS[0]
        truth.add("model_cost_regression", "model", f"sim-studio-a:{name}:{w}x{h}:2.2", decoy=True)
    _jobs_send(events)
    return count


def _planned_speed(workload: tuple[Any, ...], to_gpu: str, from_gpu: str) -> float:
    """The planner's time per clip of ``workload`` on ``to_gpu`` over ``from_gpu`` (what the
    memory fix's projection rests on), 1 where the planner does not know them."""
    from finops.insights.planning import predicted

    name, _, (w, h), _ = workload
    shape = {"model_name": name, "width": w, "height": h, "frames": 81, "steps": 50}
    there, here = predicted(shape, to_gpu), predicted(shape, from_gpu)
    if not there or not here or not here["seconds_per_clip"]:
        return 1.0
    return float(there["seconds_per_clip"]) / float(here["seconds_per_clip"])


def _video_apis(start: datetime, teams: dict[str, Team], faults: list[str],
                truth: GroundTruth) -> None:  # fmt: skip
    """Two hosted offerings at 720p, labelled "sim-" (their prices are the kind a price sheet
    holds, not a quote): one mapped as a replacement for HunyuanVideo at 1280x720 for studio
    A only (the placement fault), one cheaper still but mapped for nobody (the decoy: studio
    B renders the same workload, and no finding may come of an unmapped offering)."""
    from collectors.pricing.video_api import VideoApiOffer
    from finops.placement.models import PlacementMapping
    from finops.pricing.services import video_api_prices_load

    source = "simulated studio: a list price of the kind a video API price sheet holds"
    video_api_prices_load([
        VideoApiOffer(1, f"{PREFIX}openai", "sora-2", "Sora 2", "720p", Decimal("0.10"), "USD",
                      True, start - timedelta(days=1), None, source),
        VideoApiOffer(2, f"{PREFIX}budgetvideo", "lite-1", "Lite 1", "720p", Decimal("0.02"),
                      "USD", False, start - timedelta(days=1), None, source),
    ])  # fmt: skip
    name, version, (w, h), _ = WORKLOADS[2]
    if "placement" in faults:
        PlacementMapping.objects.get_or_create(
            model_name=name, resolution=f"{w}x{h}", team=teams["sim-studio-a"],
            offering=VideoApiOffering.objects.get(provider=f"{PREFIX}openai", offering="sora-2"),
            defaults={"note": "simulated: studio A accepts Sora 2 output for these clips"},
        )  # fmt: skip
        truth.add("placement", "workload", f"sim-studio-a:{name}:{version}:{w}x{h}")
    truth.add("placement", "workload", f"sim-studio-b:{name}:{version}:{w}x{h}", decoy=True)


def _iso(ts: datetime) -> str:
    return ts.isoformat().replace("+00:00", "Z")


def _jobs_send(events: list[dict[str, Any]]) -> None:
    """The events in order, in batches of JOBS_BULK_MAX_LINES; a refused line is a bug in
    the simulation, not data to skip."""
    from django.conf import settings

    from finops.jobs.events import jobs_import_batch

    size = settings.JOBS_BULK_MAX_LINES
    for first in range(0, len(events), size):
        batch = list(enumerate(events[first : first + size], start=first + 1))
        result = jobs_import_batch(batch)
        if result.errors:
            raise RuntimeError(f"simulated job events refused: {result.errors[:3]}")


def _minutes_store(columns: list[dict[str, np.ndarray]]) -> None:
    gpu_minute_columns_store(
        {name: np.concatenate([c[name] for c in columns]) for name in columns[0]}
    )


def _telemetry(
    fleet: list[_Gpu], start: datetime, end: datetime, rng: random.Random, *, last: bool,
    mode: str, origin: datetime,
) -> None:  # fmt: skip
    """One GPU reading a minute (held minutes busy, the rest idle) and one storage sample a
    minute per node. ``mode`` "samples": the readings as raw samples through the ingest
    path (rolled up afterwards); "minutes": the minutes a host agent computes from those
    same samples (``simulated_minutes``) through the bulk minute store. ``last``: this is
    the simulation's final chunk, whose final minute has no successor sample to measure its
    energy by."""
    from finops.fleet.models import Gpu
    from finops.jobs.models import GpuAllocation

    minutes = int((end - start).total_seconds() // 60)
    stamps = [start + timedelta(minutes=m) for m in range(minutes)]
    held: dict[str, np.ndarray] = {}
    for uuid, a, b in GpuAllocation.objects.filter(
        gpu__uuid__in=[g.uuid for g in fleet], start__lt=end, end__gt=start
    ).values_list("gpu__uuid", "start", "end"):
        mask = held.setdefault(uuid, np.zeros(minutes, dtype=bool))
        lo = max(int((a - start).total_seconds() // 60), 0)
        hi = min(int(-(-(b - start).total_seconds() // 60)), minutes)
        mask[lo:hi] = True
    ids = dict(Gpu.objects.filter(uuid__in=[g.uuid for g in fleet]).values_list("uuid", "id"))
    epoch = int(start.timestamp())
    nprng = np.random.default_rng(rng.randrange(2**32))
    records: list[tuple[int, GpuSample]] = []
    columns: list[dict[str, np.ndarray]] = []
    stalled_hosts: dict[str, np.ndarray] = {}
    offset = int((start - origin).total_seconds() // 60)
    clock_of = offset + np.arange(minutes)  # minutes from the simulation's start
    for g in fleet:
        # The GPU reports [live_from, live_until): one run of this chunk's minutes.
        lo = min(max(g.live_from - offset, 0), minutes)
        hi = minutes if g.live_until is None else min(max(g.live_until - offset, lo), minutes)
        if hi <= lo:
            continue
        fixed = clock_of >= g.fix_at if g.fix_at is not None else np.zeros(minutes, dtype=bool)

        def share(name: str, g: _Gpu = g, fixed: np.ndarray = fixed) -> np.ndarray:
            return np.where(fixed, g.after.get(name, getattr(g, name)), getattr(g, name))

        busy = held.get(g.uuid, np.zeros(minutes, dtype=bool))
        vram = g.tier[2] * 2**30
        tdp = g.tier[5]
        draw = nprng.random(minutes)
        util = np.where(busy, nprng.uniform(75, 98, minutes), 0.0)
        mem = np.where(busy, 0.6, 0.02)
        reasons = np.zeros(minutes, dtype=np.int64)
        clock = np.ones(minutes)
        power = np.where(busy, 0.88 * tdp, 0.15 * tdp)
        thermal = busy & (draw < share("thermal_share"))
        reasons[thermal] |= 0x20
        clock[thermal] = g.thermal_clock
        capped = busy & (draw >= 1 - share("power_share"))
        reasons[capped] |= 0x4
        clock[capped] = g.power_clock
        power[capped] = 0.98 * tdp
        pressure = busy & (nprng.random(minutes) < share("pressure_share"))
        mem = np.where(pressure, 0.96, mem)
        util = np.where(pressure, g.pressure_util, util)
        if g.stalled_share:  # GPUs waiting on latents
            stalled = busy & (nprng.random(minutes) < share("stalled_share"))
            util = np.where(stalled, 15.0, util)
            stalled_hosts[g.host] = (
                stalled_hosts.get(g.host, np.zeros(minutes, dtype=bool)) | stalled
            )
        for a, b, frac in g.idle_held:  # memory held, nothing computed
            still = (clock_of >= a) & (clock_of < b)
            util[still], mem[still], power[still] = 0.0, frac, 0.15 * tdp
            reasons[still], clock[still] = 0, 1.0
        util, mem, power, clock, reasons = (x[lo:hi] for x in (util, mem, power, clock, reasons))
        readings = Readings(
            util=util,
            mem_used=(vram * mem).astype(np.int64),
            vram=vram,
            power=power,
            clock_mhz=(1980 * clock).astype(np.int64),
            clock_max_mhz=1980,
            reasons=reasons,
            # The energy counter (mJ) at each reading, continuing from the previous chunk.
            energy_mj=g.energy_mj + np.concatenate(
                ([0], np.cumsum((power * 60 * 1000).astype(np.int64))[:-1])
            ),
        )  # fmt: skip
        g.energy_mj = int(readings.energy_mj[-1] + int(power[-1] * 60 * 1000))
        final = last or hi < minutes  # no reading follows this one
        if mode == "minutes":
            columns.append(simulated_minutes(readings, gpu_id=ids[g.uuid],
                                             start_s=epoch + 60 * lo, last=final))  # fmt: skip
            if len(columns) == 64:  # a node rack's day a write: bounded memory and statements
                _minutes_store(columns)
                columns = []
            continue
        records += enumerate(
            readings.samples(g.uuid, start + timedelta(minutes=lo)), start=len(records) + 1
        )
        if len(records) > 200_000:
            gpu_samples_store(records=records)
            records = []
    if records:
        gpu_samples_store(records=records)
    if columns:
        _minutes_store(columns)
    storage: list[tuple[int, StorageSample]] = []
    for host in sorted({g.host for g in fleet}):
        stalled = stalled_hosts.get(host, np.zeros(minutes, dtype=bool))
        for m in range(minutes):
            storage.append(
                (
                    len(storage) + 1,
                    StorageSample(
                        hostname=host,
                        device="nvme0n1",
                        ts=stamps[m],
                        read_bytes_per_s=2e9,
                        await_ms=60.0 if stalled[m] else 1.5,
                        util_pct=95.0 if stalled[m] else 30.0,
                    ),
                )
            )
    storage_samples_store(records=storage)
