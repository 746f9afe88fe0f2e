"""Manager dashboards, server-rendered: views call selectors, pass their rows to the
figures and to the template (the same rows), and obey the same roles as the API."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.contrib.auth.decorators import login_required
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from finops.accounts.models import Team
from finops.accounts.selectors import team_list_visible
from finops.alerts.models import Alert, AlertState
from finops.costing.selectors import AllocationQuery, QueryError, allocation_report
from finops.dashboard import figures
from finops.fleet.models import Site
from finops.insights.models import FindingStatus
from finops.insights.selectors import finding_judges, finding_list_visible, finding_may_judge
from finops.insights.services import finding_status_set

WINDOWS = {
    "7d": "Last 7 days",
    "24h": "Last 24 hours",
    "thismonth": "This month",
    "lastweek": "Last week",
}


def _simulated() -> bool:
    return Site.objects.filter(slug__startswith="sim-").exists()


def _total(rows: list[dict[str, Any]]) -> Decimal:
    return sum((Decimal(r["total_cost"]) for r in rows), Decimal(0))


@login_required
def overview(request: HttpRequest) -> HttpResponse:
    window = request.GET.get("window", "7d")
    teams = team_list_visible(user=request.user)
    all_teams = teams.count() == Team.objects.count()
    context: dict[str, Any] = {
        "windows": WINDOWS,
        "window": window,
        "simulated": _simulated(),
        "teams": teams,
    }
    try:
        query = AllocationQuery.from_params({"window": window, "aggregate": "team", "step": "1d"})
        whole = AllocationQuery.from_params({"window": window, "aggregate": "team"})
    except QueryError as exc:
        context["error"] = f"{exc.parameter}: {exc.message}"
        return render(request, "dashboard/overview.html", context, status=400)
    previous = AllocationQuery(
        start=whole.start - (whole.end - whole.start),
        end=whole.start,
        aggregate=("team",),
        step="window",
        idle="separate",
        basis="allocation",
    )
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
    context.update(
        {
            "currency": currency,
            "spend": spend,
            "spend_before": spend_before,
            "change": change,
            "change_pct": abs(change) * 100 if change is not None else None,
            "rows": rows,
            "team_rows": team_rows,
            "warnings": report["warnings"],
            "findings": findings,
            "alerts": alerts[:10],
            "savings": sum((f.est_monthly_waste for f in findings), Decimal(0)),
            "spend_chart": figures.spend_by_team_per_day(daily["steps"], currency).to_json(),
            "cps_chart": figures.cost_per_usable_second(team_rows, currency).to_json(),
        }
    )
    return render(request, "dashboard/overview.html", context)


# --- findings ------------------------------------------------------------------------------


def _visible_findings(request: HttpRequest) -> Any:
    teams = team_list_visible(user=request.user)
    return finding_list_visible(teams=teams, all_teams=teams.count() == Team.objects.count())


@login_required
def findings(request: HttpRequest) -> HttpResponse:
    status = request.GET.get("status", "open")
    listed = _visible_findings(request).order_by("-est_monthly_waste")
    if status in FindingStatus.values:
        listed = listed.filter(status=status)
    rows = list(listed[:200])
    judges_all, judged_teams = finding_judges(user=request.user)
    may = {f.pk: judges_all or (f.team_id is not None and f.team_id in judged_teams) for f in rows}
    if request.GET.get("format") == "csv":
        return _csv(
            "findings.csv",
            [
                "pattern",
                "scope",
                "team",
                "status",
                "waste",
                "monthly",
                "currency",
                "recommendation",
            ],
            [
                [
                    f.pattern,
                    f"{f.scope_kind} {f.scope_key}",
                    f.team.slug if f.team else "",
                    f.status,
                    f.waste,
                    f.est_monthly_waste,
                    f.currency,
                    f.recommendation,
                ]
                for f in rows
            ],
        )
    return render(
        request,
        "dashboard/findings.html",
        {
            "findings": rows,
            "may": may,
            "status": status,
            "statuses": FindingStatus.choices,
            "simulated": _simulated(),
        },
    )


@login_required
@require_POST
def finding_judge(request: HttpRequest, pk: int) -> HttpResponse:
    finding = get_object_or_404(_visible_findings(request), pk=pk)
    if not finding_may_judge(user=request.user, finding=finding):
        return HttpResponse("Only the team's managers and admins judge its findings.", status=403)
    status = request.POST.get("status", "")
    if status not in (FindingStatus.ACKNOWLEDGED, FindingStatus.RESOLVED, FindingStatus.OPEN):
        return HttpResponse(
            f"status: {status[:20]!r} is not acknowledged, resolved or open", status=400
        )
    finding_status_set(finding=finding, status=status)
    return redirect(f"{reverse('dashboard:findings')}?status={request.POST.get('back', 'open')}")


def _csv(name: str, header: list[str], rows: list[list[Any]]) -> HttpResponse:
    import csv

    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    writer = csv.writer(response)
    writer.writerow(header)
    writer.writerows(rows)
    return response


# --- planner -------------------------------------------------------------------------------

SHAPES = {"wan-1.3b": "Wan 2.1 1.3B", "wan-14b": "Wan 2.1 14B", "hunyuan": "HunyuanVideo (13B)"}


@login_required
def planner(request: HttpRequest) -> HttpResponse:
    """The what-if of ``python -m inference plan`` (the same code; it imports no torch)."""
    from inference.plan import Workload, plan, prices_load
    from inference.shapes import shape_get

    form = {
        "shape": request.GET.get("shape", "wan-1.3b"),
        "height": request.GET.get("height", "480"),
        "width": request.GET.get("width", "832"),
        "frames": request.GET.get("frames", "81"),
        "steps": request.GET.get("steps", "50"),
        "regen_rate": request.GET.get("regen_rate", "0.2"),
    }
    context: dict[str, Any] = {"form": form, "shapes": SHAPES, "simulated": _simulated()}
    errors = {}
    values: dict[str, Any] = {}
    for name, low, high, cast in (
        ("height", 64, 2160, int),
        ("width", 64, 3840, int),
        ("frames", 1, 1025, int),
        ("steps", 1, 200, int),
        ("regen_rate", 0.0, 0.95, float),
    ):
        try:
            values[name] = cast(form[name])
        except ValueError:
            errors[name] = f"{form[name][:20]!r} is not a number"
            continue
        if not low <= values[name] <= high:
            errors[name] = f"must be between {low} and {high}"
    if form["shape"] not in SHAPES:
        errors["shape"] = f"use one of {', '.join(SHAPES)}"
    if errors:
        context["errors"] = errors
        return render(request, "dashboard/planner.html", context, status=400)
    workload = Workload(
        shape_get(f"{form['shape']}-shape"),
        values["height"],
        values["width"],
        values["frames"],
        steps=values["steps"],
        regen_rate=values["regen_rate"],
    )
    rows = [r.as_dict() for r in plan(workload, prices_load({}, use_database=True))]
    if request.GET.get("format") == "csv":
        columns = list(rows[0]) if rows else []
        return _csv("plan.csv", columns, [[r[c] for c in columns] for r in rows])
    context.update(
        {"rows": rows, "chart": figures.planner_costs(rows).to_json(), "tokens": workload.tokens}
    )
    return render(request, "dashboard/planner.html", context)


# --- fleet ---------------------------------------------------------------------------------

REASONS = {
    "throttle_power_cap_s": "power cap (0x4)",
    "throttle_hw_slowdown_s": "hw slowdown (0x8)",
    "throttle_sw_thermal_s": "sw thermal (0x20)",
    "throttle_hw_thermal_s": "hw thermal (0x40)",
    "throttle_power_brake_s": "power brake (0x80)",
}


@login_required
def fleet(request: HttpRequest) -> HttpResponse:
    """Node-by-hour utilisation and throttled time by reason, from the hour rollups (one
    grouped query each); the fleet is everyone's, so it is shown to those who see every
    team."""
    from django.db.models import Avg, Sum
    from django.db.models.functions import TruncHour

    from finops.telemetry.models import GpuHour

    teams = team_list_visible(user=request.user)
    if teams.count() != Team.objects.count():
        return render(
            request,
            "dashboard/fleet.html",
            {"forbidden": True, "simulated": _simulated()},
            status=403,
        )
    window = request.GET.get("window", "24h")
    try:
        query = AllocationQuery.from_params({"window": window})
    except QueryError as exc:
        return render(
            request,
            "dashboard/fleet.html",
            {
                "error": f"{exc.parameter}: {exc.message}",
                "simulated": _simulated(),
                "windows": WINDOWS,
                "window": window,
            },
            status=400,
        )
    hours = GpuHour.objects.filter(
        ts__gte=query.start, ts__lt=query.end, gpu__mig_parent__isnull=True
    )
    cells = list(
        hours.annotate(hour=TruncHour("ts"))
        .values("gpu__node__hostname", "hour")
        .annotate(util=Avg("util_mean_pct"))
        .order_by("gpu__node__hostname", "hour")
    )
    nodes = sorted({c["gpu__node__hostname"] for c in cells})
    stamps = sorted({c["hour"] for c in cells})
    grid = {(c["gpu__node__hostname"], c["hour"]): c["util"] for c in cells}
    util = [[grid.get((n, h)) for h in stamps] for n in nodes]
    totals = {
        r["gpu__node__hostname"]: r
        for r in hours.values("gpu__node__hostname").annotate(
            **{k: Sum(k) for k in REASONS}, busy=Sum("busy_s"), covered=Sum("covered_s")
        )
    }
    rows = [
        {
            "node": n,
            "busy_h": (totals[n]["busy"] or 0) / 3600,
            "covered_h": (totals[n]["covered"] or 0) / 3600,
            **{label: (totals[n][k] or 0) / 3600 for k, label in REASONS.items()},
        }
        for n in nodes
    ]
    if request.GET.get("format") == "csv":
        header = ["node", "busy_h", "covered_h", *REASONS.values()]
        return _csv("fleet.csv", header, [[r[h] for h in header] for r in rows])
    return render(
        request,
        "dashboard/fleet.html",
        {
            "simulated": _simulated(),
            "windows": WINDOWS,
            "window": window,
            "rows": rows,
            "reasons": list(REASONS.values()),
            "heatmap": figures.utilisation_heatmap(
                nodes, [f"{h:%m-%d %H:00}" for h in stamps], util
            ).to_json(),
            "throttle": figures.throttle_by_reason(
                nodes, {label: [(totals[n][k] or 0) for n in nodes] for k, label in REASONS.items()}
            ).to_json(),
        },
    )


# --- team ----------------------------------------------------------------------------------


@login_required
def team(request: HttpRequest, slug: str) -> HttpResponse:
    """A team's cost per usable second by project over time, waste against allocation,
    the most expensive clips with their attempts, and its jobs (paginated)."""
    from django.core.paginator import Paginator
    from django.db.models import Count, Sum

    from finops.costing.models import LedgerEntry
    from finops.jobs.models import JobStatus, RenderJob

    the_team = get_object_or_404(team_list_visible(user=request.user), slug=slug)
    teams = Team.objects.filter(pk=the_team.pk)
    window = request.GET.get("window", "7d")
    context: dict[str, Any] = {
        "team": the_team,
        "windows": WINDOWS,
        "window": window,
        "simulated": _simulated(),
    }
    try:
        daily = AllocationQuery.from_params(
            {"window": window, "aggregate": "project", "step": "1d"}
        )
        usage = AllocationQuery.from_params(
            {"window": window, "aggregate": "project", "basis": "usage"}
        )
    except QueryError as exc:
        context["error"] = f"{exc.parameter}: {exc.message}"
        return render(request, "dashboard/team.html", context, status=400)
    by_day = allocation_report(query=daily, teams=teams, all_teams=False)
    used = allocation_report(query=usage, teams=teams, all_teams=False)["steps"][0]["rows"]
    costs = dict(
        LedgerEntry.objects.filter(
            team=the_team,
            window_start__gte=usage.start,
            window_start__lt=usage.end,
            job__clip__isnull=False,
        )
        .values("job__clip_id")
        .annotate(total=Sum("amount"))
        .values_list("job__clip_id", "total")
    )
    clips = (
        RenderJob.objects.filter(team=the_team, clip__isnull=False, clip_id__in=list(costs))
        .values("clip_id", "clip__external_id", "project", "model_name")
        .annotate(attempts=Count("id"), usable=Count("id", filter=Q(usable=True)))
    )
    expensive = sorted(
        ({**c, "cost": costs.get(c["clip_id"], Decimal(0))} for c in clips),
        key=lambda c: c["cost"],
        reverse=True,
    )[:5]
    jobs = RenderJob.objects.filter(team=the_team).select_related("clip").order_by("-created_at")
    status = request.GET.get("status", "")
    if status in JobStatus.values:
        jobs = jobs.filter(status=status)
    page = Paginator(jobs, 25).get_page(request.GET.get("page"))
    context.update(
        {
            "rows": used,
            "expensive": expensive,
            "page": page,
            "status": status,
            "statuses": JobStatus.choices,
            "currency": by_day["currency"],
            "chart": figures.cost_per_usable_second_by_project(
                by_day["steps"], by_day["currency"]
            ).to_json(),
        }
    )
    return render(request, "dashboard/team.html", context)
