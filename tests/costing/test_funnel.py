"""The fleet funnel on the hand-worked scenario (tests/costing/scenario.py): the stages
nest, paid is the allocation report's GPU and idle cost, held - used is the usage basis's
waste, whole days from the daily rows equal the lines, and a team's caller never gets
the fleet's idle time or another team's."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from finops.accounts.models import Team
from finops.costing.engine import ledger_recompute
from finops.costing.funnel import STAGES, funnel, funnel_lines
from finops.costing.models import FunnelHour
from finops.costing.selectors import AllocationQuery, allocation_report
from tests.costing import scenario

pytestmark = pytest.mark.django_db


@pytest.fixture
def costed(team_a, team_b):  # type: ignore[no-untyped-def]
    scenario.build(team_a, team_b)
    ledger_recompute(start=scenario.T10, end=scenario.T12)


def _costs(body: dict, name: str = "fleet") -> dict[str, Decimal]:  # type: ignore[type-arg]
    (row,) = [r for r in body["rows"] if r["name"] == name]
    return {s["stage"]: Decimal(s["cost"]) for s in row["stages"]}


def _report(basis: str) -> list[dict]:  # type: ignore[type-arg]
    query = AllocationQuery(start=scenario.T10, end=scenario.T12, aggregate=("team",),
                            step="window", idle="separate", basis=basis)  # fmt: skip
    return allocation_report(query=query, teams=Team.objects.all(), all_teams=True)["steps"][0][
        "rows"
    ]


def test_the_stages_nest_and_tie_to_the_ledger(costed):
    body = funnel(teams=Team.objects.all(), all_teams=True, start=scenario.T10,
                  end=scenario.T12)  # fmt: skip
    stages = _costs(body)
    values = [stages[s] for s in STAGES]
    assert values == sorted(values, reverse=True) and values[-1] > 0
    # Every held hour of the scenario was SM-busy at least as long as it was held, so active
    # is all of held; the usage basis counts utilisation, less.
    assert stages["active"] == stages["held"] and stages["used"] < stages["active"]
    allocation = _report("allocation")
    paid = sum(Decimal(r["gpu_cost"]) + Decimal(r["idle_cost"]) for r in allocation)
    assert stages["paid"] == paid.quantize(Decimal("0.01"))
    teams = {t.slug for t in Team.objects.all()}
    held = sum(Decimal(r["gpu_cost"]) for r in allocation if r["name"] in teams)
    assert stages["held"] == held.quantize(Decimal("0.01"))
    usage = _report("usage")
    waste = sum(Decimal(r["waste_cost"]) for r in usage if r["name"] in teams)
    assert stages["held"] - stages["used"] == waste.quantize(Decimal("0.01"))
    assert 0 < body["rows"][0]["yield"] < 1


def test_the_hourly_rows_equal_the_lines(costed):
    day = scenario.T10.replace(hour=0)
    assert FunnelHour.objects.filter(hour=scenario.T10).exists()
    from_days = funnel(teams=Team.objects.all(), all_teams=True, start=day,
                       end=day + timedelta(days=1), by="team")  # fmt: skip
    from_hours = funnel(teams=Team.objects.all(), all_teams=True, start=scenario.T10,
                        end=scenario.T12, by="team")  # fmt: skip
    assert from_days["rows"] == from_hours["rows"]
    lines = funnel_lines(scenario.T10, scenario.T12)
    stored = list(FunnelHour.objects.values("hour", "team_id", "gpu_model_id", "paid_amount",
                                            "used_amount", "active_amount"))  # fmt: skip

    def values(rows: list) -> list:  # type: ignore[type-arg]
        return sorted((r["hour"], r["team_id"] or 0, r["gpu_model_id"] or 0, r["paid_amount"],
                       r["used_amount"], r["active_amount"]) for r in rows)  # fmt: skip

    assert values(lines) == values(stored)
    assert {r["name"] for r in from_days["rows"]} == {"studio-a", "studio-b",
                                                     "(idle and unallocated)"}  # fmt: skip


def test_a_team_caller_sees_its_team_only(costed, team_a):
    body = funnel(teams=Team.objects.filter(pk=team_a.pk), all_teams=False,
                  start=scenario.T10, end=scenario.T12, by="team")  # fmt: skip
    assert [r["name"] for r in body["rows"]] == ["studio-a"]
    mine = _costs(body, "studio-a")
    assert mine["paid"] == mine["held"]  # a team's paid is the time its jobs held
    with pytest.raises(ValueError, match="by: 'node'"):
        funnel(teams=Team.objects.all(), all_teams=True, start=scenario.T10,
               end=scenario.T12, by="node")  # fmt: skip


def test_held_time_the_sm_was_idle_is_not_active(costed):
    """A0 at 10:00: J1 held 2700 s and J2 900 s. With the hour busy only 1800 s, the busy
    seconds are shared by activity (both 50% utilisation: by held time), so each job is
    active for half its held time, and used (50%) is not more than active."""
    from finops.fleet.models import Gpu
    from finops.telemetry.models import GpuHour

    GpuHour.objects.filter(gpu=Gpu.objects.get(uuid="GPU-A0"), ts=scenario.T10).update(busy_s=1800)
    ledger_recompute(start=scenario.T10, end=scenario.T12)
    body = funnel(teams=Team.objects.all(), all_teams=True, start=scenario.T10,
                  end=scenario.T11, by="team")  # fmt: skip
    b = _costs(body, "studio-b")
    # J2's 900 s at $4 per GPU-hour: $1.00 held, $0.50 active, $0.50 used (50%).
    assert (b["held"], b["active"], b["used"]) == (Decimal("1.00"), Decimal("0.50"),
                                                    Decimal("0.50"))  # fmt: skip


def test_by_day_the_days_add_up_to_the_window(costed):
    day = scenario.T10.replace(hour=0)
    body = funnel(teams=Team.objects.all(), all_teams=True, start=day - timedelta(hours=6),
                  end=day + timedelta(days=1), by="fleet", step="1d")  # fmt: skip
    assert [d["start"][:10] for d in body["days"]] == ["2026-11-01", "2026-11-02"]
    total = sum((_costs(d)["paid"] for d in body["days"] if d["rows"]), Decimal(0))
    assert total == _costs(body)["paid"] == Decimal("24.00")


def test_the_api_answers_each_caller_with_what_it_may_see(costed, api, make_key, team_a):
    window = f"{scenario.T10.isoformat()},{scenario.T12.isoformat()}"
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {make_key('read', team=team_a)}")
    mine = api.get("/api/v1/funnel", {"window": window, "by": "team"}).json()
    assert [r["name"] for r in mine["rows"]] == ["studio-a"]
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {make_key('billing:read')}")
    fleet = api.get("/api/v1/funnel", {"window": window}).json()
    assert _costs(fleet)["paid"] == Decimal("24.00")
    for params, field in (({"by": "node"}, "by"), ({"step": "1h"}, "step"),
                          ({"window": "forever"}, "window")):  # fmt: skip
        bad = api.get("/api/v1/funnel", params)
        assert bad.status_code == 400 and field in bad.json()["extra"]["fields"]
