"""Property: for random fleets, prices, telemetry and jobs, every window's ledger sums to
the paid GPU cost plus storage plus energy, to the cent, and does not depend on the order
in which the jobs arrived."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from finops.accounts.models import Team
from finops.costing.engine import ledger_recompute
from finops.costing.models import LedgerEntry
from finops.costing.selectors import basis_rows, basis_sums
from finops.fleet.models import Gpu, Node, Site, StorageDevice
from finops.jobs.models import JobStatus
from finops.jobs.services import AllocationIn, job_record
from finops.pricing.models import PriceRate
from finops.telemetry.models import GpuHour

T0 = datetime(2026, 11, 3, tzinfo=UTC)
HOURS = 3

jobs_strategy = st.lists(
    st.tuples(
        st.integers(0, 2),  # team
        st.lists(st.tuples(st.integers(0, 5), st.integers(0, HOURS * 3600 - 60), st.integers(60, 7200),
                           st.one_of(st.none(), st.integers(1, 80))), min_size=1, max_size=3, unique_by=lambda a: a[0]),  # (gpu, start, length, vram GB)
    ),
    min_size=0,
    max_size=8,
)  # fmt: skip
telemetry_strategy = st.dictionaries(
    st.tuples(st.integers(0, 5), st.integers(0, HOURS - 1)),
    st.tuples(st.integers(0, 3600), st.integers(0, 3600), st.one_of(st.none(), st.floats(0, 100)),
              st.one_of(st.none(), st.floats(0, 5e6))),
    max_size=10,
)  # fmt: skip
prices_strategy = st.tuples(
    st.decimals(Decimal("0.5"), Decimal("12"), places=4),
    st.decimals(Decimal("0.1"), Decimal("3"), places=4),
)


def _build(jobs, telemetry, prices, order):  # type: ignore[no-untyped-def]
    teams = [Team.objects.create(slug=f"t{i}", name=f"T{i}") for i in range(3)]
    cloud = Site.objects.create(slug="cloud", provider="aws", region="us-east-1")
    lab = Site.objects.create(slug="lab", provider="on-prem", region="dc")
    nodes = [
        Node.objects.create(site=cloud, hostname="c1", instance_type="g6e.48xlarge"),
        Node.objects.create(
            site=lab, hostname="l1", instance_type="rack-1", pricing_model="on-prem"
        ),
    ]
    gpus = [
        Gpu.objects.create(node=nodes[i // 3], uuid=f"GPU-{i}", index=i % 3, vram_bytes=80 * 2**30)
        for i in range(6)
    ]
    cloud_price, onprem_price = prices
    PriceRate.objects.create(provider="aws", sku="g6e.48xlarge", region="us-east-1", pricing_model="on-demand",
                             gpus_per_unit=8, price_per_unit_hour=cloud_price * 8, price_per_gpu_hour=cloud_price,
                             valid_from=T0 - timedelta(days=1), source="csv")  # fmt: skip
    PriceRate.objects.create(provider="on-prem", sku="rack-1", region="dc", pricing_model="on-prem",
                             gpus_per_unit=1, price_per_unit_hour=onprem_price, price_per_gpu_hour=onprem_price,
                             energy_per_kwh=Decimal("0.15"), pue=Decimal("1.4"), valid_from=T0 - timedelta(days=1),
                             source="onprem")  # fmt: skip
    PriceRate.objects.create(provider="aws", sku="gp3", region="us-east-1", pricing_model="on-demand",
                             gpus_per_unit=1, price_per_unit_hour=0, price_per_gpu_hour=0,
                             storage_per_gb_month=Decimal("0.08"), valid_from=T0 - timedelta(days=1), source="csv")  # fmt: skip
    StorageDevice.objects.create(node=nodes[0], name="nvme1n1", kind="network", volume_type="gp3",
                                 capacity_bytes=2 * 10**12)  # fmt: skip
    for (gpu, hour), (covered, busy, util, energy) in telemetry.items():
        GpuHour.objects.create(gpu=gpus[gpu], ts=T0 + timedelta(hours=hour), covered_s=covered,
                               busy_s=min(busy, 3600), util_mean_pct=util, energy_j=energy)  # fmt: skip
    for position in order:
        team, allocations = jobs[position]
        job_record(
            source="farm", external_id=f"j{position}", team=teams[team], status=JobStatus.SUCCEEDED,
            allocations=[AllocationIn(uuid=f"GPU-{g}", start=T0 + timedelta(seconds=s),
                                      end=min(T0 + timedelta(seconds=s + length), T0 + timedelta(hours=HOURS)),
                                      vram_bytes=v * 2**30 if v else None)
                         for g, s, length, v in allocations],
        )  # fmt: skip
    return gpus


def _expected_paid(jobs, telemetry, prices) -> dict[int, Decimal]:  # type: ignore[no-untyped-def]
    """Paid GPU + storage + energy per hour, computed from the inputs independently."""
    held: dict[tuple[int, int], list[tuple[float, float]]] = defaultdict(list)
    for _, allocations in jobs:
        for g, s, length, _ in allocations:
            end = min(s + length, HOURS * 3600)
            for hour in range(HOURS):
                lo, hi = max(s, hour * 3600), min(end, (hour + 1) * 3600)
                if hi > lo:
                    held[(g, hour)].append((lo, hi))
    out: dict[int, Decimal] = defaultdict(Decimal)
    for g in range(6):
        for hour in range(HOURS):
            spans = sorted(held[(g, hour)])
            union, cursor = 0.0, -1.0
            for lo, hi in spans:
                lo = max(lo, cursor)
                if hi > lo:
                    union += hi - lo
                cursor = max(cursor, hi)
            covered = telemetry.get((g, hour), (0, 0, None, None))[0]
            paid = min(max(covered, union), 3600)
            if paid <= 0:
                continue
            price = prices[0] if g < 3 else prices[1]
            out[hour] += Decimal(repr(round(paid, 6))) / 3600 * price
            out[(hour, "node", g // 3)] = Decimal(1)  # node present this hour
    for hour in range(HOURS):
        if out.pop((hour, "node", 0), None):
            out[hour] += Decimal(2000) * Decimal("0.08") / 730  # 2 TB gp3 on the cloud node
        if out.pop((hour, "node", 1), None):
            energy = sum((telemetry[(g, hour)][3] or 0) for g in range(3, 6) if (g, hour) in telemetry
                         and min(max(telemetry[(g, hour)][0], 1 if held[(g, hour)] else 0), 3600) > 0)  # fmt: skip
            out[hour] += Decimal(repr(energy / 3.6e6)) * Decimal("1.4") * Decimal("0.15")
    return out


def _ledger() -> dict[tuple[int, str], Decimal]:
    out: dict[tuple[int, str], Decimal] = defaultdict(Decimal)
    for basis in ("allocation", "usage"):
        rows = basis_rows(
            LedgerEntry.objects.values("window_start", "component")
            .annotate(**basis_sums(basis))
            .order_by()
        )
        for r in rows:
            out[(int((r["window_start"] - T0).total_seconds() // 3600), basis)] += r["amount"]
    return out


@pytest.mark.django_db
@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(jobs=jobs_strategy, telemetry=telemetry_strategy, prices=prices_strategy, data=st.data())
def test_ledger_sums_to_paid_cost_in_any_arrival_order(jobs, telemetry, prices, data):
    order = data.draw(st.permutations(range(len(jobs))))
    results = []
    for arrival in (list(range(len(jobs))), order):
        with transaction.atomic():
            _build(jobs, telemetry, prices, arrival)
            ledger_recompute(start=T0, end=T0 + timedelta(hours=HOURS))
            results.append(sorted(map(str, LedgerEntry.objects.values_list(
                "window_start", "bucket", "team__slug", "job__external_id", "gpu__uuid", "component", "activity", "amount"))))  # fmt: skip
            ledger = _ledger()
            expected = _expected_paid(jobs, telemetry, prices)
            for hour in range(HOURS):
                for basis in ("allocation", "usage"):
                    got = ledger.get((hour, basis), Decimal(0))
                    assert abs(got - expected.get(hour, Decimal(0))) < Decimal("0.005"), (
                        hour,
                        basis,
                    )
            transaction.set_rollback(True)
    assert results[0] == results[1]
