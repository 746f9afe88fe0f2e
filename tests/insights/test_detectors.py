"""Each failure pattern on a small hand-built fleet: it fires with its evidence and waste
worked out by hand, and a near miss just under its threshold does not. One hour window,
H100 SXM GPUs at a $4 per GPU-hour override unless said otherwise.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from finops.costing.engine import ledger_recompute
from finops.fleet.models import Gpu, GpuModel, Node, Site, StorageDevice
from finops.insights.models import Finding
from finops.insights.services import findings_refresh
from finops.jobs.models import JobStatus
from finops.jobs.services import AllocationIn, job_record
from finops.telemetry.models import GpuHour, GpuMinute, StorageSample

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 2, 10, tzinfo=UTC)
T1 = T0 + timedelta(hours=1)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def node(name: str, gpus: int = 1, *, price: int = 4, model: str = "H100 SXM",
         interconnect: str = "nvlink") -> list[Gpu]:  # fmt: skip
    site, _ = Site.objects.get_or_create(slug="lab", defaults={"provider": "on-prem"})
    n = Node.objects.create(site=site, hostname=name, price_override_per_gpu_hour=price,
                            interconnect=interconnect)  # fmt: skip
    catalog = GpuModel.objects.get(name=model)
    return [
        Gpu.objects.create(
            node=n, uuid=f"GPU-{name}-{i}", index=i, model=catalog, vram_bytes=catalog.vram_bytes
        )
        for i in range(gpus)
    ]


def hour(gpu: Gpu, **values: Any) -> None:
    defaults = {"covered_s": 3600, "busy_s": 3600, "util_mean_pct": 90.0, "samples": 3600}
    GpuHour.objects.create(gpu=gpu, ts=T0, **{**defaults, **values})


counter = iter(range(10**6))


def job(team, gpus: list[tuple[Gpu, float, float]], **fields: Any):  # type: ignore[no-untyped-def]
    fields.setdefault("status", JobStatus.SUCCEEDED)
    fields.setdefault("started_at", min(at(a) for _, a, _ in gpus))
    fields.setdefault("finished_at", max(at(b) for _, _, b in gpus))
    return job_record(source="farm", external_id=f"j{next(counter)}", team=team,
                      allocations=[AllocationIn(uuid=g.uuid, start=at(a), end=at(b)) for g, a, b in gpus],
                      **fields)[0]  # fmt: skip


def refresh() -> dict[str, list[Finding]]:
    ledger_recompute(start=T0, end=T1)
    findings_refresh(start=T0, end=T1, now=T1)
    out: dict[str, list[Finding]] = {}
    for f in Finding.objects.all():
        out.setdefault(f.pattern, []).append(f)
    return out


def test_a_clean_fleet_has_no_findings(team_a):
    gpus = node("clean-1", 2)
    for g in gpus:
        hour(g, clock_ratio_mean=1.0, clock_s=3600)
        job(team_a, [(g, 0, 60)], usable=True, frames=81, fps=16, steps=50, clip_id=f"c-{g.pk}")
    assert refresh() == {}


@pytest.mark.parametrize(("second_gpu_until", "fires"), [(0, True), (45, False)])
def test_idle_capacity(team_a, second_gpu_until, fires):
    # 2 GPUs paid for the hour ($8); GPU 0 held all hour, GPU 1 for 0 or 45 minutes:
    # idle $4.00 (50%) or $1.00 (12.5%, under 30%).
    g0, g1 = node("idle-1", 2)
    hour(g0)
    hour(g1, busy_s=0, util_mean_pct=0.0)
    job(team_a, [(g0, 0, 60)])
    if second_gpu_until:
        job(team_a, [(g1, 0, second_gpu_until)])
    found = refresh().get("idle_capacity", [])
    assert bool(found) is fires
    if fires:
        (f,) = found
        assert (f.scope_kind, f.scope_key) == ("node", "idle-1")
        assert f.evidence["idle_share"] == 0.5
        assert f.waste == Decimal("4.00")
        assert f.est_monthly_waste == Decimal("2880.00")  # 4.00 x 720 hours
        assert f.action["release_gpus"] == 1
        assert f.thresholds == {"idle_share": 0.3}


@pytest.mark.parametrize(
    ("attempts", "fires"), [([False, False, True], True), ([True, True, True, False, True], False)]
)
def test_regeneration_waste(team_a, attempts, fires):
    # Each attempt holds a GPU for 15 minutes: $1.00. Three attempts of one clip, two unusable:
    # 3 attempts per usable clip, $2.00 of $3.00 regeneration. The near miss: four clips,
    # one rendered twice: 1.25 attempts per clip, 20% of the cost.
    (g,) = node("regen-1")
    hour(g)
    for i, usable in enumerate(attempts):
        clip = "c1" if fires or i >= 3 else f"c{i}"
        job(team_a, [(g, 15 * i % 60, 15 * i % 60 + 15)], usable=usable, frames=80, fps=16,
            steps=50, clip_id=clip, finished_at=at(15 * i % 60 + 15))  # fmt: skip
    found = refresh().get("regeneration_waste", [])
    assert bool(found) is fires
    if fires:
        (f,) = found
        assert f.evidence["attempts_per_usable_clip"] == 3.0
        assert f.evidence["regeneration_cost_share"] == pytest.approx(0.6667, abs=1e-4)
        assert f.waste == Decimal("2.00")
        # At 1.4 attempts per clip the team pays 1.4/3 of it: $1.40 for 5 usable seconds.
        assert f.action["projected_cost"] == "1.40"
        assert f.action["current_cost_per_usable_second"] == "0.600000"
        assert f.action["projected_cost_per_usable_second"] == "0.280000"


@pytest.mark.parametrize(("thermal_s", "clock", "fires"), [(600, 0.8, True), (100, 0.9, False)])
def test_thermal_throttling(team_a, thermal_s, clock, fires):
    # Busy all hour, $4.00 held by a job; 600 s (16.7%) under sw thermal at 80% clock:
    # waste (1 - 0.8) x 4.00 = 0.80. Near miss: 100 s (2.8%) at 90%.
    (g,) = node("hot-1")
    hour(g, throttle_sw_thermal_s=thermal_s, clock_ratio_mean=clock, clock_s=3600)
    job(team_a, [(g, 0, 60)])
    found = refresh()
    assert bool(found.get("thermal_throttling")) is fires
    assert "power_capping" not in found
    if fires:
        (f,) = found["thermal_throttling"]
        assert (f.scope_kind, f.scope_key) == ("gpu", "GPU-hot-1-0")
        assert f.evidence["throttled_share_of_busy"] == pytest.approx(0.1667, abs=1e-4)
        assert f.evidence["clock_ratio_while_busy"] == 0.8
        assert f.waste == Decimal("0.80")


@pytest.mark.parametrize(("power_w", "fires"), [(690.0, True), (400.0, False)])
def test_power_capping(team_a, power_w, fires):
    # 720 s of 3600 busy (20%) power-capped at 90% clock; drawing 690 W of a 700 W TDP:
    # waste (1 - 0.9) x 4.00 = 0.40. Near miss: the same bits at 400 W (not at the limit).
    (g,) = node("cap-1")
    hour(g, throttle_power_cap_s=720, clock_ratio_mean=0.9, clock_s=3600, power_mean_w=power_w,
         power_s=3600)  # fmt: skip
    job(team_a, [(g, 0, 60)])
    found = refresh()
    assert bool(found.get("power_capping")) is fires
    assert "thermal_throttling" not in found
    if fires:
        (f,) = found["power_capping"]
        assert f.evidence["power_over_tdp"] == pytest.approx(0.986, abs=1e-3)
        assert f.waste == Decimal("0.40")


@pytest.mark.parametrize(("pressure_s", "fires"), [(1800, True), (600, False)])
def test_memory_underinvestment(team_a, pressure_s, fires):
    # Half the busy hour at the memory limit with 40% SM utilisation: waste
    # 4.00 x 0.5 x (1 - 0.4) = 1.20. The fix: the H200 (141 GB) at its $5 default rate for
    # the remaining $2.80 of work: 2.80 x 5 / 4 = $3.50. Near miss: 600 s (16.7%).
    GpuModel.objects.filter(name="H200").update(default_price_per_gpu_hour=5)
    (g,) = node("mem-1")
    hour(g, mem_pressure_s=pressure_s, util_mean_pct=40.0, mem_frac_max=0.99)
    job(team_a, [(g, 0, 60)], peak_vram_bytes=79 * 10**9, model_name="wan2.1-t2v-14b",
        width=1280, height=720, frames=81, steps=50)  # fmt: skip
    found = refresh().get("memory_underinvestment", [])
    assert bool(found) is fires
    if fires:
        (f,) = found
        assert (f.scope_kind, f.scope_key) == ("gpu_model", "H100 SXM")
        assert f.evidence["memory_pressure_share_of_busy"] == 0.5
        assert f.evidence["util_during_pressure_pct"] == 40.0
        assert f.waste == Decimal("1.20")
        assert f.action["to_gpu"] == "H200"
        # The planner's prediction for the job's own shape on both GPUs: the H200 is the
        # H100's chip with more memory, so the same time per clip and the same saving.
        here, there = f.action["planned_current"], f.action["planned_to"]
        assert (here["gpu"], there["gpu"]) == ("H100 SXM", "H200")
        assert here["seconds_per_clip"] == there["seconds_per_clip"] > 0
        assert there["fits"] and there["peak_gb_per_gpu"] == here["peak_gb_per_gpu"]
        assert f.action["planned_shape"]["model_name"] == "wan2.1-t2v-14b"
        assert any("the planner's time per clip for wan2.1-t2v-14b 1280x720" in a
                   for a in f.action["assumptions"])  # fmt: skip
        assert f.action["projected_cost"] == "3.50"


@pytest.mark.parametrize(("multi_minutes", "fires"), [(15, True), (10, False)])
def test_premature_horizontal_scaling(team_a, multi_minutes, fires):
    # Single-GPU jobs: 81 frames x 50 steps in 30 GPU-minutes (2.25 per GPU-second). A
    # 4-GPU job of the same work in 15 minutes uses 60 GPU-minutes: 50% efficiency, its
    # $4.00 half wasted. Near miss: in 10 minutes, 40 GPU-minutes: 75%.
    single, multi = node("one-1", 2), node("pcie-4", 4, interconnect="pcie")
    for g in [*single, *multi]:
        hour(g)
    for g in single:
        job(team_a, [(g, 0, 30)], model_name="wan-14b", width=1280, height=720, frames=81, steps=50)
    job(team_a, [(g, 0, multi_minutes) for g in multi], model_name="wan-14b", width=1280,
        height=720, frames=81, steps=50)  # fmt: skip
    found = refresh().get("premature_horizontal_scaling", [])
    assert bool(found) is fires
    if fires:
        (f,) = found
        assert f.scope_key == "studio-a:wan-14b:1280x720"
        assert f.evidence["scaling_efficiency"] == 0.5
        assert f.evidence["interconnect"] == ["pcie"]
        assert f.waste == Decimal("2.00")
        # The planner's view of the same shape on 4 H100s over PCIe, and on one.
        multi, single = f.action["planned_multi_gpu"], f.action["planned_single_gpu"]
        assert (multi["gpus"], multi["interconnect"], single["gpus"]) == (4, "pcie", 1)
        assert (
            0 < multi["efficiency"] < 1 and multi["seconds_per_clip"] < single["seconds_per_clip"]
        )
        assert any(a.startswith("the planner predicts") for a in f.action["assumptions"])


@pytest.mark.parametrize(("stalled_minutes", "fires"), [(20, True), (5, False)])
def test_io_starvation(team_a, stalled_minutes, fires):
    # A job holds the GPU all hour; for 20 minutes its utilisation is 10% while the node's
    # NVMe answers in 50 ms: 1200 of 3600 held seconds stalled, $4.00 x 1/3 = $1.33.
    (g,) = node("io-1")
    hour(g)
    device = StorageDevice.objects.create(node=g.node, name="nvme0n1", kind="local-nvme")
    for m in range(60):
        stalled = m < stalled_minutes
        GpuMinute.objects.create(gpu=g, ts=at(m), covered_s=60, busy_s=60, samples=60,
                                 util_mean_pct=10.0 if stalled else 90.0)  # fmt: skip
        StorageSample.objects.create(device=device, ts=at(m), await_ms=50.0 if stalled else 2.0,
                                     util_pct=40.0)  # fmt: skip
    job(team_a, [(g, 0, 60)])
    found = refresh().get("io_starvation", [])
    assert bool(found) is fires
    if fires:
        (f,) = found
        assert f.evidence["stalled_gpu_s"] == 1200.0
        assert f.evidence["stalled_share"] == pytest.approx(0.3333, abs=1e-4)
        assert f.evidence["storage_await_ms_while_stalled"] == 50.0
        assert f.waste == Decimal("1.33")


@pytest.mark.parametrize(("new_minutes", "fires"), [(15.0, True), (11.0, False)])
def test_model_cost_regression(team_a, new_minutes, fires):
    # Version 2.1: two usable 5.0625 s clips of 10 GPU-minutes ($0.67 each); version 2.2:
    # two of 15 minutes ($1.00): +50% per usable second; waste 2 x $0.33 = $0.67.
    # Near miss: 11 minutes, +10%.
    (g,) = node("ver-1")
    hour(g)
    cursor = 0.0
    for version, minutes in (
        ("2.1", 10.0),
        ("2.1", 10.0),
        ("2.2", new_minutes),
        ("2.2", new_minutes),
    ):
        job(team_a, [(g, cursor, cursor + minutes)], model_name="wan-1.3b", model_version=version,
            width=832, height=480, frames=81, fps=16, usable=True, clip_id=f"c{cursor}")  # fmt: skip
        cursor += minutes
    found = refresh().get("model_cost_regression", [])
    assert bool(found) is fires
    if fires:
        (f,) = found
        assert f.evidence["increase"] == pytest.approx(0.5, abs=1e-4)
        assert (f.evidence["version"], f.evidence["previous_version"]) == ("2.2", "2.1")
        assert f.waste == Decimal("0.67")


def test_idle_held_names_a_stalled_job_and_an_orphan_but_not_a_pause(team_a):
    # $4 per GPU-hour. GPU 0: a job holds it all hour, computes 20 minutes, then holds half
    # the VRAM with nothing computed for 40 (stalled: 40/60 x $4 = $2.67, team A's). GPU 1:
    # no job, 30% of VRAM held for the first 30 minutes (an orphan: $2.00, fleet-wide), then
    # released. GPU 2: a job that pauses 20 minutes between steps (under 30: not flagged).
    g0, g1, g2 = node("held-1", 3)
    for g in (g0, g1, g2):
        hour(g, busy_s=1200)
    job(team_a, [(g0, 0, 60)])
    job(team_a, [(g2, 0, 60)])
    for m in range(60):
        rows = (
            (g0, m < 20, 0.5),
            (g1, False, 0.3 if m < 30 else 0.02),
            (g2, not 20 <= m < 40, 0.6),
        )
        for g, busy, mem in rows:
            GpuMinute.objects.create(gpu=g, ts=at(m), samples=60, covered_s=60,
                                     busy_s=60 if busy else 0, mem_frac_mean=mem,
                                     util_mean_pct=80.0 if busy else 0.0)  # fmt: skip
    found = {f.evidence["case"]: f for f in refresh().get("idle_held", [])}
    assert set(found) == {"stalled_job", "orphan"}
    stalled, orphan = found["stalled_job"], found["orphan"]
    assert (stalled.scope_key, stalled.team, stalled.waste) == (
        "GPU-held-1-0",
        team_a,
        Decimal("2.67"),
    )
    assert stalled.evidence["runs"][0] == {"start": "2026-11-02 10:20", "end": "2026-11-02 11:00",
                                           "minutes": 40, "job_id": stalled.evidence["runs"][0]["job_id"]}  # fmt: skip
    assert stalled.action["held_by_job"] is True and stalled.action["node"] == "held-1"
    assert (orphan.scope_key, orphan.team, orphan.waste) == ("GPU-held-1-1", None, Decimal("2.00"))
    assert orphan.est_monthly_waste == Decimal("1440.00")  # $2.00 an hour x 720
    assert (
        "no job holding it" in orphan.recommendation
        and "10:00 to 2026-11-02 10:30" in orphan.recommendation
    )
    assert orphan.thresholds == {"idle_held_mem_frac": 0.1, "idle_held_minutes": 30.0}
