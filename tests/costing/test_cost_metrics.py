"""The cost gauges at /metrics/costs equal the allocation API for the month to date, price
each GPU as the ledger would, count unresolved findings, and are cached for a minute."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from prometheus_client.parser import text_string_to_metric_families

from finops.costing.engine import ledger_recompute
from finops.costing.metrics import cost_exposition
from finops.insights.models import Finding
from tests.costing import scenario

NOW = datetime(2026, 11, 15, tzinfo=UTC)


def _samples(body: bytes) -> dict[str, list]:
    out: dict[str, list] = {}
    for family in text_string_to_metric_families(body.decode()):
        out[family.name] = [(s.labels, s.value) for s in family.samples]
    return out


@pytest.mark.django_db
def test_cost_gauges_equal_the_allocation_api(client, team_a, team_b, root):
    scenario.build(team_a, team_b)
    ledger_recompute(start=scenario.T10, end=scenario.T12)
    Finding.objects.create(pattern="idle_capacity", scope_kind="node", scope_key="gpu-a", severity="high",
                           window_start=scenario.T10, window_end=scenario.T12, dedup_key="x",
                           first_seen_at=scenario.T12, last_seen_at=scenario.T12, est_monthly_waste=120)  # fmt: skip
    gauges = _samples(cost_exposition(now=NOW, fresh=True))
    client.force_login(root)
    api = client.get("/api/v1/allocation", {"window": f"2026-11-01T00:00:00Z,{NOW.isoformat()}",
                                            "aggregate": "team"}).json()  # fmt: skip
    rows = {r["name"]: r for r in api["steps"][0]["rows"]}
    month = {(labels["team"], labels["component"]): value
             for labels, value in gauges["frameops_team_month_to_date_cost"]}  # fmt: skip
    for team, row in rows.items():
        assert month[(team, "total")] == float(row["total_cost"]), team
        assert month[(team, "gpu")] == float(row["gpu_cost"]), team
        assert month[(team, "idle")] == float(row["idle_cost"]), team
    assert month[("studio-a", "total")] == 7.5 and month[("studio-b", "total")] == 4.0
    per_second = {
        labels["team"]: value for labels, value in gauges["frameops_team_cost_per_usable_second"]
    }
    assert per_second["studio-a"] == float(rows["studio-a"]["cost_per_usable_second"])
    hourly = {(labels["node"], labels["gpu"]): (value, labels["provider"], labels["gpu_model"])
              for labels, value in gauges["frameops_gpu_hourly_cost"]}  # fmt: skip
    assert hourly[("gpu-a", "0")] == (6.0, "aws", "H100 SXM")  # $48/h for 8 GPUs since 11:00
    assert hourly[("lab-b", "0")][0] == 2.0  # the node's override
    assert gauges["frameops_findings_open"] == [
        ({"pattern": "idle_capacity", "severity": "high"}, 1.0)
    ]
    assert gauges["frameops_findings_monthly_savings"] == [
        ({"pattern": "idle_capacity", "currency": "USD"}, 120.0)
    ]
    # The funnel: paid by team is each team's held time, and the idle and unallocated
    # time's; together the month's GPU and idle cost (scenario: 24.00).
    stages = {(labels["stage"], labels["team"], labels["gpu_model"]): value
              for labels, value in gauges["frameops_funnel_cost"]}  # fmt: skip
    assert stages[("paid", "studio-a", "")] == stages[("held", "studio-a", "")] == 7.5
    assert stages[("paid", "__idle__", "")] == 12.5  # idle 11.00 + unallocated 1.50
    by_model = sum(v for (stage, team, model), v in stages.items() if stage == "paid" and model)
    assert by_model == pytest.approx(24.0)


@pytest.mark.django_db
def test_the_endpoint_is_cached_and_guarded_by_the_metrics_token(
    client, settings, team_a, team_b, alice, fiona
):
    from django.core.cache import cache

    cache.clear()
    # No token set: nobody anonymous, and no team's manager, reads every team's costs.
    refused = client.get("/metrics/costs")
    assert refused.status_code == 401 and "METRICS_TOKEN" in refused.json()["message"]
    client.force_login(alice)
    refused = client.get("/metrics/costs")
    assert refused.status_code == 403 and "/api/v1/allocation" in refused.json()["message"]
    client.force_login(fiona)  # finance sees every team's costs
    first = client.get("/metrics/costs")
    assert first.status_code == 200 and b"frameops_team_month_to_date_cost" in first.content
    scenario.build(team_a, team_b)  # new GPUs: not seen until the minute's cache expires
    assert client.get("/metrics/costs").content == first.content
    settings.METRICS_TOKEN = "s3cret"
    client.logout()
    assert client.get("/metrics/costs").status_code == 401
    assert client.get("/metrics/costs", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert client.get("/metrics/costs", HTTP_AUTHORIZATION="Bearer s3cret").status_code == 200
