from __future__ import annotations

import pytest

from finops.costing.engine import ledger_recompute
from tests.costing import scenario

pytestmark = pytest.mark.django_db

WINDOW = "2026-11-02T10:00:00Z,2026-11-02T12:00:00Z"


def _rows(api, **params):  # type: ignore[no-untyped-def]
    response = api.get("/api/v1/allocation", {"window": WINDOW, **params})
    assert response.status_code == 200, response.content
    body = response.json()
    return {r["name"]: r for r in body["steps"][0]["rows"]}, body


def test_team_allocation_with_idle_separate(billing):
    rows, body = _rows(billing, aggregate="team")
    assert body["currency"] == "USD"
    assert {n: r["total_cost"] for n, r in rows.items()} == {
        "studio-a": "7.50", "studio-b": "4.00", "__idle__": "11.00", "__unallocated__": "1.50",
    }  # fmt: skip
    a = rows["studio-a"]
    assert a["gpu_hours"] == "2.0000"  # J1 2700 s + J3 2 x 1800 s + J4 900 s
    assert a["regeneration_cost"] == "3.00"  # J1, the unusable attempt of clip c1
    assert a["usable_seconds"] == 10.125  # clips c1 (once) and c3, 81 frames at 16 fps each
    assert a["generated_seconds"] == 15.188
    assert a["cost_per_usable_second"] == "0.74"  # 7.50 / 10.125
    assert rows["__idle__"]["usable_seconds"] is None


def test_idle_shared_by_fleet_and_by_node(billing):
    fleet, _ = _rows(billing, aggregate="team", idle="share")
    assert "__idle__" not in fleet
    assert (fleet["studio-a"]["idle_cost"], fleet["studio-b"]["idle_cost"]) == ("7.17", "3.83")
    assert (fleet["studio-a"]["total_cost"], fleet["studio-b"]["total_cost"]) == ("14.67", "7.83")
    node, _ = _rows(billing, aggregate="team", idle="share", share_idle_by="node")
    # gpu-a: idle 8.50 over allocated 10.00 (a 6, b 4); lab-b: idle 2.50, all studio-a.
    assert (node["studio-a"]["idle_cost"], node["studio-b"]["idle_cost"]) == ("7.60", "3.40")


def test_idle_hidden_and_hourly_steps(billing):
    hidden, _ = _rows(billing, aggregate="team", idle="hide")
    assert set(hidden) == {"studio-a", "studio-b", "__unallocated__"}
    body = billing.get(
        "/api/v1/allocation", {"window": WINDOW, "aggregate": "team", "step": "1h"}
    ).json()
    assert [s["start"] for s in body["steps"]] == [
        "2026-11-02T10:00:00+00:00",
        "2026-11-02T11:00:00+00:00",
    ]
    hour10 = {r["name"]: r["total_cost"] for r in body["steps"][0]["rows"]}
    assert hour10 == {"studio-a": "3.50", "studio-b": "1.00", "__idle__": "5.50"}


def test_other_aggregates(billing):
    by_node, _ = _rows(billing, aggregate="node")
    assert (by_node["gpu-a"]["gpu_cost"], by_node["lab-b"]["gpu_cost"]) == ("10.00", "1.50")
    by_job, _ = _rows(billing, aggregate="team,job")
    assert by_job["studio-b,farm-1:J2"]["total_cost"] == "4.00"
    usage, _ = _rows(billing, aggregate="team", basis="usage")
    assert (usage["studio-a"]["gpu_cost"], usage["studio-a"]["waste_cost"]) == ("4.70", "2.80")


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"window": "2026-11-02T12:00:00Z,2026-11-02T10:00:00Z"}, "window"),
        ({"window": "fortnight"}, "window"),
        ({"aggregate": "colour"}, "aggregate"),
        ({"idle": "ignore"}, "idle"),
        ({"basis": "vibes"}, "basis"),
        ({"step": "1w"}, "step"),
    ],
)
def test_bad_parameters_are_400_naming_the_parameter(billing, params, parameter):
    response = billing.get("/api/v1/allocation", {"window": WINDOW, **params})
    assert response.status_code == 400
    assert list(response.json()["extra"]["fields"]) == [parameter]


def test_team_restricted_key_sees_its_team_only(api, make_key, team_a, team_b):
    scenario.build(team_a, team_b)
    ledger_recompute(start=scenario.T10, end=scenario.T12)
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {make_key('billing:read', team=team_a)}")
    rows, _ = _rows(api, aggregate="team")
    assert set(rows) == {"studio-a"}  # no other team, no fleet idle
    response = api.get("/api/v1/allocation", {"window": WINDOW, "team": "studio-b"})
    assert response.status_code == 404


@pytest.mark.parametrize("aggregate", ["team", "node", "team,node"])
def test_daily_summary_answers_like_the_hourly_ledger(billing, aggregate):
    from finops.costing.models import LedgerDay

    assert LedgerDay.objects.exists()
    whole_days = "2026-11-02T00:00:00Z,2026-11-03T00:00:00Z"  # read from the daily summary
    unaligned = "2026-11-02T00:00:01Z,2026-11-03T00:00:00Z"  # read from the hourly ledger
    for idle in ("separate", "share"):
        a = billing.get(
            "/api/v1/allocation", {"window": whole_days, "aggregate": aggregate, "idle": idle}
        ).json()
        b = billing.get(
            "/api/v1/allocation", {"window": unaligned, "aggregate": aggregate, "idle": idle}
        ).json()
        assert a["steps"][0]["rows"] == b["steps"][0]["rows"]
        assert a["steps"][0]["rows"]
