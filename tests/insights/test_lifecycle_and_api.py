"""Findings over time (dedup, self-resolve, reopen, acknowledged stays acknowledged), the
findings API with team isolation and role checks, savings, the detect command, and a
property: no finding's waste exceeds its scope's ledger cost."""

from __future__ import annotations

import io
from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import transaction
from django.db.models import Sum
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from finops.accounts.models import Role
from finops.accounts.services import membership_set
from finops.costing.engine import ledger_recompute
from finops.costing.models import LedgerEntry
from finops.insights.models import Finding, FindingStatus
from finops.insights.services import findings_refresh
from tests.insights.test_detectors import T0, T1, hour, job, node

pytestmark = pytest.mark.django_db


def _idle_and_regen(team_a, team_b) -> None:  # type: ignore[no-untyped-def]
    """A node half idle (a fleet-wide finding) and studio-b rendering a clip three times."""
    g0, g1 = node("idle-1", 2)
    hour(g0)
    hour(g1, busy_s=0, util_mean_pct=0.0)
    for i, usable in enumerate([False, False, True]):
        job(team_b, [(g0, 15 * i, 15 * i + 15)], usable=usable, frames=80, fps=16, clip_id="c1")
    ledger_recompute(start=T0, end=T1)


def test_dedup_self_resolve_reopen_and_acknowledged(team_a, team_b, settings):
    settings.INSIGHTS_RESOLVE_AFTER_RUNS = 2
    _idle_and_regen(team_a, team_b)
    findings_refresh(start=T0, end=T1, now=T1)
    findings_refresh(start=T0, end=T1, now=T1 + timedelta(minutes=5))
    assert sorted(Finding.objects.values_list("pattern", flat=True)) == [
        "idle_capacity", "regeneration_waste",
    ]  # fmt: skip
    idle = Finding.objects.get(pattern="idle_capacity")
    assert (idle.first_seen_at, idle.last_seen_at) == (T1, T1 + timedelta(minutes=5))

    regen = Finding.objects.get(pattern="regeneration_waste")
    regen.status = FindingStatus.ACKNOWLEDGED
    regen.save()
    findings_refresh(start=T0, end=T1, now=T1 + timedelta(minutes=10))
    regen.refresh_from_db()
    assert regen.status == FindingStatus.ACKNOWLEDGED  # still there: still acknowledged

    # The next hour (same window length) shows neither: twice absent resolves them.
    later = (T1, T1 + timedelta(hours=1))
    findings_refresh(start=later[0], end=later[1], now=later[1])
    assert not Finding.objects.filter(status=FindingStatus.RESOLVED).exists()
    findings_refresh(start=later[0], end=later[1], now=later[1])
    assert set(Finding.objects.values_list("status", flat=True)) == {FindingStatus.RESOLVED}
    # A 7-day refresh that misses them does not count toward an hour's findings.
    # And when the pattern comes back, the finding reopens.
    report = findings_refresh(start=T0, end=T1, now=later[1] + timedelta(hours=1))
    assert report.reopened == 2
    assert set(Finding.objects.values_list("status", flat=True)) == {FindingStatus.OPEN}
    assert Finding.objects.count() == 2


@pytest.fixture
def judged(api, team_a, team_b):  # type: ignore[no-untyped-def]
    _idle_and_regen(team_a, team_b)
    findings_refresh(start=T0, end=T1, now=T1)
    users = get_user_model().objects
    people = {}
    for name, team, role in (("ann", team_a, Role.MANAGER), ("bea", team_b, Role.MANAGER),
                             ("vic", team_b, Role.VIEWER)):  # fmt: skip
        people[name] = users.create_user(name, f"{name}@example.com", "pw")
        membership_set(user=people[name], team=team, role=role)
    return people


def test_team_isolation_and_fleet_findings(api, judged):
    regen = Finding.objects.get(pattern="regeneration_waste")
    idle = Finding.objects.get(pattern="idle_capacity")
    api.force_authenticate(judged["ann"])
    assert api.get(f"/api/v1/findings/{regen.pk}").status_code == 404  # studio-b's
    assert api.get(f"/api/v1/findings/{idle.pk}").status_code == 404  # fleet-wide
    assert api.get("/api/v1/findings").json()["results"] == []
    assert api.get("/api/v1/findings", {"team": "studio-b"}).status_code == 404
    api.force_authenticate(judged["bea"])
    listed = api.get("/api/v1/findings").json()["results"]
    assert [f["pattern"] for f in listed] == ["regeneration_waste"]
    assert listed[0]["evidence"]["attempts_per_usable_clip"] == 3.0
    bad = api.get("/api/v1/findings", {"pattern": "sloth"})
    assert bad.status_code == 400 and "pattern" in bad.json()["extra"]["fields"]


def test_only_the_teams_managers_and_admins_judge(api, judged, root, make_key):
    regen = Finding.objects.get(pattern="regeneration_waste")
    idle = Finding.objects.get(pattern="idle_capacity")
    api.force_authenticate(judged["vic"])  # a viewer of studio-b
    assert (
        api.patch(
            f"/api/v1/findings/{regen.pk}", {"status": "acknowledged"}, format="json"
        ).status_code
        == 403
    )
    api.force_authenticate(judged["bea"])
    ok = api.patch(f"/api/v1/findings/{regen.pk}", {"status": "acknowledged"}, format="json")
    assert ok.status_code == 200 and ok.json()["status"] == "acknowledged"
    bad = api.patch(f"/api/v1/findings/{regen.pk}", {"status": "ignored"}, format="json")
    assert bad.status_code == 400 and "status" in bad.json()["extra"]["fields"]
    api.force_authenticate(None)
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {make_key('read')}")
    assert (
        api.patch(f"/api/v1/findings/{idle.pk}", {"status": "resolved"}, format="json").status_code
        == 403
    )
    api.credentials()
    api.force_authenticate(root)
    assert (
        api.patch(f"/api/v1/findings/{idle.pk}", {"status": "resolved"}, format="json").status_code
        == 200
    )


def test_savings_by_pattern_and_team(api, judged, root):
    api.force_authenticate(root)
    rows = {(r["pattern"], r["team"]): r for r in api.get("/api/v1/savings").json()["results"]}
    idle = Finding.objects.get(pattern="idle_capacity")
    assert rows[("idle_capacity", None)]["projected_monthly_savings"] == str(idle.est_monthly_waste)
    assert rows[("regeneration_waste", "studio-b")]["findings"] == 1
    api.force_authenticate(judged["bea"])
    assert [r["pattern"] for r in api.get("/api/v1/savings").json()["results"]] == [
        "regeneration_waste"
    ]


def test_detect_command(team_a, team_b):
    _idle_and_regen(team_a, team_b)
    out, err = io.StringIO(), io.StringIO()
    call_command("detect", "--from", T0.isoformat(), "--to", T1.isoformat(), stdout=out, stderr=err)
    assert "2 finding(s): 2 new" in out.getvalue()
    assert "idle_capacity: 1 finding(s)" in err.getvalue()
    assert "(10/10)" in err.getvalue()


def _scope_cost(f: Finding) -> Decimal:
    lines = LedgerEntry.objects.filter(
        window_start__gte=f.window_start, window_start__lt=f.window_end
    )
    if f.scope_kind == "node":
        lines = lines.filter(node__hostname=f.scope_key)
    elif f.scope_kind == "gpu":
        lines = lines.filter(gpu__uuid=f.scope_key)
    elif f.scope_kind == "team":
        lines = lines.filter(team__slug=f.scope_key)
    elif f.scope_kind == "gpu_model":
        lines = lines.filter(gpu__model__name=f.scope_key)
    else:  # a team's model: its jobs' lines
        lines = lines.filter(team=f.team, job__model_name=f.evidence["model"])
    return lines.aggregate(total=Sum("amount"))["total"] or Decimal(0)


fleets = st.lists(
    st.tuples(
        st.integers(0, 3),  # node
        st.integers(0, 50), st.integers(1, 60),  # start minute, length
        st.booleans(), st.sampled_from(["succeeded", "oom", "failed"]),
        st.integers(0, 3600), st.floats(0.5, 1.0), st.integers(0, 3600),  # busy, clock, thermal
        st.integers(1, 4),  # GPUs
    ),
    min_size=1, max_size=4,
)  # fmt: skip


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(fleets)
def test_no_finding_wastes_more_than_its_scope_costs(team_a, fleet):
    with transaction.atomic():
        nodes = {}
        for i, (n, start, length, usable, status, busy, clock, thermal, gpus) in enumerate(fleet):
            if n not in nodes:
                nodes[n] = node(f"p-{n}", 4, price=3 + n)
                for g in nodes[n]:
                    hour(g, busy_s=busy, clock_ratio_mean=clock, clock_s=3600,
                         throttle_sw_thermal_s=min(thermal, busy), mem_pressure_s=min(thermal, busy))  # fmt: skip
            end = min(start + length, 60)
            job(team_a, [(g, start, end) for g in nodes[n][:gpus]], usable=usable, status=status,
                frames=81, fps=16, steps=50, clip_id=f"c{i % 2}", model_name="m", width=832, height=480)  # fmt: skip
        ledger_recompute(start=T0, end=T1)
        findings_refresh(start=T0, end=T1, now=T1)
        for f in Finding.objects.all():
            assert f.waste <= _scope_cost(f), (f.pattern, f.scope_key, f.waste)
            assert f.est_monthly_waste == (f.waste * 720).quantize(Decimal("0.01"))
        transaction.set_rollback(True)
