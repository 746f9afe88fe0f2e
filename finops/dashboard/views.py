"""Manager dashboards, server-rendered: views call selectors, pass their rows to the
figures and to the template (the same rows), and obey the same roles as the API."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from finops.accounts.models import Team
from finops.accounts.selectors import team_list_visible
from finops.alerts.models import Alert, AlertState
from finops.costing.selectors import AllocationQuery, QueryError, allocation_report
from finops.dashboard import figures
from finops.fleet.models import Site
from finops.insights.models import FindingStatus
from finops.insights.selectors import finding_list_visible

WINDOWS = {"7d": "Last 7 days", "24h": "Last 24 hours", "thismonth": "This month",
           "lastweek": "Last week"}  # fmt: skip


def _simulated() -> bool:
    return Site.objects.filter(slug__startswith="sim-").exists()


def _total(rows: list[dict[str, Any]]) -> Decimal:
    return sum((Decimal(r["total_cost"]) for r in rows), Decimal(0))


@login_required
def overview(request: HttpRequest) -> HttpResponse:
    window = request.GET.get("window", "7d")
    teams = team_list_visible(user=request.user)
    all_teams = teams.count() == Team.objects.count()
    context: dict[str, Any] = {"windows": WINDOWS, "window": window, "simulated": _simulated(),
                               "teams": teams}  # fmt: skip
    try:
        query = AllocationQuery.from_params({"window": window, "aggregate": "team", "step": "1d"})
        whole = AllocationQuery.from_params({"window": window, "aggregate": "team"})
    except QueryError as exc:
        context["error"] = f"{exc.parameter}: {exc.message}"
        return render(request, "dashboard/overview.html", context, status=400)
    previous = AllocationQuery(start=whole.start - (whole.end - whole.start), end=whole.start,
                               aggregate=("team",), step="window", idle="separate",
                               basis="allocation")  # fmt: skip
    daily = allocation_report(query=query, teams=teams, all_teams=all_teams)
    report = allocation_report(query=whole, teams=teams, all_teams=all_teams)
    before = allocation_report(query=previous, teams=teams, all_teams=all_teams)
    rows = report["steps"][0]["rows"]
    spend, spend_before = _total(rows), _total(before["steps"][0]["rows"])
    change = float((spend - spend_before) / spend_before) if spend_before else None
    team_rows = [r for r in rows if not r["name"].startswith("__")]
    findings = (
        finding_list_visible(teams=teams, all_teams=all_teams)
        .exclude(status=FindingStatus.RESOLVED)
        .order_by("-est_monthly_waste")[:5]
    )
    alerts = Alert.objects.filter(state=AlertState.FIRING).select_related("rule")
    if not all_teams:
        alerts = alerts.filter(rule__team__in=teams)
    currency = report["currency"]
    context.update({
        "currency": currency, "spend": spend, "spend_before": spend_before, "change": change,
        "change_pct": abs(change) * 100 if change is not None else None,
        "rows": rows, "team_rows": team_rows, "warnings": report["warnings"],
        "findings": findings, "alerts": alerts[:10],
        "savings": sum((f.est_monthly_waste for f in findings), Decimal(0)),
        "spend_chart": figures.spend_by_team_per_day(daily["steps"], currency).to_json(),
        "cps_chart": figures.cost_per_usable_second(team_rows, currency).to_json(),
    })  # fmt: skip
    return render(request, "dashboard/overview.html", context)
