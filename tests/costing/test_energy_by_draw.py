"""On-prem energy is shared by the energy each job drew: two jobs that each hold one GPU for
half an hour, one at 400 W and one at 100 W, pay 4:1 of the hour's energy, not half each.
Everything goes through the public API: node registration, raw 5-second samples with the
energy counter, job events, and the allocation report. The ledger books energy per team and
node-hour (a line of no job), so the two jobs belong to two teams and the report is by
team: each team's energy is its one job's."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from collectors.records import GpuSample
from finops.costing.engine import ledger_recompute
from finops.pricing.models import PriceRate
from finops.telemetry.models import GpuHour
from finops.telemetry.rollups import rollups_recompute

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
VRAM = 85520809984
WINDOW = f"{T0.isoformat()},{(T0 + timedelta(hours=1)).isoformat()}".replace("+00:00", "Z")


@pytest.fixture
def lab(api, make_key, team_a, team_b):  # type: ignore[no-untyped-def]
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {make_key('ingest:write', 'read')}")
    node = {"hostname": "lab-1", "site": "lab", "provider": "on-prem", "instance_type": "rack-1",
            "pricing_model": "on-prem",
            "gpus": [{"uuid": "GPU-e0", "index": 0, "model": "NVIDIA H100 80GB HBM3",
                      "mem_total_bytes": VRAM}]}  # fmt: skip
    assert api.post("/api/v1/nodes", node, format="json").status_code == 201
    # $2 a GPU-hour, $1 a kWh at a PUE of 1.2.
    PriceRate.objects.create(provider="on-prem", sku="rack-1", region="", pricing_model="on-prem",
                             gpus_per_unit=1, price_per_unit_hour=Decimal(2),
                             price_per_gpu_hour=Decimal(2), energy_per_kwh=Decimal(1),
                             pue=Decimal("1.2"), valid_from=T0 - timedelta(days=1),
                             source="onprem")  # fmt: skip
    for name, team, start, end in (("hot", "studio-a", 0, 30), ("cool", "studio-b", 30, 60)):
        event = {"source": "farm", "external_id": name, "team": team, "status": "succeeded",
                 "started_at": _at(start * 60), "finished_at": _at(end * 60),
                 "gpus": [{"uuid": "GPU-e0", "start": _at(start * 60), "end": _at(end * 60)}]}  # fmt: skip
        assert api.post("/api/v1/jobs", event, format="json").status_code == 201
    return api


def _at(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def _samples() -> list[GpuSample]:
    """Every 5 s from a minute before the hour to a minute after it: 400 W for the first half
    hour, 100 W for the second (the energy counter in millijoules), 100 W around it."""
    out = []
    for t in range(-60, 3660 + 1, 5):
        watts = 400 if 0 <= t < 1800 else 100
        energy_j = 400 * min(max(t, 0), 1800) + 100 * (max(t - 1800, 0) + min(t, 0) + 60)
        out.append(GpuSample(gpu_uuid="GPU-e0", ts=T0 + timedelta(seconds=t), sm_util_pct=90.0,
                             mem_used_bytes=VRAM // 2, mem_total_bytes=VRAM,
                             power_w=float(watts), energy_mj=int(energy_j * 1000) + 10**9))  # fmt: skip
    return out


def _energy_by_job(api) -> tuple[dict[str, str], list[str]]:  # type: ignore[no-untyped-def]
    """Energy cost per job (its team's, each team ran one job) and the report's warnings."""
    body = api.get(f"/api/v1/allocation?window={WINDOW}&aggregate=team&idle=separate").json()
    jobs = {"studio-a": "hot", "studio-b": "cool"}
    rows = {jobs.get(r["name"], r["name"]): r["energy_cost"] for r in body["steps"][0]["rows"]}
    return rows, body["warnings"]


def test_each_job_pays_the_energy_it_drew(lab):
    body = "\n".join(json.dumps(s.as_json()) for s in _samples())
    sent = lab.generic("POST", "/api/v1/ingest/gpu-samples", body,
                       content_type="application/x-ndjson")  # fmt: skip
    assert sent.status_code == 200, sent.content
    rollups_recompute(start=T0 - timedelta(hours=1), end=T0 + timedelta(hours=2))
    ledger_recompute(start=T0, end=T0 + timedelta(hours=1))
    rows, warnings = _energy_by_job(lab)
    # 400 W x 1800 s = 0.2 kWh x 1.2 x $1 = $0.24; 100 W x 1800 s = 0.05 kWh -> $0.06.
    assert (rows["hot"], rows["cool"]) == ("0.24", "0.06")
    assert rows.get("__idle__", "0.00") == "0.00"  # no one left the GPU unheld in the hour
    assert not [w for w in warnings if "kWh" in w]


def test_an_hour_measured_only_as_a_whole_is_shared_by_held_time_and_says_so(lab):
    from finops.fleet.models import Gpu

    GpuHour.objects.create(gpu=Gpu.objects.get(uuid="GPU-e0"), ts=T0, covered_s=3600,
                           busy_s=3600, util_mean_pct=90.0, energy_j=900_000.0)  # fmt: skip
    ledger_recompute(start=T0, end=T0 + timedelta(hours=1))
    rows, warnings = _energy_by_job(lab)
    # 0.25 kWh x 1.2 = $0.30, half each: the hour cannot tell who drew what.
    assert (rows["hot"], rows["cool"]) == ("0.15", "0.15")
    assert any("0.2500 kWh of energy was measured only per hour" in w for w in warnings), warnings
