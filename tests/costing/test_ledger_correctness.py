"""Billing numbers on small fleets worked out by hand, fed only through the public
interfaces: node registration, sample ingest, job events, ``load_prices``, ``rollup``,
``recompute_costs``, the allocation report and the invoice.

Times are yesterday (UTC) so that raw samples are inside their retention and the rollup
command accepts the range.
"""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from collectors.pricing.offers import PriceOffer
from finops.costing.engine import ledger_recompute
from finops.costing.models import LedgerEntry
from finops.costing.money import money_str
from finops.fleet.models import Gpu, GpuModel, Node, Site, StorageDevice
from finops.jobs.models import JobStatus
from finops.jobs.services import AllocationIn, job_record
from finops.pricing.models import PriceRate
from finops.pricing.selectors import price_resolve
from finops.pricing.services import price_offers_load
from finops.telemetry.tasks import rollup_recent

pytestmark = pytest.mark.django_db

DAY = (
    (timezone.now() - timedelta(days=1))
    .astimezone(UTC)
    .replace(hour=0, minute=0, second=0, microsecond=0)
)
T10 = DAY + timedelta(hours=10)
T11, T12 = T10 + timedelta(hours=1), T10 + timedelta(hours=2)
H100 = {"model": "NVIDIA H100 80GB HBM3", "mem_total_bytes": 85520809984}
CARD_HEADER = (
    "provider,sku,region,pricing_model,price_per_hour,gpus_per_unit,currency,valid_from,valid_to"
)


def _iso(ts: datetime) -> str:
    return ts.isoformat().replace("+00:00", "Z")


def _at(minutes: float) -> datetime:
    return T10 + timedelta(minutes=minutes)


@pytest.fixture
def farm(api, make_key, team_a, team_b):  # type: ignore[no-untyped-def]
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {make_key('ingest:write', 'read', 'billing:read')}")
    return api


def register(api, hostname: str, uuids: list[str], **fields: Any) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    body = {"hostname": hostname, "site": fields.pop("site", "lab"),
            "provider": fields.pop("provider", "other"),
            "gpus": [{"uuid": u, "index": i, **H100} for i, u in enumerate(uuids)], **fields}  # fmt: skip
    response = api.post("/api/v1/nodes", body, format="json")
    assert response.status_code in (200, 201), response.content
    return response.json()


def job(api, external_id: str, gpus: list[tuple[str, float, float]], **fields: Any) -> None:  # type: ignore[no-untyped-def]
    """A finished job holding each (uuid, start minute, end minute) from 10:00 yesterday."""
    start = min(_at(g[1]) for g in gpus)
    end = max(_at(g[2]) for g in gpus)
    body = {"source": "farm", "external_id": external_id, "team": "studio-a",
            "status": "succeeded", "started_at": _iso(start), "finished_at": _iso(end),
            "gpus": [{"uuid": u, "start": _iso(_at(a)), "end": _iso(_at(b))} for u, a, b in gpus],
            **fields}  # fmt: skip
    response = api.post("/api/v1/jobs", body, format="json")
    assert response.status_code in (200, 201), response.content


def samples(
    api, uuid: str, start_min: float, end_min: float, every_s: int = 15, **values: Any
) -> None:  # type: ignore[no-untyped-def]
    lines, ts, end = [], _at(start_min), _at(end_min)
    energy = values.pop("energy_per_s_mj", None)
    n = 0
    while ts < end:
        line = {"gpu_uuid": uuid, "ts": _iso(ts), **values}
        if energy is not None:
            line["energy_mj"] = int(10**9 + energy * every_s * n)
        lines.append(json.dumps(line))
        ts += timedelta(seconds=every_s)
        n += 1
    response = api.post(
        "/api/v1/ingest/gpu-samples", "\n".join(lines), content_type="application/x-ndjson"
    )
    assert response.status_code == 200, response.content
    assert response.json()["rejected"] == 0


def command(name: str, *args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command(name, *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def recompute(start: datetime = T10, end: datetime = T12) -> tuple[str, str]:
    return command("recompute_costs", "--from", _iso(start), "--to", _iso(end))


def rows(api, **params: str) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:  # type: ignore[no-untyped-def]
    params = {"window": f"{_iso(T10)},{_iso(T12)}", "aggregate": "team", **params}
    response = api.get("/api/v1/allocation", params)
    assert response.status_code == 200, response.content
    body = response.json()
    return {r["name"]: r for r in body["steps"][0]["rows"]}, body


def card(tmp_path, *lines: str, extra_header: str = "") -> str:  # type: ignore[no-untyped-def]
    path = tmp_path / "rates.csv"
    path.write_text("\n".join([CARD_HEADER + extra_header, *lines]) + "\n")
    return str(path)


def by_job() -> dict[str, Decimal]:
    return dict(
        LedgerEntry.objects.filter(job__isnull=False)
        .values_list("job__external_id", "amount")
        .order_by()
    )


# --- prices ----------------------------------------------------------------------------


def test_a_price_change_mid_window_is_kept_and_priced_before_and_after(farm, tmp_path):
    path = card(
        tmp_path,
        f"other,gpu_1x_h100,,on-demand,10.00,1,USD,{_iso(DAY - timedelta(days=30))},{_iso(T11)}",
        f"other,gpu_1x_h100,,on-demand,20.00,1,USD,{_iso(T11)},",
    )
    dry, _ = command("load_prices", "csv", path, "--dry-run")
    assert "2 new" in dry
    out, _ = command("load_prices", "csv", path)
    assert "2 new, 0 changed" in out
    assert list(
        PriceRate.objects.order_by("valid_from").values_list("price_per_gpu_hour", "valid_to")
    ) == [(Decimal(10), T11), (Decimal(20), None)]
    assert "0 changed, 2 unchanged" in command("load_prices", "csv", path)[0]  # a reload
    register(farm, "neo-1", ["GPU-N0"], instance_type="gpu_1x_h100")
    job(farm, "J1", [("GPU-N0", 30, 90)])
    recompute()
    hours = dict(
        LedgerEntry.objects.filter(job__isnull=False).values_list("window_start", "amount")
    )
    assert hours == {T10: Decimal(5), T11: Decimal(10)}  # 30 min at $10, 30 min at $20


def test_overlapping_rows_of_one_card_are_refused_naming_both_lines(tmp_path):
    path = card(
        tmp_path,
        "other,gpu_1x_h100,,on-demand,10.00,1,USD,2026-01-01T00:00Z,2026-06-01T00:00Z",
        "other,gpu_1x_a10,,on-demand,1.00,1,USD,2026-01-01T00:00Z,",
        "other,gpu_1x_h100,,on-demand,20.00,1,USD,2026-05-01T00:00Z,",
    )
    with pytest.raises(CommandError) as excinfo:
        command("load_prices", "csv", path)
    assert "line 2 and line 4" in str(excinfo.value)
    assert "valid_to" in str(excinfo.value)
    assert not PriceRate.objects.exists()


def test_catalog_duplicates_are_counted_in_the_load_report(db):
    offer = PriceOffer(provider="aws", sku="p5.48xlarge", region="us-east-1",
                       pricing_model="on-demand", gpu_model="H100 SXM", gpus_per_unit=8,
                       price_per_unit_hour=Decimal("98.32"), currency="USD")  # fmt: skip
    report = price_offers_load(offers=[offer, offer, offer], source="aws")
    assert (report.created, report.duplicates) == (1, 2)
    assert "2 duplicate listings" in report.summary()


def test_a_matching_rate_wins_over_the_gpu_model_default(db):
    h100 = GpuModel.objects.get(name="H100 SXM")
    h100.default_price_per_gpu_hour = Decimal("9.99")
    h100.save()
    node = Node.objects.create(
        site=Site.objects.create(slug="neo", provider="other"), hostname="n", instance_type="x8"
    )
    Gpu.objects.create(node=node, uuid="GPU-R", index=0, model=h100)
    assert price_resolve(node=node, at=T10).reason == "default rate of H100 SXM"
    PriceRate.objects.create(provider="other", sku="x8", pricing_model="on-demand",
                             price_per_unit_hour=16, gpus_per_unit=8, price_per_gpu_hour=2,
                             valid_from=DAY - timedelta(days=1), source="csv")  # fmt: skip
    resolved = price_resolve(node=node, at=T10)
    assert resolved.price == 2
    assert "rate for x8" in resolved.reason


# --- unpriced time ---------------------------------------------------------------------


def test_an_unpriced_node_hour_is_shown_everywhere(farm, root, client):
    register(farm, "mystery-1", ["GPU-M0"], instance_type="unknown-sku")
    register(farm, "priced-1", ["GPU-P0"])
    Node.objects.filter(hostname="priced-1").update(price_override_per_gpu_hour=3)
    job(farm, "J1", [("GPU-M0", 0, 30)])
    _, err = recompute(T10, T11)
    assert "warning: 1 node-hour(s) on 1 node(s) have no price" in err
    assert "mystery-1: 1 hour(s)" in err
    line = LedgerEntry.objects.get(job__external_id="J1")
    assert (line.unit_price, line.amount, line.quantity) == (None, 0, Decimal("0.5"))

    report, body = rows(farm)
    assert report["studio-a"]["unpriced_gpu_hours"] == "0.5000"
    assert report["studio-a"]["gpu_cost"] == "0.00"
    assert any("node mystery-1: 0.5000 GPU-hours in 1 hour(s)" in w for w in body["warnings"])

    invoice = farm.get("/api/v1/teams/studio-a/invoice", {"period": f"{T10:%Y-%m}"}).json()
    assert invoice["unpriced_gpu_hours"] == "0.5000"
    assert [line["unpriced"] for line in invoice["lines"]] == [True]
    assert "node mystery-1" in invoice["warnings"][0]

    client.force_login(root)
    page = client.get("/admin/fleet/node/", {"priced": "no"}).content.decode()
    assert "mystery-1" in page
    assert "priced-1" not in page


# --- registration ----------------------------------------------------------------------


def test_reregistration_keeps_pricing_and_takes_volume_types(farm):
    first = register(farm, "lab-1", ["GPU-L0"], pricing_model="on-prem", interconnect="nvlink",
                     instance_type="dgx-h100",
                     storage=[{"name": "nvme0n1", "volume_type": "local-nvme-gen4",
                               "capacity_bytes": 4 * 10**12}])  # fmt: skip
    assert (first["pricing_model"], first["interconnect"]) == ("on-prem", "nvlink")
    again = register(farm, "lab-1", ["GPU-L0"])  # an agent restart sending none of them
    assert (again["pricing_model"], again["interconnect"], again["instance_type"]) == (
        "on-prem", "nvlink", "dgx-h100",
    )  # fmt: skip
    device = StorageDevice.objects.get(node__hostname="lab-1", name="nvme0n1")
    assert (device.volume_type, device.capacity_bytes) == ("local-nvme-gen4", 4 * 10**12)
    bad = farm.post("/api/v1/nodes", {"hostname": "lab-1", "site": "lab", "provider": "other",
                                      "gpus": [], "storage": [{"name": "x", "speed": 1}]},
                    format="json")  # fmt: skip
    assert bad.status_code == 400
    assert "speed" in bad.content.decode()


# --- splits ----------------------------------------------------------------------------


def test_vram_split_follows_the_jobs_peak_vram(farm):
    register(farm, "lab-v", ["GPU-V0"])
    Node.objects.filter(hostname="lab-v").update(price_override_per_gpu_hour=4)
    job(farm, "big", [("GPU-V0", 0, 60)], peak_vram_bytes=60 * 10**9)
    job(farm, "small", [("GPU-V0", 0, 60)], peak_vram_bytes=20 * 10**9)
    recompute(T10, T11)
    assert by_job() == {"big": Decimal(3), "small": Decimal(1)}


def test_energy_is_shared_by_measured_energy(farm, tmp_path):
    systems = tmp_path / "systems.json"
    systems.write_text(json.dumps([{
        "sku": "dgx-h100", "gpu_model": "H100 SXM", "gpus_per_unit": 2,
        "purchase_price": "73000", "amortization_months": 50, "power_draw_w": 1400,
        "price_per_kwh": "0.50", "pue": "1.0", "currency": "USD",
        "valid_from": _iso(DAY - timedelta(days=30)),
    }]))  # fmt: skip
    command("load_prices", "onprem", str(systems))
    register(farm, "dgx-1", ["GPU-E0", "GPU-E1"], provider="on-prem", pricing_model="on-prem",
             instance_type="dgx-h100")  # fmt: skip
    job(farm, "hot", [("GPU-E0", 0, 60)])
    job(farm, "cool", [("GPU-E1", 0, 60)], team="studio-b")
    samples(farm, "GPU-E0", 0, 60, sm_util_pct=90, power_w=400, energy_per_s_mj=400_000)
    samples(farm, "GPU-E1", 0, 60, sm_util_pct=90, power_w=100, energy_per_s_mj=100_000)
    command("rollup", "--from", _iso(T10), "--to", _iso(T11))
    recompute(T10, T11)
    energy = dict(
        LedgerEntry.objects.filter(component="energy", bucket="team").values_list(
            "team__slug", "amount"
        )
    )
    # About 0.4 kWh and 0.1 kWh (counter increments between samples) at $0.50.
    assert float(energy["studio-a"] / energy["studio-b"]) == pytest.approx(4, rel=1e-4)
    assert energy["studio-a"] == pytest.approx(Decimal("0.2"), abs=Decimal("0.002"))


def _one_node_fleet(farm, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """One node at $4 per GPU-hour with a priced 1 TB volume; studio-a holds GPU 0 for the
    hour at 100% activity, studio-b GPU 1 for half of it at 0%."""
    path = card(
        tmp_path,
        f"other,gpu_2x_h100,,on-demand,8.00,2,USD,{_iso(DAY - timedelta(days=30))},,",
        f"other,nvme-premium,,on-demand,0,1,USD,{_iso(DAY - timedelta(days=30))},,0.073",
        extra_header=",storage_per_gb_month",
    )
    command("load_prices", "csv", path)
    register(farm, "one-1", ["GPU-O0", "GPU-O1"], instance_type="gpu_2x_h100",
             storage=[{"name": "md0", "kind": "local-nvme", "volume_type": "nvme-premium",
                       "capacity_bytes": 10**12}])  # fmt: skip
    job(farm, "a", [("GPU-O0", 0, 60)])
    job(farm, "b", [("GPU-O1", 0, 30)], team="studio-b")
    samples(farm, "GPU-O0", 0, 60, sm_util_pct=100)
    samples(farm, "GPU-O1", 0, 60, sm_util_pct=0)
    command("rollup", "--from", _iso(T10), "--to", _iso(T11))
    recompute(T10, T11)


@pytest.mark.parametrize("basis", ["allocation", "usage"])
def test_node_and_fleet_idle_sharing_agree_on_a_one_node_fleet(farm, tmp_path, basis):
    _one_node_fleet(farm, tmp_path)
    window = f"{_iso(T10)},{_iso(T11)}"
    fleet, _ = rows(farm, window=window, idle="share", basis=basis)
    node, _ = rows(farm, window=window, idle="share", share_idle_by="node", basis=basis)
    assert {k: v["idle_cost"] for k, v in fleet.items()} == {
        k: v["idle_cost"] for k, v in node.items()
    }
    # Storage $0.10/h (1000 GB at $0.073 per GB-month) by paid time: a $0.05, b $0.025, idle
    # $0.025. Allocated: a $4.05, b $2.025; idle $2.025 shared 2:1 (on the usage basis b's
    # $2 are waste: still its allocated cost).
    assert (fleet["studio-a"]["idle_cost"], fleet["studio-b"]["idle_cost"]) == ("1.35", "0.68")
    if basis == "usage":
        assert fleet["studio-b"]["waste_cost"] == "2.00"


def test_a_short_job_wastes_half_its_own_time_whatever_its_neighbours_do(farm):
    # Hour 10: a 15-minute job at 50% in an otherwise idle hour. Hour 11: the same, with a
    # studio-b job at 100% in the second half. At $8 per GPU-hour each costs $2.00: $1.00
    # used and $1.00 waste, in both hours.
    register(farm, "lab-w", ["GPU-W0"])
    Node.objects.filter(hostname="lab-w").update(price_override_per_gpu_hour=8)
    job(farm, "alone", [("GPU-W0", 0, 15)])
    job(farm, "beside", [("GPU-W0", 60, 75)])
    job(farm, "neighbour", [("GPU-W0", 90, 120)], team="studio-b")
    for a, b, util in ((0, 15, 50), (15, 60, 0), (60, 75, 50), (75, 90, 0), (90, 120, 100)):
        samples(farm, "GPU-W0", a, b, sm_util_pct=util)
    command("rollup", "--from", _iso(T10), "--to", _iso(T12))
    recompute()
    report, _ = rows(farm, aggregate="job", basis="usage")
    assert {k: (r["gpu_cost"], r["waste_cost"]) for k, r in report.items() if k.startswith("farm")} == {
        "farm:alone": ("1.00", "1.00"), "farm:beside": ("1.00", "1.00"),
        "farm:neighbour": ("4.00", "0.00"),
    }  # fmt: skip
    assert report["farm:alone"]["usage_assumed_gpu_hours"] == "0.0000"


def test_usage_without_telemetry_is_reported_as_assumed(farm):
    register(farm, "dark-1", ["GPU-D0"])
    Node.objects.filter(hostname="dark-1").update(price_override_per_gpu_hour=2)
    job(farm, "blind", [("GPU-D0", 0, 45)])
    recompute(T10, T11)
    report, body = rows(farm, window=f"{_iso(T10)},{_iso(T11)}", basis="usage")
    assert report["studio-a"]["usage_assumed_gpu_hours"] == "0.7500"
    assert report["studio-a"]["waste_cost"] == "0.00"
    assert any("assumed to be 100%" in w for w in body["warnings"])


# --- presentation ----------------------------------------------------------------------


def test_lines_of_no_job_are_named_none_with_aggregate_job(farm, tmp_path):
    _one_node_fleet(farm, tmp_path)
    by_job_rows, _ = rows(farm, window=f"{_iso(T10)},{_iso(T11)}", aggregate="job")
    # Storage is shared to the jobs' teams, not to jobs: its rows have no job.
    assert by_job_rows["__none__"]["storage_cost"] == "0.08"  # 0.05 + 0.025, half up
    assert ":" not in by_job_rows
    by_team_job, _ = rows(farm, window=f"{_iso(T10)},{_iso(T11)}", aggregate="team,job")
    assert {"studio-a,farm:a", "studio-a,__none__", "studio-b,__none__"} <= set(by_team_job)


def test_money_is_rounded_half_up():
    assert [money_str(Decimal(v)) for v in ("0.625", "0.615", "1.005", "2.4999")] == [
        "0.63", "0.62", "1.01", "2.50",
    ]  # fmt: skip


def test_a_clip_with_two_usable_attempts_counts_its_seconds_once(farm):
    register(farm, "lab-c", ["GPU-C0"])
    Node.objects.filter(hostname="lab-c").update(price_override_per_gpu_hour=2)
    for name, (a, b) in (("take-1", (0, 20)), ("take-2", (20, 40))):
        job(farm, name, [("GPU-C0", a, b)], clip_id="clip-1", usable=True, frames=80, fps=16)
    recompute(T10, T11)
    report, _ = rows(farm, window=f"{_iso(T10)},{_iso(T11)}")
    assert report["studio-a"]["usable_seconds"] == 5.0
    assert report["studio-a"]["generated_seconds"] == 10.0


# --- operator commands -----------------------------------------------------------------


def test_create_team_and_add_member(db, django_user_model):
    out, _ = command("create_team", "studio-c", "--name", "Studio C", "--budget", "1200",
                     "--currency", "eur")  # fmt: skip
    assert "Created team studio-c (Studio C), budget 1200 EUR/month." in out
    with pytest.raises(CommandError, match="exists already"):
        command("create_team", "studio-c", "--name", "Again")
    with pytest.raises(CommandError, match="--budget: '-5'"):
        command("create_team", "studio-d", "--name", "D", "--budget", "-5")
    django_user_model.objects.create_user("carol", "carol@example.com", "pw")
    assert "carol is manager of studio-c" in command("add_member", "carol", "studio-c",
                                                     "--role", "manager")[0]  # fmt: skip
    with pytest.raises(CommandError, match="no team 'studio-x'"):
        command("add_member", "carol", "studio-x", "--role", "viewer")
    with pytest.raises(CommandError, match="no user 'dave'"):
        command("add_member", "dave", "studio-c", "--role", "viewer")


def _snapshot() -> list[tuple[Any, ...]]:
    return sorted(
        LedgerEntry.objects.values_list(
            "window_start",
            "bucket",
            "team_id",
            "job_id",
            "gpu_id",
            "component",
            "quantity",
            "amount",
            "activity",
        )
    )


def test_recompute_costs_after_late_telemetry_equals_the_ledger_after_the_rollup_task(farm):
    now = timezone.now().replace(second=0, microsecond=0)
    start = now - timedelta(minutes=10)
    register(farm, "late-1", ["GPU-T0"])
    Node.objects.filter(hostname="late-1").update(price_override_per_gpu_hour=6)
    # Samples of the last ten minutes (inside the rollup's lateness window), and a replayed
    # spool from this morning hour (older: queued for the backlog).
    lines = [json.dumps({"gpu_uuid": "GPU-T0", "ts": _iso(start + timedelta(seconds=15 * i)),
                         "sm_util_pct": 40 if i < 20 else 0}) for i in range(40)]  # fmt: skip
    old = now - timedelta(hours=3)
    lines += [json.dumps({"gpu_uuid": "GPU-T0", "ts": _iso(old + timedelta(seconds=15 * i)),
                          "sm_util_pct": 70}) for i in range(40)]  # fmt: skip
    farm.post("/api/v1/ingest/gpu-samples", "\n".join(lines), content_type="application/x-ndjson")
    job_record(source="farm", external_id="now", team=farm_team(), status=JobStatus.SUCCEEDED,
               allocations=[AllocationIn(uuid="GPU-T0", start=start, end=start + timedelta(minutes=5))])  # fmt: skip
    recompute(old - timedelta(hours=1), now)
    by_command = _snapshot()
    assert LedgerEntry.objects.filter(bucket="__idle__").exists()
    assert LedgerEntry.objects.filter(bucket="__unallocated__").exists()  # the morning's work

    rollup_recent()  # the periodic rollup and its backlog, then the ledger again
    ledger_recompute(start=old - timedelta(hours=1), end=now)
    assert _snapshot() == by_command


def farm_team():  # type: ignore[no-untyped-def]
    from finops.accounts.models import Team

    return Team.objects.get(slug="studio-a")
