"""Realized savings, worked by hand on one-hour windows (INSIGHTS_SAVINGS_MIN_WINDOW_S at
an hour), H100 SXM at $4 per GPU-hour: a team pattern and a node pattern to the cent,
volume normalisation, the states (too early, not measurable, re-opened), and the
statement summing to the findings behind it."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.test import override_settings

from finops.costing.engine import ledger_recompute
from finops.insights.models import Finding, FindingStatus, RealizationState
from finops.insights.savings import resolutions_measure_due
from finops.insights.selectors import savings_statement, savings_summary
from finops.insights.services import finding_status_set, findings_refresh
from finops.telemetry.models import GpuHour
from tests.insights.test_detectors import T0, T1, at, hour, job, node

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("hourly_windows")]
T2, T3 = T1 + timedelta(hours=1), T1 + timedelta(hours=2)


@pytest.fixture
def hourly_windows():  # type: ignore[no-untyped-def]
    with override_settings(INSIGHTS_SAVINGS_MIN_WINDOW_S=3600, INSIGHTS_RESOLVE_AFTER_RUNS=1):
        yield


def later(gpu, offset_h: int, **values) -> None:  # type: ignore[no-untyped-def]
    defaults = {"covered_s": 3600, "busy_s": 3600, "util_mean_pct": 90.0, "samples": 3600}
    GpuHour.objects.create(gpu=gpu, ts=T0 + timedelta(hours=offset_h), **{**defaults, **values})


def clips(team, g, start_min: float, usable: list[bool], clip: str, minutes: float = 15) -> float:  # type: ignore[no-untyped-def]
    """Attempts of one clip, 15 minutes each ($1.00), back to back from ``start_min``."""
    for i, ok in enumerate(usable):
        a = start_min + minutes * i
        job(team, [(g, a, a + minutes)], usable=ok, frames=80, fps=16, steps=50, clip_id=clip,
            finished_at=at(a + minutes))  # fmt: skip
    return start_min + minutes * len(usable)


def test_a_team_pattern_realized_to_the_cent(team_a):
    (g,) = node("regen-1")
    hour(g)
    later(g, 1)
    # Before: one clip rendered three times, one usable (5 s): 3 attempts, $3.00, 0.6
    # attempts per usable second at $1.00 an attempt.
    clips(team_a, g, 0, [False, False, True], "c1")
    ledger_recompute(start=T0, end=T1)
    findings_refresh(start=T0, end=T1, now=T1)
    finding = Finding.objects.get(pattern="regeneration_waste")
    # The fix is priced at 1.4 attempts a clip: $3.00 x (1 - 1.4/3) = $1.60 an hour saved.
    assert (finding.action["current_cost"], finding.action["projected_cost"]) == ("3.00", "1.40")
    finding_status_set(finding=finding, status=FindingStatus.RESOLVED, user="mia", now=T1)
    (res,) = finding.resolutions.all()
    assert (res.resolved_by, res.resolved_by_user, res.changed_at) == ("person", "mia", T1)
    assert (res.before_start, res.before_end, res.after_end) == (T0, T1, T2)
    assert res.projected_monthly == Decimal("1152.00")  # 1.60 x 720 hours
    assert res.state == RealizationState.TOO_EARLY
    # After: three clips in four attempts of 14 minutes, all three usable (15 s): 4/15
    # attempts a usable second, still priced at the before-window's $1.00 an attempt.
    end = clips(team_a, g, 60, [True], "c2", minutes=14)
    end = clips(team_a, g, end, [False, True], "c3", minutes=14)
    clips(team_a, g, end, [True], "c4", minutes=14)
    ledger_recompute(start=T1, end=T2)
    assert resolutions_measure_due(now=T2 - timedelta(minutes=1)) == 0  # still too early
    assert resolutions_measure_due(now=T2) == 1
    res.refresh_from_db()
    assert res.state == RealizationState.MEASURED
    # (0.6 - 4/15) attempts a usable second x 5 s x $1.00 = $1.666667 an hour, x 720.
    assert res.realized_monthly == Decimal("1200.00")
    assert res.ratio == pytest.approx(1200 / 1152, abs=1e-4)
    assert res.before["unit"] == "0.600000" and res.after["unit"] == "0.266667"
    assert (res.before["volume"], res.after["volume"]) == (5.0, 15.0)
    assert res.reason == ""


def test_halving_the_volume_with_no_fix_saves_nothing(team_a):
    (g,) = node("regen-2")
    hour(g)
    later(g, 1)
    # Before: two clips, three attempts of 9 minutes each ($3.60); after: one clip, three
    # attempts ($1.80): the team spent half as much, at the same attempts per usable second.
    end = clips(team_a, g, 0, [False, False, True], "c1", minutes=9)
    clips(team_a, g, end, [False, False, True], "c2", minutes=9)
    ledger_recompute(start=T0, end=T1)
    findings_refresh(start=T0, end=T1, now=T1)
    finding = Finding.objects.get(pattern="regeneration_waste")
    finding_status_set(finding=finding, status=FindingStatus.RESOLVED, now=T1)
    clips(team_a, g, 60, [False, False, True], "c3", minutes=9)
    ledger_recompute(start=T1, end=T2)
    resolutions_measure_due(now=T2)
    (res,) = finding.resolutions.all()
    assert res.state == RealizationState.MEASURED
    assert (res.before["cost"], res.after["cost"]) == ("3.60", "1.80")
    assert res.realized_monthly == Decimal("0.00")
    assert res.ratio == 0.0 and "less than projected" in res.reason


def _half_idle_node(name: str):  # type: ignore[no-untyped-def]
    """Two GPUs; one held all hour by a job, the other idle: $8.00 paid, 1 GPU-hour held."""
    g0, g1 = node(name, 2)
    hour(g0)
    hour(g1, busy_s=0, util_mean_pct=0.0)
    return g0, g1


def test_a_node_pattern_resolved_by_the_detector_to_the_cent(team_a):
    g0, _ = _half_idle_node("idle-1")
    job(team_a, [(g0, 0, 60)])
    ledger_recompute(start=T0, end=T1)
    findings_refresh(start=T0, end=T1, now=T1)
    finding = Finding.objects.get(pattern="idle_capacity")
    assert finding.est_monthly_waste == Decimal("2880.00")  # $4.00 idle an hour
    # The fix: the idle GPU released (no telemetry, not paid); the other still held.
    later(g0, 1)
    job(team_a, [(g0, 60, 120)])
    ledger_recompute(start=T1, end=T2)
    report = findings_refresh(start=T1, end=T2, now=T2)
    assert (report.resolved, report.measured) == (1, 1)
    finding.refresh_from_db()
    (res,) = finding.resolutions.all()
    assert (res.resolved_by, res.changed_at, res.after_end) == ("detector", T1, T2)
    assert res.state == RealizationState.MEASURED
    # Paid per held GPU-hour: $8.00 before, $4.00 after; x 1 held GPU-hour x 720.
    assert (res.before["unit"], res.after["unit"]) == ("8.000000", "4.000000")
    assert res.projected_monthly == res.realized_monthly == Decimal("2880.00")
    assert res.ratio == 1.0


def test_a_scope_that_vanished_is_not_measurable_and_a_reopened_finding_keeps_its_history(
    team_a,
):
    g0, g1 = _half_idle_node("idle-2")
    job(team_a, [(g0, 0, 60)])
    ledger_recompute(start=T0, end=T1)
    findings_refresh(start=T0, end=T1, now=T1)
    finding = Finding.objects.get(pattern="idle_capacity")
    # The node went away altogether: no telemetry, no job.
    ledger_recompute(start=T1, end=T2)
    findings_refresh(start=T1, end=T2, now=T2)
    (res,) = finding.resolutions.all()
    assert res.state == RealizationState.NOT_MEASURABLE
    assert "no volume after the change" in res.reason and res.realized_monthly is None
    # It comes back: re-opened, the resolution kept and marked; resolved again by a person
    # half past (the change counts from the next whole hour: too early until T3 + 1 h).
    later(g0, 2)
    later(g1, 2, busy_s=0, util_mean_pct=0.0)
    job(team_a, [(g0, 120, 180)])
    ledger_recompute(start=T2, end=T3)
    findings_refresh(start=T2, end=T3, now=T3)
    finding.refresh_from_db()
    assert finding.status == FindingStatus.OPEN
    res.refresh_from_db()
    assert res.reopened_at == T3 and res.state == RealizationState.NOT_MEASURABLE
    finding_status_set(finding=finding, status=FindingStatus.RESOLVED,
                       now=T3 + timedelta(minutes=30))  # fmt: skip
    first, second = finding.resolutions.order_by("resolved_at")
    assert first.pk == res.pk
    assert second.state == RealizationState.TOO_EARLY
    assert second.changed_at == T3 + timedelta(hours=1)
    assert (second.before_start, second.before_end) == (T2, T3)
    summary = savings_summary(Finding.objects.all())
    (row,) = summary["rows"]
    assert (row["too_early"], row["not_measurable"], row["measured"]) == (1, 1, 0)


def test_the_statement_sums_to_the_findings_behind_it(team_a, team_b, api):
    test_a_node_pattern_resolved_by_the_detector_to_the_cent(team_a)
    (g,) = node("regen-9")
    hour(g)
    later(g, 1)
    clips(team_b, g, 0, [False, False, True], "b1")
    ledger_recompute(start=T0, end=T1)
    findings_refresh(
        start=T0, end=T1, now=T1 + timedelta(minutes=1), patterns=["regeneration_waste"]
    )
    statement = savings_statement(Finding.objects.all(), period="2026-11")
    assert statement["start"].startswith("2026-11-01") and statement["end"].startswith("2026-12-01")
    rows = {(r["team"], r["pattern"]): r for r in statement["rows"]}
    assert set(rows) == {(None, "idle_capacity"), ("studio-b", "regeneration_waste")}
    for name in ("projected_monthly", "realized_monthly", "open_monthly"):
        assert Decimal(statement["totals"][name]) == sum(Decimal(r[name]) for r in rows.values())
        for r in rows.values():
            assert Decimal(r[name]) == sum(Decimal(f[name] or 0) for f in r["findings"])
    assert rows[(None, "idle_capacity")]["realized_monthly"] == "2880.00"
    assert rows[("studio-b", "regeneration_waste")]["open_monthly"] != "0.00"
    # The API and its CSV say the same; a bad period names the field.
    root = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    api.force_authenticate(root)
    got = api.get("/api/v1/savings/statement?period=2026-11").json()
    assert got["totals"] == statement["totals"]
    lines = list(csv.reader(io.StringIO(
        api.get("/api/v1/savings/statement?period=2026-11&format=csv").content.decode())))  # fmt: skip
    assert lines[0][:3] == ["team", "pattern", "finding"]
    assert (
        lines[-1][4] == "statement total"
        and lines[-1][8] == statement["totals"]["realized_monthly"]
    )
    bad = api.get("/api/v1/savings/statement?period=2026-13")
    assert bad.status_code == 400 and "period must be a month as YYYY-MM" in str(bad.json())
    assert "period" in str(bad.json())
    totals = api.get("/api/v1/savings").json()["totals"]
    assert totals["realized_monthly"] == "2880.00" and totals["projected_monthly"] == "2880.00"
    detail = api.get(f"/api/v1/findings/{Finding.objects.get(pattern='idle_capacity').pk}").json()
    assert detail["resolutions"][0]["realized_monthly"] == "2880.00"


def test_the_weekly_email_says_what_was_realized_this_week(team_a):
    from datetime import date

    from finops.reports.content import Scope, Week, weekly_report
    from finops.reports.services import report_preview_html

    test_a_node_pattern_resolved_by_the_detector_to_the_cent(team_a)
    report = weekly_report(Scope([team_a], True), Week(date(2026, 11, 2), "UTC"),
                           now=T0 + timedelta(days=8))  # fmt: skip
    assert report.realized_total == Decimal("2880.00")
    (line,) = report.realized
    assert line["scope"] == "node idle-1" and line["projected_monthly"] == "2880.00"
    html = report_preview_html(report, None)
    assert "Savings realized this week: USD 2880.00 a month" in html
