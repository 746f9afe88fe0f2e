from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.db.models import Sum

from finops.costing.engine import LOCK_CLASS, dirty_windows_recompute, ledger_recompute
from finops.costing.models import DirtyWindow, LedgerEntry, LedgerPrice
from finops.costing.selectors import basis_rows, basis_sums
from finops.fleet.models import Gpu, Node, Site
from finops.jobs.models import JobStatus
from finops.jobs.services import AllocationIn, job_record
from tests.costing import scenario

pytestmark = pytest.mark.django_db


def _totals(basis: str) -> dict[tuple[str, str], Decimal]:
    rows = basis_rows(
        LedgerEntry.objects.values("bucket", "team__slug", "component")
        .annotate(**basis_sums(basis))
        .order_by()
    )
    return {(r["team__slug"] or r["bucket"], r["component"]): r["amount"] for r in rows}


@pytest.fixture
def ledger(team_a, team_b):  # type: ignore[no-untyped-def]
    scenario.build(team_a, team_b)
    assert DirtyWindow.objects.count() == 2  # the job events marked both hours
    ledger_recompute(start=scenario.T10, end=scenario.T12)
    return LedgerEntry.objects.all()


def test_allocation_basis_matches_the_hand_computed_ledger(ledger):
    assert _totals("allocation") == {
        ("studio-a", "gpu"): Decimal("7.5"),
        ("studio-b", "gpu"): Decimal("4"),
        ("__idle__", "idle"): Decimal("11"),
        ("__unallocated__", "gpu"): Decimal("1.5"),
    }
    by_job = dict(
        ledger.filter(job__isnull=False)
        .values_list("job__external_id")
        .annotate(total=Sum("amount"))
    )
    assert by_job == {
        "J1": Decimal("3"),
        "J2": Decimal("4"),
        "J3": Decimal("4"),
        "J4": Decimal("0.5"),
    }
    assert not DirtyWindow.objects.exists()


def test_usage_basis_books_unused_reservation_as_waste(ledger):
    totals = _totals("usage")
    # J1 at 50 %: 1.50 used, 1.50 waste. J2: h10 $1 at 50 %, h11 $3 at 80 %. J3: $3 at 60 %, $1 at 90 %.
    # J4 at 100 %: no waste.
    assert totals[("studio-a", "gpu")] == Decimal("1.5") + Decimal("1.8") + Decimal(
        "0.9"
    ) + Decimal("0.5")
    assert totals[("studio-a", "waste")] == Decimal("1.5") + Decimal("1.2") + Decimal("0.1")
    assert totals[("studio-b", "gpu")] == Decimal("0.5") + Decimal("2.4")
    assert totals[("studio-b", "waste")] == Decimal("0.5") + Decimal("0.6")
    # The basis moves cost between a team's lines, never out of the ledger.
    assert sum(totals.values()) == sum(_totals("allocation").values()) == Decimal("24")


def test_recompute_is_idempotent_and_independent_of_history(ledger):
    first = sorted(
        ledger.values_list(
            "window_start", "bucket", "job_id", "gpu_id", "component", "activity", "amount"
        )
    )
    ledger_recompute(start=scenario.T10, end=scenario.T12)
    again = sorted(LedgerEntry.objects.values_list("window_start", "bucket", "job_id", "gpu_id", "component",
                                                   "activity", "amount"))  # fmt: skip
    assert again == first


def test_price_change_applies_from_its_hour(ledger):
    prices = set(ledger.filter(gpu__uuid="GPU-A0").values_list("window_start__hour", "unit_price"))
    assert prices == {(10, Decimal("4")), (11, Decimal("6"))}
    price = LedgerPrice.objects.get(node__hostname="gpu-a", window_start=scenario.T11)
    assert price.unit_price == 6
    assert "p5.48xlarge in us-east-1" in price.reason


def test_vram_split_applies_only_while_every_holder_reports_vram(team_a):
    # 10:00-10:30 J1 (60 GB) and J2 (20 GB) split 3:1; 10:30-11:00 J1 and J3 (no VRAM)
    # split equally. At $4 per GPU-hour: J1 1350 + 900 s = $2.50, J2 450 s = $0.50,
    # J3 900 s = $1.00, no idle.
    site = Site.objects.create(slug="lab", provider="on-prem")
    node = Node.objects.create(site=site, hostname="lab-v", price_override_per_gpu_hour=4)
    Gpu.objects.create(node=node, uuid="GPU-V0", index=0)
    for name, start, end, vram_gb in (("J1", 0, 60, 60), ("J2", 0, 30, 20), ("J3", 30, 60, None)):
        job_record(source="farm", external_id=name, team=team_a, status=JobStatus.SUCCEEDED,
                   allocations=[AllocationIn(uuid="GPU-V0", start=scenario.at(10, start),
                                             end=scenario.T11 if end == 60 else scenario.at(10, end),
                                             vram_bytes=vram_gb * 10**9 if vram_gb else None)])  # fmt: skip
    ledger_recompute(start=scenario.T10, end=scenario.T11)
    by_job = dict(
        LedgerEntry.objects.filter(job__isnull=False).values_list("job__external_id", "amount")
    )
    assert by_job == {"J1": Decimal("2.5"), "J2": Decimal("0.5"), "J3": Decimal("1")}
    assert not LedgerEntry.objects.filter(bucket="__idle__", amount__gt=0).exists()


def test_a_dirty_hour_recomputes_its_whole_day(ledger):
    LedgerEntry.objects.filter(window_start=scenario.T10).delete()  # as if never computed
    DirtyWindow.objects.create(window_start=scenario.T11)
    assert dirty_windows_recompute() == 1
    assert LedgerEntry.objects.filter(window_start=scenario.T10).exists()  # same UTC day
    assert not DirtyWindow.objects.exists()


def test_a_day_is_recomputed_under_its_lock(ledger):
    # Two recomputes of one day at once would each delete what they see and both insert:
    # the day's advisory lock makes the second wait for the first to commit.
    with transaction.atomic():
        ledger_recompute(start=scenario.T10, end=scenario.T12)
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT objid FROM pg_locks WHERE locktype = 'advisory' AND classid = %s "
                "AND pid = pg_backend_pid()",
                [LOCK_CLASS],
            )
            held = [row[0] for row in cursor.fetchall()]
    assert held == [int(scenario.T10.timestamp()) // 86400]
