"""A hand-checked fleet: 2 teams, 3 GPUs on 2 nodes, overlapping jobs, a regeneration, idle
gaps, and a price change between the two hours (2026-11-02 10:00-12:00 UTC).

Node gpu-a (AWS p5.48xlarge, us-east-1): GPUs A0, A1; rate card $32/h for 8 GPUs ($4 per
GPU-hour) until 11:00, then $48/h ($6). Node lab-b (on-prem): GPU B0 at a $2 override.

  J1 studio-a  A0 10:00-11:00   clip c1, not usable (the first attempt)
  J2 studio-b  A0 10:30-11:30   shares A0 with J1 10:30-11:00
  J3 studio-a  A1+B0 11:00-11:30 (two GPUs)
  J4 studio-a  B0 10:00-10:15   clip c1 again: usable, 81 frames at 16 fps

Hour 10: A0 J1 2700 s $3.00, J2 900 s $1.00 | A1 idle $4.00 | B0 J4 $0.50, idle $1.50
Hour 11: A0 J2 $3.00, idle $3.00 | A1 J3 $3.00, busy 2700 s: unallocated 900 s $1.50,
         idle $1.50 | B0 J3 $1.00, idle $1.00
Allocation basis: studio-a 7.50, studio-b 4.00, idle 11.00, unallocated 1.50 = paid 24.00.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from finops.accounts.models import Team
from finops.fleet.models import Gpu, GpuModel, Node, Site
from finops.jobs.models import JobStatus
from finops.jobs.services import AllocationIn, job_record
from finops.pricing.models import PriceRate
from finops.telemetry.models import GpuHour

T10 = datetime(2026, 11, 2, 10, tzinfo=UTC)
T11 = T10 + timedelta(hours=1)
T12 = T10 + timedelta(hours=2)


def at(hour: int, minute: int = 0) -> datetime:
    return T10.replace(hour=hour, minute=minute)


def build(team_a: Team, team_b: Team) -> dict[str, Gpu]:
    h100 = GpuModel.objects.get(name="H100 SXM")
    aws = Site.objects.create(slug="aws-use1", provider="aws", region="us-east-1")
    lab = Site.objects.create(slug="lab", provider="on-prem")
    node_a = Node.objects.create(site=aws, hostname="gpu-a", instance_type="p5.48xlarge")
    node_b = Node.objects.create(site=lab, hostname="lab-b", pricing_model="on-prem",
                                 price_override_per_gpu_hour=Decimal(2))  # fmt: skip
    gpus = {
        "A0": Gpu.objects.create(node=node_a, uuid="GPU-A0", index=0, model=h100),
        "A1": Gpu.objects.create(node=node_a, uuid="GPU-A1", index=1, model=h100),
        "B0": Gpu.objects.create(node=node_b, uuid="GPU-B0", index=0, model=h100),
    }
    for price, start, end in (
        (Decimal(32), T10 - timedelta(days=30), T11),
        (Decimal(48), T11, None),
    ):
        PriceRate.objects.create(provider="aws", sku="p5.48xlarge", region="us-east-1", pricing_model="on-demand",
                                 gpus_per_unit=8, price_per_unit_hour=price, price_per_gpu_hour=price / 8,
                                 valid_from=start, valid_to=end, source="csv")  # fmt: skip
    telemetry = {  # (gpu, hour): (busy_s, util_mean_pct)
        ("A0", T10): (3600, 50.0), ("A1", T10): (0, 0.0), ("B0", T10): (900, 100.0),
        ("A0", T11): (1800, 80.0), ("A1", T11): (2700, 60.0), ("B0", T11): (1800, 90.0),
    }  # fmt: skip
    for (name, hour), (busy, util) in telemetry.items():
        GpuHour.objects.create(gpu=gpus[name], ts=hour, samples=3600, covered_s=3600, busy_s=busy,
                               util_mean_pct=util)  # fmt: skip
    jobs = [
        ("J1", team_a, [("GPU-A0", at(10), at(11))], "c1", False),
        ("J2", team_b, [("GPU-A0", at(10, 30), at(11, 30))], "c2", True),
        (
            "J3",
            team_a,
            [("GPU-A1", at(11), at(11, 30)), ("GPU-B0", at(11), at(11, 30))],
            "c3",
            True,
        ),
        ("J4", team_a, [("GPU-B0", at(10), at(10, 15))], "c1", True),
    ]
    for external_id, team, allocations, clip, usable in jobs:
        job_record(
            source="farm-1", external_id=external_id, team=team, status=JobStatus.SUCCEEDED, clip_id=clip,
            project="trailer", model_name="wan2.1-t2v-1.3b", model_version="2.1",
            started_at=allocations[0][1], finished_at=allocations[0][2], frames=81, fps=16.0, usable=usable,
            allocations=[AllocationIn(uuid=u, start=s, end=e) for u, s, e in allocations],
        )  # fmt: skip
    return gpus
